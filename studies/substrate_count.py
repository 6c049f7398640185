"""Study: does `analogep energy` count the pulses a substrate training step fires? The
accounting's expected coincidences per device per point (accounting/substrate.py) against
what training logs at its first step (metrics.jsonl), from the same initial weights, batch
and pulse stream (seed s for the model, train.seed, train.substrate.seed and the
accounting's batch), with the standard deviation of the realised count over the pulse
draws (docs/results/substrate.md, 'The price of a step'). Not a test.

    .venv/bin/python studies/substrate_count.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import tempfile
import warnings

import numpy as np

from analogep import api
from analogep.accounting.report import account
from analogep.config import load_spec
from analogep.model.factory import build_energy
from analogep.runtime import blas_threads

FINITE = {"preset": "ideal", "bits": 8, "w_max": 1.0}
SUB = {"batch": 128, "substrate": {"group_size": 8, "lr": 0.03}}
# arm -> (train changes, devices)
ARMS: dict[str, tuple[dict, dict]] = {
    "held, group 8": (SUB, FINITE),
    "held, one group of 128 (weights fixed in the step)": ({**SUB, "substrate": {**SUB["substrate"], "group_size": 128}},
                                                           FINITE),
    "two trains, group 8": ({**SUB, "substrate": {**SUB["substrate"], "difference": "two_trains"}}, FINITE),
    "held, group 8, scale_fraction 0.6": (SUB, {**FINITE, "scale_fraction": 0.6}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="examples/tiny.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--points", type=int, default=32, help="the accounting's settled points (not its pulses)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    base = load_spec(args.config)
    for arm, (train, devices) in ARMS.items():
        ratios, z = [], []
        for seed in args.seeds:
            spec = base.replace(devices=devices, model={"seed": seed},
                                train={"update": "substrate", "steps": 1, "seed": seed, **train})
            spec = spec.replace(train={"substrate": {"seed": seed}})
            params = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
            with tempfile.TemporaryDirectory() as out:
                logged = api.train(spec, out).records[0]["coincidences_per_device_point"]
            with blas_threads(1):
                report = account(spec, params, "initial weights", points=args.points, samples=10, sample_points=1,
                                 seed=seed, measure_cpu=False)
            sub = report.training["analog"].notes["substrate"]
            predicted, sd = sub["coincidences_per_device_point"], sub["coincidences_sd_per_device_point"]
            ratios.append(predicted / logged)
            z.append((logged - predicted) / sd)
            print(f"{arm}, seed {seed}: accounted {predicted:.5f} (pulse-noise sd {sd:.5f}), logged {logged:.5f}, "
                  f"ratio {predicted / logged:.4f}, (logged - accounted) / sd {z[-1]:+.2f}", flush=True)
        spread = np.std(ratios, ddof=1) if len(ratios) > 1 else 0.0
        print(f"{arm}: accounted / logged {np.mean(ratios):.3f} +- {spread:.3f} (mean +- sd over seeds {args.seeds}); "
              f"largest |z| {np.max(np.abs(z)):.2f}", flush=True)


if __name__ == "__main__":
    main()
