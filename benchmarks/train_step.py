"""Benchmark one GradEP training step of the paper config (64-128-128, full batch 1797).

In one process, times the step with the paper's relaxation (euler, 300 steps per phase)
and with the default solver on the same batches and weights, and reports medians, their
ratio, relaxation iterations per phase, the share of time in relaxation, OT pairing and
the rest, and the time to sample 1000 digits. Shared machines are noisy: compare the
ratio, not the seconds.

    .venv/bin/python benchmarks/train_step.py [--repeats 5] [--checkpoint RUN_DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.ep.step import gradep_step
from analogep.evaluation.gradcheck import compare
from analogep.model.factory import build_energy
from analogep.objectives.flow import ot_pairing
from analogep.objectives.flow_sampling import generate
from analogep.objectives.factory import build_objective
from analogep.runtime import blas_threads
from analogep.training.checkpoint import load_checkpoint
from analogep.training.optim import build_optimizer, clip_by_global_norm

# The paper's relaxation, trusted as the paper trusts it (examples/digits-euler.yaml).
PAPER = {
    "relax": {"solver": "euler", "step": 0.1, "free_steps": 300, "nudge_steps": 300, "tol": 0.0},
    "train": {"max_residual": 1e9, "max_asymmetry": 1.0, "max_dropped": 1.0},
}


def time_steps(model, spec, params, data, repeats, seed=0):
    """`repeats` training steps as train() runs them (OT of the next batch prefetched in a
    worker thread), each from the same weights; returns per-step timings and results."""
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    objective = build_objective(spec)
    stream = objective.batches(data, np.random.default_rng(seed), repeats)
    t = spec.train
    rows = []
    try:
        for _ in range(repeats):
            work = {k: v.copy() for k, v in params.items()}
            optimizer = build_optimizer(t.optimizer, work)
            t0 = time.perf_counter()
            batch = stream.next()  # waits only for the part of the OT pairing not hidden
            t1 = time.perf_counter()
            realised = backend.program(work)
            result = gradep_step(model, backend, realised, batch, objective, spec.gradep, t)
            t2 = time.perf_counter()
            grad, _ = clip_by_global_norm(result.grad, t.grad_clip)
            optimizer.step(work, grad)
            t3 = time.perf_counter()
            rows.append({"step": t3 - t0, "wait": t1 - t0, "relax": t2 - t1, "update": t3 - t2, "result": result})
    finally:
        stream.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per solver (median reported)")
    parser.add_argument("--checkpoint", help="benchmark at trained weights (run folder or .npz) instead of the init")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: one per core)")
    parser.add_argument("--samples", type=int, default=1000, help="digits to sample for the generation timing")
    args = parser.parse_args()

    spec = load_spec()
    model = build_energy(spec.model)
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        params, where = ckpt.params, f"{args.checkpoint} (step {ckpt.step})"
    else:
        params, where = model.init_params(np.random.default_rng(spec.model.seed)), "initial weights"
    data = load_dataset(spec.train.dataset, dtype=model.dtype)

    with blas_threads(args.threads) as threads:
        print(f"paper config 64-128-128, batch {spec.train.batch}, {where}, {threads} BLAS thread(s), "
              f"median of {args.repeats} steps")
        rng = np.random.default_rng(0)
        ot_alone = []
        for _ in range(args.repeats):
            x0 = rng.standard_normal(data.shape).astype(data.dtype)
            t0 = time.perf_counter()
            ot_pairing(x0, data)
            ot_alone.append(time.perf_counter() - t0)

        runs = {}
        for label, run_spec in (("euler T=300 (paper)", spec.replace(**PAPER)), (f"default ({spec.relax.solver})", spec)):
            runs[label] = time_steps(model, run_spec, params, data, args.repeats)

        def med(rows, key):
            return statistics.median(r[key] for r in rows)

        print(f"\n{'solver':22s} {'step s':>7s} {'relax+EP %':>10s} {'OT wait %':>9s} {'update %':>8s}  iterations free/+/-")
        for label, rows in runs.items():
            step = med(rows, "step")
            iters = "/".join(str(e.iterations) for e in rows[-1]["result"].phases.all)
            print(f"{label:22s} {step:7.3f} {100 * med(rows, 'relax') / step:9.1f}% {100 * med(rows, 'wait') / step:8.1f}% "
                  f"{100 * med(rows, 'update') / step:7.1f}%  {iters}")
        (euler_label, euler), (fast_label, fast) = runs.items()
        cosines = [compare(f["result"].grad, e["result"].grad).cosine for f, e in zip(fast, euler)]
        print(f"\nspeed-up of the default over euler T=300: {med(euler, 'step') / med(fast, 'step'):.1f}x (whole training step)")
        print(f"EP gradient cosine, default vs euler, same batches: min {min(cosines):.8f}")
        print(f"exact OT pairing of {spec.train.batch}x{spec.train.batch} alone: median {statistics.median(ot_alone):.3f} s "
              f"(overlapped with relaxation in training; the table shows the wait left)")

        t0 = time.perf_counter()
        g = spec.generate
        backend = NumpyBackend(model, spec.gradep, spec.relax)
        backend.program(params)
        generate(model, backend, spec.gradep, n=args.samples, t1=g.t1, dt=g.dt, mode=g.mode, seed=g.seed)
        print(f"sampling {args.samples} digits ({int(round(g.t1 / g.dt))} Euler steps, {spec.relax.solver} warm re-relaxation): "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
