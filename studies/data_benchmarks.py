"""The issue-22 bars: flow matching on 8 Gaussians, two moons and a user's 16-D .npz
mixture of Gaussians, each over several seeds, judged by `evaluate`'s classifier-free
figures against held-out data (docs/results/data.md).

    OMP_NUM_THREADS=1 .venv/bin/python studies/data_benchmarks.py --out runs/data-benchmarks [--seeds 0,1,2]

Each run is examples/moons.yaml or examples/eight-gaussians.yaml with model.seed and
train.seed set to the seed (the data's own seed stays 0), and any `--set SECTION.KEY=VALUE`
(YAML value; e.g. --set train.time_conditioning=time-bias --set train.time_levels=10, the
time input of docs/time-conditioning.md; --tag names those runs' folders); the 16-D file is written here
(MIXTURE_*), trained with examples/moons.yaml's settings at sizes [16, 64, 64], data.scaling
minmax. Runs are resumed where a folder holds one, so the script can be run again.
Prints a markdown table and writes summary-WHICH.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from analogep import api

MIXTURE_COMPONENTS, MIXTURE_DIM, MIXTURE_ROWS, MIXTURE_STD = 4, 16, 4000, 0.5


def write_mixture(path: Path, seed: int = 0) -> Path:
    """A mixture of MIXTURE_COMPONENTS Gaussians in MIXTURE_DIM dimensions (means N(0, 4 I),
    isotropic std MIXTURE_STD), in the data's own units, as an .npz under key 'x'."""
    rng = np.random.default_rng(seed)
    means = 2.0 * rng.standard_normal((MIXTURE_COMPONENTS, MIXTURE_DIM))
    x = means[rng.integers(0, MIXTURE_COMPONENTS, MIXTURE_ROWS)] + MIXTURE_STD * rng.standard_normal((MIXTURE_ROWS, MIXTURE_DIM))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x)
    return path


def parse_sets(items: list[str]) -> dict:
    """--set SECTION.KEY=VALUE items as a nested mapping for Spec.replace."""
    import yaml

    changes: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        *path, last = key.split(".")
        node = changes
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return changes


def spec_for(which: str, seed: int, out: Path, changes: dict | None = None):
    root = Path(__file__).resolve().parents[1] / "examples"
    if which == "eight_gaussians":
        spec = api.load_config(root / "eight-gaussians.yaml")
    else:
        spec = api.load_config(root / "moons.yaml")
    if which == "npz16":
        path = write_mixture(out / "mixture16.npz")
        spec = spec.replace(name="mixture16", model={"sizes": [MIXTURE_DIM, 64, 64]},
                            train={"dataset": "file"}, data={"path": str(path), "key": "x", "scaling": "minmax"})
    if changes:
        spec = spec.replace(**changes)
    return spec.replace(model={"seed": seed}, train={"seed": seed})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/data-benchmarks"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--which", default="eight_gaussians,moons,npz16")
    parser.add_argument("--n", type=int, default=1000, help="samples judged")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a config change of every run (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the run folders (runs with --set changes)")
    args = parser.parse_args()
    changes = parse_sets(args.set)
    args.tag = f"-{args.tag}" if args.tag else ""
    rows = []
    for which in args.which.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            spec = spec_for(which, seed, args.out, changes)
            run = args.out / f"{which}{args.tag}-s{seed}"
            api.train(spec, run, resume="auto")
            spec, params, _ = api.load_model(run)
            x = api.sample(spec, params, n=args.n)
            report = api.evaluate(x, spec).to_dict()
            (run / "quality.json").write_text(json.dumps(report, indent=2))
            row = {"data": which + args.tag, "seed": seed, "mmd": report["mmd"], "mmd_ref": report["reference"]["mmd"],
                   "ratio": report["ratios"]["mmd"], "sw_ratio": report["ratios"]["sliced_wasserstein"],
                   "frechet_ratio": report["ratios"].get("frechet"), "nn": report["nearest_train_distance"],
                   "nn_ref": report["reference"]["nearest_train_distance"], "outside": report["outside_range"],
                   "modes": report["modes_covered"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / f"summary-{args.which.replace(',', '+')}{args.tag}.json").write_text(json.dumps(rows, indent=2))
    print("| data | MMD ratio (mean ± sd) | SW ratio | Fréchet ratio | modes | seeds |")
    print("|---|---|---|---|---|---|")
    for which in dict.fromkeys(r["data"] for r in rows):
        sel = [r for r in rows if r["data"] == which]

        def ms(key):
            v = np.array([r[key] for r in sel], dtype=float)
            return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f}"

        modes = ", ".join(str(r["modes"]) for r in sel) if sel[0]["modes"] is not None else "-"
        print(f"| {which} | {ms('ratio')} | {ms('sw_ratio')} | {ms('frechet_ratio')} | {modes} | {len(sel)} |")


if __name__ == "__main__":
    main()
