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
import dataclasses
import statistics
import time

import numpy as np

from analogep.checkpoint import load_checkpoint
from analogep.data import load_dataset
from analogep.flow import ot_pairing, sample_flow_batch
from analogep.generate import generate
from analogep.gradcheck import compare
from analogep.gradep import gradep_step
from analogep.hopfield import build_energy
from analogep.optim import build_optimizer, clip_by_global_norm
from analogep.phases import NumpyBackend
from analogep.runtime import blas_threads
from analogep.spec import RelaxSpec, load_spec

PAPER_RELAX = RelaxSpec(solver="euler", step=0.1, free_steps=300, nudge_steps=300, tol=0.0)


def time_step(model, spec, relax_spec, params, batch):
    """One full step (phases, measurement, clip, Adam) with its parts timed."""
    backend = NumpyBackend(model, spec.gradep, relax_spec)
    work = {k: v.copy() for k, v in params.items()}
    optimizer = build_optimizer(spec.train.optimizer, work)
    t0 = time.perf_counter()
    t = spec.train
    result = gradep_step(model, backend, work, batch, spec.gradep, t.max_residual, t.max_dropped, t.max_asymmetry)
    t1 = time.perf_counter()
    grad, _ = clip_by_global_norm(result.grad, spec.train.grad_clip)
    optimizer.step(work, grad)
    t2 = time.perf_counter()
    return t2 - t0, t1 - t0, result


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
    rng = np.random.default_rng(0)

    with blas_threads(args.threads) as threads:
        print(f"paper config 64-128-128, batch {spec.train.batch}, {where}, {threads} BLAS thread(s), "
              f"median of {args.repeats}")
        ot_times, batch_times, batches = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            batch = sample_flow_batch(data, spec.train.batch, rng, spec.train.ot_coupling)
            batch_times.append(time.perf_counter() - t0)
            batches.append(batch)
            t0 = time.perf_counter()
            ot_pairing(batch.x0, batch.x1)
            ot_times.append(time.perf_counter() - t0)

        rows = {}
        for label, relax_spec in (("euler T=300 (paper)", PAPER_RELAX), (f"default ({spec.relax.solver})", spec.relax)):
            totals, relaxes, results = [], [], []
            for batch in batches:
                total, relax_time, result = time_step(model, spec, relax_spec, params, batch)
                totals.append(total)
                relaxes.append(relax_time)
                results.append(result)
            rows[label] = (totals, relaxes, results)

        batch_med, ot_med = statistics.median(batch_times), statistics.median(ot_times)
        print(f"\n{'solver':24s} {'step s':>8s} {'+batch s':>9s} {'relax %':>8s} {'OT %':>6s} {'rest %':>7s}  iterations free/+/-")
        step_totals = {}
        for label, (totals, relaxes, results) in rows.items():
            step = statistics.median(totals) + batch_med
            step_totals[label] = step
            relax_share = statistics.median(relaxes) / step
            ot_share = ot_med / step
            iters = results[-1].phases.all
            print(f"{label:24s} {statistics.median(totals):8.3f} {step:9.3f} {100 * relax_share:7.1f}% {100 * ot_share:5.1f}% "
                  f"{100 * (1 - relax_share - ot_share):6.1f}%  {'/'.join(str(e.iterations) for e in iters)}")
        (euler_label, euler), (fast_label, fast) = rows.items()
        cosines = [compare(f.grad, e.grad).cosine for f, e in zip(fast[2], euler[2])]
        print(f"\nspeed-up of the default over euler T=300: {step_totals[euler_label] / step_totals[fast_label]:.1f}x "
              f"(whole step incl. batch and OT)")
        print(f"EP gradient cosine, default vs euler, same batches: min {min(cosines):.6f}")
        print(f"OT pairing (exact, {spec.train.batch}x{spec.train.batch}): median {ot_med:.3f} s; batch incl. OT {batch_med:.3f} s")

        t0 = time.perf_counter()
        g = spec.generate
        generate(model, params, spec.gradep, spec.relax, n=args.samples, t1=g.t1, dt=g.dt, mode=g.mode, seed=g.seed)
        print(f"sampling {args.samples} digits ({int(round(g.t1 / g.dt))} Euler steps, {spec.relax.solver} warm re-relaxation): "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
