"""Measurement: what device spread and mismatched crossbar copies do to the velocity and to
the EP gradient (docs/results/devices.md). Not a test.

1. On a trained model (default: the packaged paper config's run given by --checkpoint), for
   a conductance spread of 1% and 5% (devices.variability) with one device read both ways
   (bidirectional) and with two mismatched copies, averaged over device seeds: the
   relative velocity error against the ideal circuit, |v_dev - v_ideal| / |v_ideal| over
   the batch, and the cosine between the EP gradient measured on the devices and on the
   ideal circuit.
2. With --true-gradient (examples/tiny.yaml, float64, trained --tiny-steps steps): the
   cosine between EP on the device circuit and the true gradient of that circuit's own
   loss (central finite differences over every parameter, devices frozen): with one
   device read both ways the circuit still minimises an energy and EP is its gradient;
   with mismatched copies it is not.

    .venv/bin/python studies/devices_mismatch.py --checkpoint RUN_DIR [--points 256] [--seeds 3] [--true-gradient]
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings

import numpy as np

from analogep import api
from analogep.backends.numpy_backend import NumpyBackend
from analogep.config import load_spec
from analogep.config.sections import RelaxSpec
from analogep.data import load_dataset
from analogep.backends.spring import velocity
from analogep.ep.step import gradep_step
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective
from analogep.runtime import blas_threads
from analogep.training.checkpoint import load_checkpoint

TIGHT = RelaxSpec(solver="fast", free_steps=5000, nudge_steps=5000, tol=1e-11, omega=1.0)


def flat(p: dict) -> np.ndarray:
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in p.values()])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def ep_step(spec, model, params, batch, devices: dict | None):
    s = spec if devices is None else spec.replace(devices={"preset": "ideal", **devices})
    backend = NumpyBackend.from_spec(s, model)
    return gradep_step(model, backend, backend.program(params), batch, build_objective(s), s.gradep, s.train)


def against_ideal(spec, params, points: int, seeds: int) -> None:
    model = build_energy(spec.model)
    data = load_dataset(spec.train.dataset, dtype=model.dtype)
    batch = build_objective(spec).batch(data, points, np.random.default_rng(0))
    ideal = ep_step(spec, model, params, batch, None)
    print(f"{'spread':>7} {'copies':>14} {'velocity error':>15} {'EP cosine vs ideal':>19}")
    for spread in (0.01, 0.05):
        for copies in ("bidirectional", "mismatched"):
            errs, coss = [], []
            for seed in range(seeds):
                r = ep_step(spec, model, params, batch, {"variability": spread, "copies": copies, "seed": seed})
                errs.append(np.linalg.norm(r.v - ideal.v) / np.linalg.norm(ideal.v))
                coss.append(cosine(flat(r.grad), flat(ideal.grad)))
            print(f"{spread:7.0%} {copies:>14} {np.mean(errs):14.2%}  {np.mean(coss):18.5f}"
                  f"   (seeds: {', '.join(f'{e:.2%}/{c:.4f}' for e, c in zip(errs, coss))})")


def true_gradient_check(tiny_steps: int, points: int, out: str) -> None:
    """EP on the device circuit against central differences of that circuit's loss."""
    spec = load_spec("examples/tiny.yaml").replace(train={"steps": tiny_steps})
    params = api.train(spec, out).params
    spec = spec.replace(model={"dtype": "float64"}, relax=dataclasses.asdict(TIGHT))
    model = build_energy(spec.model)
    params = {k: v.astype(np.float64) for k, v in params.items()}
    data = load_dataset(spec.train.dataset, dtype=np.float64)
    batch = build_objective(spec).batch(data, points, np.random.default_rng(0))
    g = spec.gradep
    print(f"tiny ({tiny_steps} steps), {points} points, float64: EP on the device circuit vs its true gradient")
    for devices in ({"variability": 0.05, "copies": "bidirectional"}, {"variability": 0.05, "copies": "mismatched"},
                    {"driver_gain_sigma": 0.05, "driver_offset_sigma": 0.01}):
        s = spec.replace(devices={"preset": "ideal", **devices})
        backend = NumpyBackend.from_spec(s, model)

        def loss(p):
            backend.devices.state = {}  # a full write: the same frozen devices, exactly programmed
            backend.program(p)
            eq = backend.equilibrium(batch.x_t, None, None)
            v = velocity(eq.state[0], batch.x_t, g)
            return 0.5 * np.mean(np.sum((v - batch.target) ** 2, axis=1))

        backend.devices.state = {}
        ep = gradep_step(model, backend, backend.program(params), batch, build_objective(s), g, s.train)
        true = []
        h = 1e-6
        for name, value in params.items():
            grad = np.zeros_like(value)
            for i in np.ndindex(value.shape):
                for sign in (1, -1):
                    q = dict(params)
                    q[name] = value.copy()
                    q[name][i] += sign * h
                    grad[i] += sign * loss(q) / (2 * h)
            true.append(grad.ravel())
        true = np.concatenate(true)
        est = flat(ep.grad)
        print(f"  {devices}: cosine {cosine(est, true):.6f}, relative error {np.linalg.norm(est - true) / np.linalg.norm(true):.3%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="trained weights (run folder or .npz) [default: the paper config's init]")
    parser.add_argument("--points", type=int, default=256, help="training points of the batch")
    parser.add_argument("--seeds", type=int, default=3, help="device seeds averaged")
    parser.add_argument("--true-gradient", action="store_true", help="also EP vs finite differences on a trained tiny model")
    parser.add_argument("--tiny-steps", type=int, default=200)
    parser.add_argument("--tiny-points", type=int, default=16)
    parser.add_argument("--tiny-out", default="/tmp/analogep-devices-mismatch-tiny")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with blas_threads(1):
        if args.checkpoint:
            ckpt = load_checkpoint(args.checkpoint)
            spec, params, where = ckpt.spec, ckpt.params, f"{args.checkpoint} (step {ckpt.step})"
        else:
            spec = load_spec()
            params = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
            where = "paper config, initial weights"
        print(f"{where}: {args.points} training points, {args.seeds} device seeds")
        against_ideal(spec, params, args.points, args.seeds)
        if args.true_gradient:
            true_gradient_check(args.tiny_steps, args.tiny_points, args.tiny_out)


if __name__ == "__main__":
    main()
