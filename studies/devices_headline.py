"""The headline devices study (docs/results/devices.md): for each realistic preset,
sample quality of (a) ideal training, (b) ideal training deployed on the devices, (c)
in-situ training on the same devices, with the same seeds and step budget. Not a test.

Trains nothing: give the runs (train them first, e.g.
`analogep train --steps 300 --out STUDY/ideal` and `... --devices pcm --out STUDY/pcm`).
Samples --n digits per arm through the numpy backend (in-situ arms on their own devices,
deployed arms on fresh ones, both from the same devices seed), judges them as `evaluate`
does, prints the table, writes STUDY/headline.json and, with --plot, a bar chart.

    .venv/bin/python studies/devices_headline.py STUDY [--presets pcm rram] [--n 1000] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from analogep import api
from analogep.config import with_devices
from analogep.training.checkpoint import load_checkpoint


def judge(spec, params, n: int, state=None) -> dict:
    x = api.sample(spec, params, n=n, device_state=state)
    q = api.evaluate(x).to_dict()
    return {k: q[k] for k in ("confidence", "classes_covered", "frechet")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="folder holding ideal/ and one run per preset")
    parser.add_argument("--presets", nargs="+", default=["pcm", "rram"],
                        help="preset names or devices YAML files; each one's run is STUDY/<name or file stem>")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--plot")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    study = Path(args.study)
    ideal = load_checkpoint(study / "ideal")
    table = {"steps": ideal.step, "n": args.n, "ideal": judge(ideal.spec, ideal.params, args.n), "presets": {}}
    for source in args.presets:
        preset = Path(source).stem
        insitu = load_checkpoint(study / preset)
        spec = with_devices(ideal.spec, source)
        table["presets"][preset] = {
            "deployed": judge(spec, ideal.params, args.n),
            "in_situ": judge(insitu.spec, insitu.params, args.n, insitu.devices),
            "in_situ_step": insitu.step,
        }
    print(f"{study}: {ideal.step} steps per run, {args.n} samples per arm")
    print(f"{'arm':<34} {'confidence':>10} {'classes':>8} {'frechet':>9}")
    rows = [("(a) ideal training, ideal circuit", table["ideal"])]
    for preset, arms in table["presets"].items():
        rows += [(f"(b) {preset}: ideal training, deployed", arms["deployed"]), (f"(c) {preset}: in situ", arms["in_situ"])]
    for label, q in rows:
        print(f"{label:<34} {q['confidence']:10.3f} {q['classes_covered']:8d} {q['frechet']:9.2f}")
    (study / "headline.json").write_text(json.dumps(table, indent=2, default=float))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        presets = list(table["presets"])
        x = np.arange(len(presets))
        width = 0.38
        for k, (arm, label) in enumerate((("deployed", "(b) ideal training, deployed"), ("in_situ", "(c) in-situ training"))):
            ax.bar(x + (k - 0.5) * width, [table["presets"][p][arm]["frechet"] for p in presets], width, label=label)
        ax.axhline(table["ideal"]["frechet"], color="k", ls="--", lw=1, label="(a) ideal training, ideal circuit")
        ax.set_yscale("log")
        ax.set_xticks(x, presets)
        ax.set_ylabel("Frechet distance to held-out digits (log)")
        ax.set_title(f"paper digits model, {ideal.step} training steps per arm, {args.n} samples")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
