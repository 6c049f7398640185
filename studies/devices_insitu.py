"""Study: does in-situ training recover what deploying an ideally trained model on devices
loses? One non-ideality at a time (docs/results/devices.md). Not a test.

For a config (default examples/tiny.yaml) and a step budget: (a) train ideally, then for
each device setting (b) deploy (a)'s weights on fresh devices and (c) train in situ on the
same devices (same seeds, same steps), and judge each arm's samples as `evaluate` does.
Runs go to OUT/<arm>; the table is printed and written to OUT/insitu.json.

    .venv/bin/python studies/devices_insitu.py [--config examples/tiny.yaml] [--steps 200] [--n 500] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path


from analogep import api
from analogep.config import load_spec
from analogep.training.checkpoint import load_checkpoint

# Each setting on top of ideal devices with |W| = 1 spanning the window (w_max 1).
SETTINGS = {
    "variability 20%": {"variability": 0.2},
    "mismatched copies 20%": {"variability": 0.2, "copies": "mismatched"},
    "stuck 0.5% gmin + 0.5% gmax": {"stuck_gmin": 0.005, "stuck_gmax": 0.005},
    "drivers 5% / 10 mV": {"driver_gain_sigma": 0.05, "driver_offset_sigma": 0.01},
    "6 bits, accumulate": {"bits": 6},
    "6 bits, nearest": {"bits": 6, "write_rule": "nearest"},
    "ADC 8 bits": {"adc_bits": 8},
    "read noise 1 mV": {"read_noise": 1e-3},
    "pcm preset": {"preset": "pcm", "wire_resistance": 0.0},
    "rram preset": {"preset": "rram", "wire_resistance": 0.0},
    "rram, no stuck faults": {"preset": "rram", "wire_resistance": 0.0, "stuck_gmin": 0.0, "stuck_gmax": 0.0},
    "rram, no stuck, write noise 0.6": {"preset": "rram", "wire_resistance": 0.0, "stuck_gmin": 0.0, "stuck_gmax": 0.0,
                                        "write_noise": 0.6},
}
BASE = {"preset": "ideal", "w_max": 1.0}


def quality(spec, params, n: int, state=None) -> dict:
    x = api.sample(spec, params, n=n, device_state=state)
    q = api.evaluate(x).to_dict()
    return {k: q[k] for k in ("confidence", "classes_covered", "frechet")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="examples/tiny.yaml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n", type=int, default=500, help="samples judged per arm")
    parser.add_argument("--out", default="/tmp/analogep-devices-insitu")
    parser.add_argument("--only", nargs="*", help="settings to run (names of SETTINGS)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    out = Path(args.out)
    spec = load_spec(args.config).replace(train={"steps": args.steps})
    ideal_dir = out / "ideal"
    if not (ideal_dir / "checkpoint.npz").exists():
        api.train(spec, ideal_dir)
    ideal = load_checkpoint(ideal_dir)
    table = {"config": args.config, "steps": args.steps, "n": args.n, "ideal": quality(spec, ideal.params, args.n)}
    print(f"{args.config}, {args.steps} steps, {args.n} samples per arm")
    print(f"{'setting':<30} {'arm':<10} {'confidence':>10} {'classes':>8} {'frechet':>9}")
    q = table["ideal"]
    print(f"{'ideal circuit':<30} {'(a)':<10} {q['confidence']:10.3f} {q['classes_covered']:8d} {q['frechet']:9.2f}")
    for name, keys in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        devices = {**BASE, **keys} if "preset" not in keys else keys
        s = spec.replace(devices=devices)
        deployed = quality(s, ideal.params, args.n)
        run = out / name.replace(" ", "_").replace("/", "-").replace("%", "pct")
        if not (run / "checkpoint.npz").exists():
            api.train(s, run)
        ckpt = load_checkpoint(run)
        insitu = quality(s, ckpt.params, args.n, ckpt.devices)
        table[name] = {"devices": devices, "deployed": deployed, "in_situ": insitu}
        for arm, q in (("(b) deploy", deployed), ("(c) in situ", insitu)):
            print(f"{name:<30} {arm:<10} {q['confidence']:10.3f} {q['classes_covered']:8d} {q['frechet']:9.2f}")
        done = json.loads((out / "insitu.json").read_text()) if (out / "insitu.json").exists() else {}
        (out / "insitu.json").write_text(json.dumps({**done, **table}, indent=2, default=float))


if __name__ == "__main__":
    main()
