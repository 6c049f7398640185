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
    """A run folder's metrics, solver and quality report; one line naming the file when
    one of them cannot be read."""
    folder = Path(path)
    records = [r for r in _read_records(folder) if r.get("loss") is not None]
    if not records:
        log = folder / METRICS_NAME
        what = "is missing" if not log.is_file() else "is empty" if not log.stat().st_size else "holds no loss records"
        raise AnalogepError(f"{log}: {what}; nothing to compare (not a run folder?)")
    config = _read_mapping(folder / "config.yaml", yaml.safe_load, "YAML")
    relax = config.get("relax") if config else None
    solver = str(relax.get("solver", "?")) if isinstance(relax, dict) else "?"
    quality = _read_mapping(folder / "quality.json", json.loads, "JSON") or {}
    for key, kinds in _QUALITY_KEYS.items():
        value = quality.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise AnalogepError(f"{folder / 'quality.json'}: {key} is {value!r}; not a quality report from analogep evaluate")
    judged, last = quality.get("step"), records[-1].get("step")
    if isinstance(judged, int) and isinstance(last, int) and judged < last:  # training went on after `evaluate`
        warnings.warn(AnalogepWarning(
            f"{folder / 'quality.json'}: judges step {judged}, but the run's log goes on to step {last}; "
            f"run `analogep evaluate {folder}` again for its current quality"
        ))
    try:
        return RunSummary(
            path=str(path),
            solver=solver,
            steps=np.array([int(r["step"]) for r in records]),
            loss=np.array([r["loss"] for r in records], dtype=np.float64),
            step_times=np.array([r.get("step_time", np.nan) for r in records], dtype=np.float64),
            quality=quality,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AnalogepError(f"{folder / METRICS_NAME}: a record without a numeric step, loss or step_time ({exc!r})") from None


# The quality.json figures compare reads, and the types they must have.
_QUALITY_KEYS = {"confidence": (int, float), "classes_covered": int, "frechet": (int, float)}


def _read_records(folder: Path) -> list[dict]:
    """metrics.jsonl's records; a file that is not text or holds a non-object line is one line."""
    try:
        records = read_metrics(folder)
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalogepError(f"{folder / METRICS_NAME}: cannot be read ({exc})") from None
    if not all(isinstance(r, dict) for r in records):
        raise AnalogepError(f"{folder / METRICS_NAME}: a line is not a JSON object; not a run log")
    return records


def _read_mapping(path: Path, parse, language: str) -> dict | None:
    """A run folder's optional YAML or JSON mapping (None when absent)."""
    if not path.exists():
        return None
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise AnalogepError(f"{path}: not valid {language} ({where}{reason})") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise AnalogepError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    return data


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
            "confidence": q.get("confidence"),
            "classes_covered": q.get("classes_covered"),
            "frechet": q.get("frechet"),
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
            "first_common_step": int(common[0]),
            "last_common_step": last,
            "same_loss_through_step": _same_through(common, diff),
            "max_abs_loss_difference": float(np.max(np.abs(diff))),
            "mean_loss_difference_second_half": float(np.mean(diff[common > half])) if np.any(common > half) else 0.0,
            "mean_loss_second_half": [reference.mean_loss(half + 1, last), run.mean_loss(half + 1, last)],
            "loss_at_last_common_step": [float(reference.loss[i[-1]]), float(run.loss[j[-1]])],
        })
    return out


def _same_through(steps: np.ndarray, diff: np.ndarray) -> int | None:
    """The last step up to which every loss difference is within SAME_LOSS (None: the
    losses differ at the first common step already)."""
    parted = np.flatnonzero(np.abs(diff) > SAME_LOSS)
    if not parted.size:
        return int(steps[-1])
    return int(steps[parted[0] - 1]) if parted[0] > 0 else None


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
        same = a["same_loss_through_step"]
        agree = (f"same loss (within {SAME_LOSS:g}) through step {same}" if same is not None else
                 f"the losses differ (by more than {SAME_LOSS:g}) from the first common step, {a['first_common_step']}")
        lines.append(
            f"{a['path']} against {first}, {a['common_steps']} common steps: {agree}, "
            f"largest difference {a['max_abs_loss_difference']:.4f}; "
            f"step {a['last_common_step']}: {l0:.4f} vs {l1:.4f}; mean over the second half {m0:.4f} vs {m1:.4f}"
        )
    return "\n".join(lines)
