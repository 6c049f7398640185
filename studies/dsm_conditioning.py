"""Does a noise-level-dependent energy help DSM generate? (issue 20; method.md 6.3-6.4)

For each conditioning (scale: score = read-out / sigma from one energy; level-bias: the
same read-out scale and a bias per level into x, h1 and h2) and seed, a DSM model of
examples/digits-dsm.yaml at the given layer sizes is trained by symmetric GradEP (model.seed
and train.seed both the seed), then judged by `evaluate` (Frechet distance, classes covered,
confidence) on samples of each sampler: annealed Langevin with K steps per level
(langevin:K) and the ancestral reverse-SDE sampler with K Langevin corrector steps per level
(ancestral:K). The per-level loss (sigma^2-weighted, zero score = 1) is measured on 300
points per level of the training data.

    .venv/bin/python studies/dsm_conditioning.py --out runs/dsm-cond --sizes 64,64,64 --steps 400 \
        --batch 512 --seeds 0,1 --samplers langevin:3,langevin:10,ancestral:3

Runs continue where a previous call stopped (api.train resume "auto"). Results:
docs/results/dsm.md (the conditioning section); result.json in --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from analogep import api
from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.spring import velocity
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.model.factory import build_energy
from analogep.objectives.dsm import DSMBatch, dsm_loss, level_code
from analogep.training.runlog import read_metrics

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits-dsm.yaml"


def per_level_loss(spec, params, points: int = 300, seed: int = 0) -> list[float]:
    """The DSM loss at each level, largest sigma first, on `points` training images."""
    data = load_dataset(spec.train.dataset, dtype=np.float32)
    rng = np.random.default_rng(seed)
    x0 = data[rng.choice(data.shape[0], size=points, replace=False)]
    model = build_energy(spec.model)
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    out = []
    for sigma in spec.dsm.sigmas:
        n = rng.standard_normal(x0.shape).astype(x0.dtype)
        sig = np.full((points, 1), sigma, dtype=x0.dtype)
        batch = DSMBatch(x0, sig, n, x0 + sig * n, spec.dsm.gain_power)
        if spec.dsm.code_size:
            backend.condition(level_code(spec.dsm, sigma))
        eq = backend.equilibrium(batch.x_t, None, None)
        out.append(round(dsm_loss(velocity(eq.state[0], batch.x_t, spec.gradep), batch), 4))
    return out


def sampler_settings(text: str) -> dict:
    kind, steps = text.split(":")
    return {"sampler": kind, "steps_per_level": int(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and result.json")
    parser.add_argument("--sizes", default="64,64,64", help="layer sizes, visible first")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--conditionings", default="scale,level-bias")
    parser.add_argument("--samplers", default="langevin:3,langevin:10,ancestral:3")
    parser.add_argument("--batch", type=int, default=1797, help="training batch (1797: the full set, the example's)")
    parser.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result_path = args.out / "result.json"
    results = json.loads(result_path.read_text()) if result_path.exists() else {}
    for cond in args.conditionings.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            name = f"{cond}-s{seed}-{'x'.join(map(str, sizes))}-b{args.batch}-{args.steps}"
            spec = load_spec(EXAMPLE).replace(
                name=name.replace(",", ""), model={"sizes": sizes, "seed": seed},
                train={"steps": args.steps, "seed": seed, "batch": args.batch, "checkpoint_every": min(args.steps, 200)},
                dsm={"conditioning": cond},
            )
            t0 = time.perf_counter()
            trained = api.train(spec, args.out / name, resume="auto")
            wall = time.perf_counter() - t0
            losses = [r["loss"] for r in read_metrics(args.out / name)]
            entry = results.get(name, {})
            entry.update({"conditioning": cond, "seed": seed, "sizes": sizes, "steps": args.steps, "batch": args.batch,
                          "loss_last50": float(np.mean(losses[-50:])), "train_wall_s": round(wall, 1),
                          "per_level_loss": per_level_loss(spec, trained.params)})
            for sampler in args.samplers.split(","):
                x = api.sample(spec, trained.params, n=args.n, dsm=sampler_settings(sampler))
                q = api.evaluate(x).to_dict()
                entry[sampler] = {"frechet": round(q["frechet"], 3), "classes": q["classes_covered"],
                                  "confidence": round(q["confidence"], 3),
                                  "max_abs": round(float(np.max(np.abs(x))), 2)}
                print(name, sampler, json.dumps(entry[sampler]), flush=True)
            results[name] = entry
            print(name, json.dumps({k: v for k, v in entry.items() if ":" not in k}), flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            result_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
