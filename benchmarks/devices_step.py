"""Benchmark: the cost of device effects on one numpy GradEP training step
(docs/results/devices.md).

At the paper config (64-128-128, full batch 1797) and the same weights and batches, times
program + phases + measurement + update with ideal devices and with each device setting
(interleaved, in one process), and reports medians, their ratio to ideal (target:
<= 1.3x) and the ratio per solver sweep. A device setting changes the circuit and with it
the sweeps to converge (the pcm preset deploys the ideal weights on faulty devices: a
different circuit); "every effect, tiny" runs every code path at sizes that keep the
circuit ideal, so its ratio is the cost of the device model itself. Shared machines are
noisy: compare ratios, not seconds. Not a test.

    .venv/bin/python benchmarks/devices_step.py [--repeats 5] [--checkpoint RUN_DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.ep.step import gradep_step
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective
from analogep.runtime import blas_threads
from analogep.training.checkpoint import load_checkpoint
from analogep.training.optim import build_optimizer, clip_by_global_norm

SETTINGS = {
    "ideal": None,
    # Every code path of the device model (program with levels and noise, the KCL solve of
    # mismatched copies and drivers, read noise) at sizes that leave the circuit the ideal
    # one up to 1e-6: the cost of the device model itself, at the same sweep count.
    "every effect, tiny": {
        "preset": "ideal", "bits": 20, "w_max": 1.0, "gmin": 1e-6, "gmax": 1e-4, "variability": 1e-6,
        "write_noise": 1e-6, "read_noise": 1e-9, "driver_gain_sigma": 1e-6, "driver_offset_sigma": 1e-9,
        "copies": "mismatched",
    },
    # The same plus the mapping and write models of issue 18 (scaling to the window, March
    # test and fault-aware pairs, verified writes, set-only pairs with refresh, soft bounds).
    "every effect + mapping, tiny": {
        "preset": "ideal", "bits": 20, "w_max": 1.0, "gmin": 1e-6, "gmax": 1e-4, "variability": 1e-6,
        "write_noise": 1e-6, "read_noise": 1e-9, "driver_gain_sigma": 1e-6, "driver_offset_sigma": 1e-9,
        "copies": "mismatched", "scale_fraction": 0.6, "fault_aware": True, "verified_writes": True,
        "set_only": True, "up_down": 1e-6,
    },
    "mismatched 5%": {"preset": "ideal", "variability": 0.05, "copies": "mismatched"},
    "pcm": {"preset": "pcm", "wire_resistance": 0.0},
}


def one_step(spec, model, params, batch, backend, objective) -> tuple[float, dict]:
    """One training step as train() runs it (program, phases, measurement, update), timed."""
    work = {k: v.copy() for k, v in params.items()}
    optimizer = build_optimizer(spec.train.optimizer, work)
    t0 = time.perf_counter()
    realised = backend.program(work)
    result = gradep_step(model, backend, realised, batch, objective, spec.gradep, spec.train)
    grad, _ = clip_by_global_norm(result.grad, spec.train.grad_clip)
    optimizer.step(work, grad)
    return time.perf_counter() - t0, result.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per setting (median reported)")
    parser.add_argument("--checkpoint", help="weights to time at (run folder or .npz) [default: the init]")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: one per core)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="settings to time (ideal is always timed)")
    args = parser.parse_args()
    chosen = {name: SETTINGS[name] for name in SETTINGS if name == "ideal" or name in args.settings}

    base = load_spec()
    model = build_energy(base.model)
    params = load_checkpoint(args.checkpoint).params if args.checkpoint else model.init_params(np.random.default_rng(0))
    data = load_dataset(base.train.dataset, dtype=model.dtype)
    objective = build_objective(base)
    batches = [objective.batch(data, base.train.batch, np.random.default_rng(i)) for i in range(args.repeats)]
    specs = {name: base if d is None else base.replace(devices=d) for name, d in chosen.items()}
    times: dict[str, list[float]] = {name: [] for name in chosen}
    iters: dict[str, list[int]] = {name: [] for name in chosen}
    with blas_threads(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backends = {name: NumpyBackend.from_spec(s, model) for name, s in specs.items()}
        for name in chosen:  # warm-up, and the devices' first (full) write
            backends[name].program(params)
        for i in range(args.repeats):
            for name, s in specs.items():  # interleaved: drifts of a shared machine hit all alike
                seconds, metrics = one_step(s, model, params, batches[i], backends[name], objective)
                times[name].append(seconds)
                iters[name].append(metrics["iters_free"] + 2 * metrics["iters_nudge"])
    ideal = statistics.median(times["ideal"])
    print(f"paper config, batch {base.train.batch}, {args.repeats} steps each, {args.threads} BLAS thread(s)"
          f"{', weights ' + args.checkpoint if args.checkpoint else ', initial weights'}")
    per_sweep_ideal = statistics.median(t / n for t, n in zip(times["ideal"], iters["ideal"]))
    print(f"{'setting':<28} {'median s':>9} {'ratio':>6} {'sweeps/step':>12} {'per sweep ratio':>16}")
    for name in chosen:
        med = statistics.median(times[name])
        per_sweep = statistics.median(t / n for t, n in zip(times[name], iters[name]))
        print(f"{name:<28} {med:9.3f} {med / ideal:6.2f} {statistics.median(iters[name]):12.0f} "
              f"{per_sweep / per_sweep_ideal:16.2f}")


if __name__ == "__main__":
    main()
