"""What does the rank-k skip coupling buy at equal parameter count? (model.skip_rank,
method.md section 1.)

For each objective (flow matching, denoising score matching) and seed, two networks with
(about) the same number of parameters train for the same steps: the plain chain
64-n-n, and 64-m-m with a rank-k skip whose (64 + m + 1) k parameters are paid for by the
narrower hidden layers (m is the width whose total comes closest to the plain one's).
Each run folder gets `analogep evaluate` (quality.json); the summary gives the mean loss
over the last 100 steps, the evaluate figures and the median step time, per run and
averaged over seeds, and the plot the loss curves.

    .venv/bin/python studies/skip_study.py --root /work/runs --plot docs/figures/skip-study.png

Runs already finished (a checkpoint at the last step, a quality.json of it) are not redone,
so the command also just summarises. Each run is one process after another (nice it on a
shared machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from analogep.config import load_spec
from analogep.config.load import dump_spec
from analogep.model.factory import build_energy

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def n_params(sizes: tuple[int, ...], k: int) -> int:
    spec = load_spec(TINY).replace(model={"sizes": list(sizes), "skip_rank": k})
    return build_energy(spec.model).n_params


def matched_width(base: tuple[int, ...], k: int) -> int:
    """The hidden width m (all hidden layers) with a rank-k skip whose parameter count is
    closest to the plain `base` network's."""
    target = n_params(base, 0)
    widths = range(max(k, 1), base[1] + 1)
    return min(widths, key=lambda m: abs(n_params((base[0],) + (m,) * (len(base) - 1), k) - target))


def run_name(objective: str, variant: str, seed: int) -> str:
    return f"skip-{objective}-{variant}" + (f"-s{seed}" if seed else "")


def make_spec(objective: str, sizes: tuple[int, ...], k: int, seed: int, steps: int, batch: int, name: str):
    """The paper config with a small network, tiny.yaml's relaxation budget and learning rate."""
    return load_spec(None).replace(
        name=name,
        model={"sizes": list(sizes), "skip_rank": k, "seed": seed},
        relax={"free_steps": 100, "nudge_steps": 100},
        train={"objective": objective, "steps": steps, "batch": batch, "seed": seed, "threads": 1, "checkpoint_every": 50,
               "optimizer": {"lr": 3e-3}},
    )


def cli(*args: str) -> None:
    code = "from analogep.cli.app import main; main()"
    subprocess.run([sys.executable, "-c", code, *args], check=True, stdout=subprocess.DEVNULL)


def ensure_run(spec, folder: Path) -> None:
    """Train (or finish) the run and evaluate its last checkpoint, unless already done."""
    from analogep.training.checkpoint import load_checkpoint

    done = (folder / "checkpoint.npz").is_file() and load_checkpoint(folder).step >= spec.train.steps
    if not done:
        config = folder.with_suffix(".yaml")
        config.write_text(dump_spec(spec))
        resume = ["--resume"] if (folder / "checkpoint.npz").is_file() else []
        cli("train", str(config), "--out", str(folder), *resume)
    quality = folder / "quality.json"
    if not quality.is_file() or json.loads(quality.read_text()).get("step") != spec.train.steps:
        cli("evaluate", str(folder), "--json")


def summarise(folder: Path) -> dict:
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = np.array([r["loss"] for r in records if "loss" in r])
    quality = json.loads((folder / "quality.json").read_text())
    return {
        "loss_last100": float(losses[-100:].mean()),
        "confidence": quality["confidence"],
        "frechet": quality["frechet"],
        "classes": quality["classes_covered"],
        "outside_range": quality["outside_range"],
        "step_time": float(np.median([r["step_time"] for r in records])),
        "sweeps_free": float(np.mean([r["iters_free"] for r in records])),
        "losses": losses.tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("runs"), help="where the run folders go")
    ap.add_argument("--base", default="64-32-32", help="the plain network's sizes")
    ap.add_argument("--rank", type=int, default=4, help="skip rank k (variant 'skip')")
    ap.add_argument("--more-ranks", default="", help="further ranks, comma-separated (variants 'skip<k>')")
    ap.add_argument("--objectives", default="flow,dsm")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--plot", type=Path, help="PNG of the loss curves")
    ap.add_argument("--json", type=Path, help="write the summary here")
    args = ap.parse_args()

    base = tuple(int(s) for s in args.base.split("-"))
    variants = {"base": (base, 0)}
    for i, k in enumerate([args.rank] + [int(r) for r in args.more_ranks.split(",") if r]):
        width = matched_width(base, k)
        variants["skip" if i == 0 else f"skip{k}"] = ((base[0],) + (width,) * (len(base) - 1), k)
    seeds = [int(s) for s in args.seeds.split(",")]
    args.root.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "networks": {v: {"sizes": list(s), "skip_rank": k, "params": n_params(s, k)} for v, (s, k) in variants.items()},
        "steps": args.steps, "batch": args.batch, "runs": {}, "mean": {},
    }
    for objective in args.objectives.split(","):
        for variant, (sizes, k) in variants.items():
            rows = []
            for seed in seeds:
                name = run_name(objective, variant, seed)
                folder = args.root / name
                ensure_run(make_spec(objective, sizes, k, seed, args.steps, args.batch, name), folder)
                row = summarise(folder)
                summary["runs"][name] = {key: v for key, v in row.items() if key != "losses"}
                rows.append(row)
            keys = [key for key in rows[0] if key != "losses"]
            summary["mean"][f"{objective}-{variant}"] = {
                **{key: float(np.mean([r[key] for r in rows])) for key in keys},
                **{f"{key}_sd": float(np.std([r[key] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for key in keys},
                "losses": np.mean([r["losses"] for r in rows], axis=0).tolist(),
                "seed_losses": [r["losses"] for r in rows],
            }
    for name, row in summary["mean"].items():
        print(
            f"{name:10s} loss(last 100) {row['loss_last100']:.4f} +- {row['loss_last100_sd']:.4f}  "
            f"confidence {row['confidence']:.3f} +- {row['confidence_sd']:.3f}  frechet {row['frechet']:.3f} +- {row['frechet_sd']:.3f}  "
            f"classes {row['classes']:.1f}  outside {row['outside_range']:.3f}  s/step {row['step_time']:.3f}  sweeps {row['sweeps_free']:.1f}"
        )
    if args.json:
        means = {k: {kk: vv for kk, vv in v.items() if "losses" not in kk} for k, v in summary["mean"].items()}
        args.json.write_text(json.dumps({**summary, "mean": means}, indent=2))
    if args.plot:
        plot(summary, args.objectives.split(","), args.plot, len(seeds))


def plot(summary: dict, objectives: list[str], path: Path, n_seeds: int) -> None:
    """Per objective, each skip network's loss minus the plain network's, seed by seed (the
    same seed draws the same training batches for every network, so the difference is
    paired), averaged over 50 steps: below zero the skip network is ahead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets, window = summary["networks"], 50
    fig, axes = plt.subplots(1, len(objectives), figsize=(5 * len(objectives), 3.4))
    for ax, objective in zip(np.atleast_1d(axes), objectives):
        base = np.asarray(summary["mean"][f"{objective}-base"]["seed_losses"])
        for variant, colour in zip([v for v in nets if v != "base"], ("tab:orange", "tab:green", "tab:red", "tab:purple")):
            row = summary["mean"][f"{objective}-{variant}"]
            diff = np.asarray(row["seed_losses"]) - base
            smooth = np.array([np.convolve(d, np.ones(window) / window, mode="valid") for d in diff])
            steps = np.arange(smooth.shape[1]) + window
            net = nets[variant]
            label = (f"{'-'.join(map(str, net['sizes']))} + skip {net['skip_rank']} ({net['params']:,} params): "
                     f"{row['loss_last100'] - summary['mean'][f'{objective}-base']['loss_last100']:+.4f}")
            ax.plot(steps, smooth.mean(axis=0), color=colour, label=label)
            for d in smooth:
                ax.plot(steps, d, color=colour, alpha=0.25, lw=0.7)
        b = nets["base"]
        ax.axhline(0.0, color="tab:blue", lw=1)
        ax.set_title(f"{objective}: loss minus {'-'.join(map(str, b['sizes']))} ({b['params']:,} params)", fontsize=9)
        ax.set_xlabel(f"step ({window}-step average; thin: each of {n_seeds} seeds)")
        ax.legend(fontsize=7, title="mean of last 100 steps vs plain", title_fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
