"""Why does the hopfield84 family train worse than hopfield on tiny? (issue 21; docs/results/physical.md,
section "Tiny, beside hopfield".)

The measured first suspect: its hidden units saturate. A diode-limited neuron's output
s = g(c) solves (s + kappa sinh(s / u)) / r = c (model/families/hopfield84.py): linear to
about 0.2 V, then logarithmic, |s| < ~0.5 V over the whole drive range the rails allow.
What sets that range:

- the diodes in series per branch, n: u = n N V_T, so the knee and the range scale with n;
- the node resistor R_n: kappa = 2 I_s R_n, the knee moves by u ln 10 per decade;
- the transimpedance gain r: where on the drive axis the knee sits (not the output range);
- against the data: the digits are in [-1, 1] and the visible drive is W0^T s, so small
  outputs need large first-layer weights (the Xavier gain, model.init_gain).

Each variant trains tiny.yaml's budget (64-16-16, batch 128, 40 steps, Adam 3e-3) for
each seed (train.seed: the batches; the weights are model.seed 0), then, at its trained
weights, the free equilibrium of a batch of flow-matching points (x_t at uniform t) gives
the share of saturated hidden units (slope g'(c) below half its small-signal value g'(0):
the diode current exceeds the resistor's), the mean |s| per layer, and `analogep
evaluate`'s figures on --n samples. The variants are built in this process: the study
registers a subclass of Hopfield84Energy whose hidden units take the variant's n, R_n, r
(no model.yaml key holds them), so run folders' config.yaml name family hopfield84-range.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python studies/hopfield84_range.py \
        --root /work/wt/runs/phystrain/range --json docs/results/hopfield84-range.json
    .venv/bin/python studies/hopfield84_range.py --measure RUN_DIR ...   # the same figures of trained runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from analogep import api
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.model.factory import build_energy
from analogep.model.families.hopfield84 import (
    DIODE_IS,
    DIODE_N,
    INPUT_GAIN,
    R_NODE,
    THERMAL_VOLTAGE,
    DiodeUnits,
    Hopfield84Energy,
)
from analogep.registry import FAMILIES
from analogep.backends.numpy_backend import NumpyBackend
from analogep.objectives.flow import sample_flow_batch
from analogep.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FAMILY = "hopfield84-range"

# name: (diodes in series per branch, R_n in ohm, r, model.init_gain); None: the hopfield family.
VARIANTS: dict[str, tuple[int, float, float, float] | None] = {
    "hopfield": None,
    "base": (1, R_NODE, INPUT_GAIN, 0.5),
    "n2": (2, R_NODE, INPUT_GAIN, 0.5),
    "n4": (4, R_NODE, INPUT_GAIN, 0.5),
    "n8": (8, R_NODE, INPUT_GAIN, 0.5),
    "rn1k": (1, 1.0e3, INPUT_GAIN, 0.5),
    "rn100k": (1, 1.0e5, INPUT_GAIN, 0.5),
    "r0.25": (1, R_NODE, 0.25, 0.5),
    "r2": (1, R_NODE, 2.0, 0.5),
    "gain1": (1, R_NODE, INPUT_GAIN, 1.0),
    "gain2": (1, R_NODE, INPUT_GAIN, 2.0),
    "n4-gain1": (4, R_NODE, INPUT_GAIN, 1.0),
}


class RangeVariant(Hopfield84Energy):
    """hopfield84 with the hidden units of `RangeVariant.units` (set before each build)."""

    units: dict = {}

    def __init__(self, spec):
        super().__init__(spec)
        self.layers = (self.layers[0],) + tuple(DiodeUnits(layer.size, **self.units) for layer in self.layers[1:])


def diode_units(n_series: int, r_node: float, r: float) -> dict:
    """DiodeUnits' constants for n diodes in series per branch and node resistor r_node."""
    return {"kappa": 2.0 * DIODE_IS * r_node, "u": n_series * DIODE_N * THERMAL_VOLTAGE, "r": r}


def make_spec(variant: str, seed: int, steps: int):
    spec = load_spec(ROOT / "examples" / "tiny.yaml")
    params = VARIANTS[variant]
    changes = {"name": f"range-{variant}", "train": {"seed": seed, "steps": steps, "threads": 1}}
    if params is None:
        return spec.replace(**changes)
    n_series, r_node, r, gain = params
    RangeVariant.units = diode_units(n_series, r_node, r)
    return spec.replace(model={"family": FAMILY, "init_gain": gain}, **changes)


def saturation(spec, params, batch: int = 256) -> dict:
    """At the free equilibrium of `batch` flow points: per hidden layer, the share of units
    whose slope g'(c) is below half of g'(0), and the mean |s|."""
    model = build_energy(spec.model)
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    data = load_dataset("digits", dtype=model.dtype)
    points = sample_flow_batch(data, batch, np.random.default_rng(123), ot=True)
    state = backend.equilibrium(points.x_t, None, None).state
    out = {"saturated": [], "mean_abs": []}
    for layer, s in zip(model.layers[1:], state[1:]):
        if isinstance(layer, DiodeUnits):
            slope = 1.0 / layer.curvature(s.astype(np.float64))
            small = 1.0 / layer.curvature(np.zeros(1))
            out["saturated"].append(float(np.mean(slope < 0.5 * small)))
        else:
            out["saturated"].append(float("nan"))
        out["mean_abs"].append(float(np.mean(np.abs(s))))
    return out


def run(variant: str, seed: int, steps: int, root: Path, n_eval: int) -> dict:
    folder = root / f"{variant}-s{seed}"
    spec = make_spec(variant, seed, steps)
    if not (folder / "checkpoint.npz").is_file() or load_checkpoint(folder).step < steps:
        api.train(spec, folder, resume="auto")
    params = load_checkpoint(folder).params
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r["loss"] for r in records if "loss" in r]
    samples = api.sample(spec, params, n=n_eval, threads=1)
    quality = api.evaluate(samples)
    return {
        "loss_last10": float(np.mean(losses[-10:])),
        "final_loss": float(losses[-1]),
        **saturation(spec, params),
        "classes": quality.classes_covered,
        "confidence": quality.confidence,
        "frechet": quality.frechet,
    }


def mean_sd(values: list[float]) -> str:
    """mean +- sample standard deviation over seeds."""
    v = np.asarray(values, dtype=float)
    return f"{np.mean(v):.3f} +- {np.std(v, ddof=1) if v.size > 1 else 0.0:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("runs/hopfield84-range"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--n", type=int, default=200, help="samples evaluated per run")
    ap.add_argument("--json", type=Path, help="write the per-run figures here")
    ap.add_argument("--measure", type=Path, nargs="*", help="only print the saturation of these run folders' checkpoints")
    args = ap.parse_args()
    if args.measure:
        for folder in args.measure:
            ckpt = load_checkpoint(folder)
            print(f"{folder} (step {ckpt.step}): {json.dumps(saturation(ckpt.spec, ckpt.params, batch=512))}")
        return
    FAMILIES[FAMILY] = f"{__name__}:RangeVariant"
    seeds = [int(s) for s in args.seeds.split(",")]
    table = {}
    for variant in args.variants.split(","):
        rows = [run(variant, seed, args.steps, args.root, args.n) for seed in seeds]
        table[variant] = rows
        layers = len(rows[0]["saturated"])
        sat = " ".join(mean_sd([r["saturated"][l] for r in rows]) for l in range(layers))
        mabs = " ".join(f"{np.mean([r['mean_abs'][l] for r in rows]):.3f}" for l in range(layers))
        print(
            f"{variant:10s} loss10 {mean_sd([r['loss_last10'] for r in rows])}  final {mean_sd([r['final_loss'] for r in rows])}"
            f"  saturated {sat}  |s| {mabs}  classes {mean_sd([r['classes'] for r in rows])}"
            f"  conf {mean_sd([r['confidence'] for r in rows])}  frechet {mean_sd([r['frechet'] for r in rows])}",
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps({"steps": args.steps, "seeds": seeds, "runs": table}, indent=1))


if __name__ == "__main__":
    main()
