"""Do the fast solver and the paper's dynamics end in the same minimum?

EP needs the equilibrium the paper's gradient flow reaches from x = x_t, h = 0, and where
the energy has several minima two solvers can settle in different ones. This script
relaxes one training batch's free phase with euler (step 0.1) run to convergence, the
reference, and with the fast solver at several omega, then counts the points whose
equilibria differ by more than 1e-3 (another minimum; converged points of the same minimum
agree to about 1e-5). It also reports the fast solver's time per phase.

    .venv/bin/python studies/basins.py --checkpoint runs/digits [--points 1797] [--omegas 1.0,1.4,1.6]

Converging euler takes about 10,000 steps on trained weights (over a minute per batch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analogep.backends.spring import phase_spring
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.solvers.base import free_start
from analogep.model.factory import build_energy
from analogep.objectives.flow import sample_flow_batch
from analogep.runtime import blas_threads
from analogep.solvers import fast as relax_module
from analogep.solvers.euler import EulerSolver
from analogep.solvers.fast import FastSolver
from analogep.training.checkpoint import load_checkpoint


def point_distance(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Per point, the largest absolute difference over all units."""
    return np.max(np.stack([np.max(np.abs(x - y), axis=1) for x, y in zip(a, b)]), axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="run folder or .npz (default: the initial weights)")
    parser.add_argument("--points", type=int, default=1797, help="training points in the batch")
    parser.add_argument("--omegas", default="1.0,1.4,1.6", help="fast solver over-relaxations to try")
    parser.add_argument("--tol", type=float, default=1e-5, help="both solvers stop below this max |dE/ds|")
    parser.add_argument("--euler-steps", type=int, default=50000, help="cap on the reference's Euler steps")
    args = parser.parse_args()

    spec = load_spec()
    model = build_energy(spec.model)
    params = load_checkpoint(args.checkpoint).params if args.checkpoint else model.init_params(np.random.default_rng(0))
    data = load_dataset(spec.train.dataset, dtype=model.dtype)
    batch = sample_flow_batch(data, args.points, np.random.default_rng(0), spec.train.ot_coupling)
    spring = phase_spring(spec.gradep, batch.x_t, None)
    start = free_start(model, batch.x_t)

    with blas_threads(1):
        t0 = time.perf_counter()
        ref = EulerSolver(args.euler_steps, tol=args.tol, step=0.1).relax(model, params, start, spring)
        print(f"reference: euler step 0.1, {ref.iterations} steps, {time.perf_counter() - t0:.1f} s, "
              f"{int(np.sum(ref.sample_residual >= args.tol))} of {args.points} points above tol {args.tol:g}")
        print(f"\n{'fast solver':42s} {'time s':>7s} {'sweeps':>6s} {'unconverged':>11s} {'other minimum':>13s}")
        rules = [("over-relaxed near equilibrium", relax_module.OVERRELAX_BELOW), ("over-relaxed from the start", np.inf)]
        for omega in (float(w) for w in args.omegas.split(",")):
            for label, below in rules if omega != 1.0 else rules[:1]:
                relax_module.OVERRELAX_BELOW = below
                t0 = time.perf_counter()
                eq = FastSolver(spec.relax.free_steps, tol=args.tol, omega=omega).relax(model, params, start, spring)
                seconds = time.perf_counter() - t0
                other = int(np.sum(point_distance(eq.state, ref.state) > 1e-3))
                name = f"omega {omega:g}" + ("" if omega == 1.0 else f", {label}")
                print(f"{name:42s} {seconds:7.3f} {eq.iterations:6d} {int(np.sum(eq.sample_residual >= args.tol)):11d} {other:13d}")
            relax_module.OVERRELAX_BELOW = rules[0][1]


if __name__ == "__main__":
    main()
