"""Compare training runs: loss curves step by step, time per step, sample quality.

What a solver or hardware comparison needs (for example the default solver against the
paper's euler on the same seeds): where the loss curves part, how far apart they end up,
what each run cost, and, when `evaluate` has written quality.json, how good the samples are.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from analogep.errors import AnalogepError, AnalogepWarning
from analogep.training.runlog import METRICS_NAME, read_metrics

# Losses closer than this count as equal (float32 training: about 4 significant digits).
SAME_LOSS = 1e-4


@dataclass
class RunSummary:
    """One run's curve and its headline figures."""

    path: str
    solver: str
    steps: np.ndarray
    loss: np.ndarray
    step_times: np.ndarray  # seconds of each logged step (NaN where the record has none)
    quality: dict = field(default_factory=dict)  # quality.json, when evaluate wrote one

    @property
    def seconds_per_step(self) -> float:
        """Median over the logged steps: pauses and resumes do not count."""
        known = self.step_times[np.isfinite(self.step_times)]
        return float(np.median(known)) if known.size else float("nan")

    def mean_loss(self, first: int, last: int) -> float:
        window = (self.steps >= first) & (self.steps <= last)
        return float(np.mean(self.loss[window])) if window.any() else float("nan")


def load_run(path: str | Path) -> RunSummary:
    """A run folder's metrics, solver and quality report; a file that is not what it
    should be is a one-line AnalogepError naming it."""
    folder = Path(path)
    records = [r for r in read_metrics(folder) if r.get("loss") is not None]
    if not records:
        path = folder / METRICS_NAME
        what = "is missing" if not path.is_file() else "is empty" if not path.stat().st_size else "holds no loss records"
        raise AnalogepError(f"{path}: {what}; nothing to compare (not a run folder?)")
    solver = "?"
    if (folder / "config.yaml").exists():
        config = _read(folder / "config.yaml", yaml.safe_load, yaml.YAMLError)
        relax = config.get("relax") if isinstance(config, dict) else None
        solver = str(relax.get("solver", "?")) if isinstance(relax, dict) else "?"
    quality = {}
    if (folder / "quality.json").exists():
        quality = _read(folder / "quality.json", json.loads, ValueError)
        if not isinstance(quality, dict):
            raise AnalogepError(f"{folder / 'quality.json'}: not a quality report (a JSON object)")
        judged, last = quality.get("step"), records[-1]["step"]
        if isinstance(judged, int) and judged < last:  # training went on after `evaluate`
            warnings.warn(AnalogepWarning(
                f"{folder / 'quality.json'}: judges step {judged}, but the run's log goes on to step {last}; "
                f"run `analogep evaluate {folder}` again for its current quality"
            ))
    return RunSummary(
        path=str(path),
        solver=solver,
        steps=np.array([r["step"] for r in records]),
        loss=np.array([r["loss"] for r in records], dtype=np.float64),
        step_times=np.array([r.get("step_time", np.nan) for r in records], dtype=np.float64),
        quality=quality,
    )


def _read(path: Path, parse, errors):
    try:
        return parse(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalogepError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    except errors as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AnalogepError(f"{path}: not valid ({first})") from None


def compare_runs(runs: list[RunSummary]) -> dict:
    """Each run's figures, and each run against the first over the steps both logged."""
    reference = runs[0]
    out = {"runs": [], "against_first": []}
    for run in runs:
        q = run.quality
        out["runs"].append({
            "path": run.path,
            "solver": run.solver,
            "steps": int(run.steps[-1]),
            "final_loss": float(run.loss[-1]),
            "seconds_per_step": run.seconds_per_step,
            "confidence": _number(q.get("confidence")),
            "classes_covered": _number(q.get("classes_covered")),
            "frechet": _number(q.get("frechet")),
        })
    for run in runs[1:]:
        common, i, j = np.intersect1d(reference.steps, run.steps, return_indices=True)
        if not common.size:
            out["against_first"].append({"path": run.path, "common_steps": 0})
            continue
        diff = run.loss[j] - reference.loss[i]
        last = int(common[-1])
        half = max(1, last // 2)
        out["against_first"].append({
            "path": run.path,
            "common_steps": int(common.size),
            "last_common_step": last,
            "same_loss_through_step": _same_through(common, diff),
            "max_abs_loss_difference": float(np.max(np.abs(diff))),
            "mean_loss_difference_second_half": float(np.mean(diff[common > half])) if np.any(common > half) else 0.0,
            "mean_loss_second_half": [reference.mean_loss(half + 1, last), run.mean_loss(half + 1, last)],
            "loss_at_last_common_step": [float(reference.loss[i[-1]]), float(run.loss[j[-1]])],
        })
    return out


def _number(value):
    """A quality figure, or None where quality.json lacks it or holds something else."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _same_through(steps: np.ndarray, diff: np.ndarray) -> int:
    """The last step up to which every loss difference is within SAME_LOSS (0: none)."""
    parted = np.flatnonzero(np.abs(diff) > SAME_LOSS)
    if not parted.size:
        return int(steps[-1])
    return int(steps[parted[0] - 1]) if parted[0] > 0 else 0


def format_comparison(result: dict) -> str:
    """The comparison as a short text report."""
    lines = [f"{'run':32s} {'solver':6s} {'steps':>6s} {'final loss':>10s} {'s/step':>7s} {'confidence':>10s} {'classes':>7s} {'Frechet':>7s}"]
    for r in result["runs"]:
        conf = "-" if r["confidence"] is None else f"{r['confidence']:.3f}"
        classes = "-" if r["classes_covered"] is None else str(r["classes_covered"])
        frechet = "-" if r["frechet"] is None else f"{r['frechet']:.3f}"
        lines.append(f"{r['path'][-32:]:32s} {r['solver']:6s} {r['steps']:6d} {r['final_loss']:10.4f} "
                     f"{r['seconds_per_step']:7.3f} {conf:>10s} {classes:>7s} {frechet:>7s}")
    first = result["runs"][0]["path"]
    for a in result["against_first"]:
        if not a["common_steps"]:
            lines.append(f"{a['path']}: no step in common with {first}")
            continue
        m0, m1 = a["mean_loss_second_half"]
        l0, l1 = a["loss_at_last_common_step"]
        lines.append(
            f"{a['path']} against {first}, {a['common_steps']} common steps: same loss (within {SAME_LOSS:g}) "
            f"through step {a['same_loss_through_step']}, largest difference {a['max_abs_loss_difference']:.4f}; "
            f"step {a['last_common_step']}: {l0:.4f} vs {l1:.4f}; mean over the second half {m0:.4f} vs {m1:.4f}"
        )
    return "\n".join(lines)
