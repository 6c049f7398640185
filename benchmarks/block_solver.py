"""Benchmark the block solver (relax.solver: fast) on hopfield84 against hopfield at the
paper's size (64-128-128, full batch 1797; issue 21: "its block solver is as fast as
today's for hopfield").

In one process, alternating the two families so that both see the same load: the free
relaxation of the same flow-matching batch (x_t at uniform t, OT-paired) from the free
start, at the paper config's relax settings (tol 1e-5, at most 300 sweeps). Reports the
median seconds per relaxation, the sweeps it took, seconds per sweep and the ratios. At
initial weights by default; --checkpoint / --checkpoint84 give trained weights for each
family (a run folder or .npz). Shared machines are noisy: compare the ratio.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/block_solver.py [--repeats 7] \
        [--checkpoint RUN_DIR] [--checkpoint84 RUN_DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.config import load_spec
from analogep.config.schema import to_dict
from analogep.data import load_dataset
from analogep.model.factory import build_energy
from analogep.objectives.flow import sample_flow_batch
from analogep.runtime import blas_threads
from analogep.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def family_backend(config: Path, checkpoint: str | None):
    spec = load_spec(config)
    if checkpoint:  # the run's own model (its config), the paper's relaxation settings
        ckpt = load_checkpoint(checkpoint)
        spec = spec.replace(model=to_dict(ckpt.spec.model))
    model = build_energy(spec.model)
    if checkpoint:
        params, where = ckpt.params, f"{checkpoint} (step {ckpt.step})"
    else:
        params, where = model.init_params(np.random.default_rng(spec.model.seed)), "initial weights"
    if spec.model.family == "hopfield84":
        where += f", model.diodes {spec.model.diodes}"
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    return spec, model, backend, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed relaxations per family (median reported)")
    parser.add_argument("--checkpoint", help="hopfield's trained weights (run folder or .npz)")
    parser.add_argument("--checkpoint84", help="hopfield84's trained weights (run folder or .npz)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: one per core)")
    args = parser.parse_args()

    families = {
        "hopfield": family_backend(ROOT / "examples" / "digits.yaml", args.checkpoint),
        "hopfield84": family_backend(ROOT / "examples" / "physical.yaml", args.checkpoint84),
    }
    spec = families["hopfield"][0]
    data = load_dataset("digits", dtype=np.float32)
    batch = sample_flow_batch(data, spec.train.batch, np.random.default_rng(0), ot=True)
    times: dict[str, list[float]] = {name: [] for name in families}
    sweeps: dict[str, list[int]] = {name: [] for name in families}
    with blas_threads(args.threads) as threads:
        print(f"64-128-128, batch {spec.train.batch}, fast solver (tol {spec.relax.tol:g}, <= {spec.relax.free_steps} sweeps), "
              f"{threads} BLAS thread(s), median of {args.repeats} free relaxations")
        for name, (_, _, backend, where) in families.items():
            print(f"  {name}: {where}")
            backend.equilibrium(batch.x_t, None, None)  # warm-up
        for _ in range(args.repeats):
            for name, (_, _, backend, _) in families.items():
                t0 = time.perf_counter()
                eq = backend.equilibrium(batch.x_t, None, None)
                times[name].append(time.perf_counter() - t0)
                sweeps[name].append(eq.iterations)
                if eq.residual > 10 * spec.relax.tol:
                    print(f"  warning: {name} stopped at residual {eq.residual:.2e}")
    rows = {}
    print(f"\n{'family':11s} {'s/relaxation':>12s} {'sweeps':>7s} {'ms/sweep':>9s}")
    for name in families:
        t, n = statistics.median(times[name]), statistics.median(sweeps[name])
        rows[name] = (t, n, t / n)
        print(f"{name:11s} {t:12.3f} {n:7.0f} {1e3 * t / n:9.1f}")
    (t0, n0, p0), (t1, n1, p1) = rows["hopfield"], rows["hopfield84"]
    print(f"\nhopfield84 / hopfield: {t1 / t0:.2f}x per relaxation, {n1 / n0:.2f}x the sweeps, {p1 / p0:.2f}x per sweep")


if __name__ == "__main__":
    main()
