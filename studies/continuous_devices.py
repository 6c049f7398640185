"""Does relaxing longer help on non-ideal hardware? (docs/results/generation.md, section 5;
Gower 2026, section 4: extended generation.) A model trained on the ideal circuit is
deployed on fresh devices of each preset (devices.scale_fraction mapping, fault-aware
placement: docs/results/devices.md) and generates with the clamped Euler sampler and with
the circuit's continuous flow, from the same noise, at each t1; every `evaluate` figure,
mean ± sd over noise seeds.

    .venv/bin/python studies/continuous_devices.py RUN [--presets ideal,rram,pcm] [--t1 1,1.2,1.4]
        [--seeds 1,2] [--n 300] [--ratio 100] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import analogep
from analogep.config.load import with_devices
from analogep.evaluation.generation import FIGURES, _figures
from analogep.objectives.continuous import generate_continuous


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--presets", default="ideal,rram,pcm")
    ap.add_argument("--t1", default="1,1.2,1.4")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--ratio", type=float, default=100.0)
    ap.add_argument("--json", dest="out")
    a = ap.parse_args()
    spec, params, origin = analogep.load_model(a.run)
    t1s = [float(t) for t in a.t1.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    for preset in a.presets.split(","):
        deployed = with_devices(spec, preset)
        for sampler in ("euler", "continuous"):
            for t1 in t1s:
                per_seed = []
                for seed in seeds:
                    if sampler == "euler":
                        x = analogep.sample(deployed, params, n=a.n, t1=t1, seed=seed, mode="energy")
                    else:
                        x = generate_continuous(deployed, params, n=a.n, t1=t1, ratio=a.ratio, seed=seed)
                    per_seed.append(_figures(x)[0])
                row = {"preset": preset, "sampler": sampler, "t1": t1}
                for f in FIGURES:
                    v = np.array([s[f] for s in per_seed], dtype=float)
                    row[f] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
                rows.append(row)
                print(f"{preset:6s} {sampler:10s} t1 {t1:g}: " + ", ".join(
                    f"{f} {row[f]['mean']:.3f}±{row[f]['std']:.3f}" for f in FIGURES), flush=True)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"run": origin, "ratio": a.ratio, "n": a.n, "seeds": seeds, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
