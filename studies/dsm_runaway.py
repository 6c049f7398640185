"""Where do DSM sampling chains run away? (issue 20)

Some annealed-Langevin chains of a DSM model end far outside the data range [-1, 1]. For a
trained run this samples n chains and, level by level (the same chains: a sampler over the
first k levels draws the same noise in the same order), records the share of chains with a
pixel beyond `--limit`, and at the end the free energy F(x) = min_h E(x, h) of the runaway
and the other chains, the read-out norm |v(x)|, and the weight norms of the model.

    .venv/bin/python studies/dsm_runaway.py RUN_DIR [--n 1000] [--steps-per-level 3] [--limit 3]

Results: docs/results/dsm.md.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.evaluation.quality import evaluate_samples
from analogep.model.factory import build_energy
from analogep.objectives.dsm import level_code
from analogep.objectives.langevin import annealed_langevin
from analogep.objectives.sampling import ScoreSampling
from analogep.training.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps-per-level", type=int, default=3)
    parser.add_argument("--limit", type=float, default=3.0, help="a chain with a pixel beyond this has run away")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.run)
    spec, params = ckpt.spec, ckpt.params
    d = spec.dsm
    model = build_energy(spec.model)
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    condition = (lambda s: backend.condition(level_code(d, s))) if d.code_size else None
    per_level = []
    x = None
    for k in range(1, d.levels + 1):
        last = k == d.levels
        sampling = ScoreSampling(model, backend, spec.gradep, args.n, d.gain_power, spec.generate.mode,
                                 spec.generate.seed, condition)
        x = annealed_langevin(sampling, sigmas=d.sigmas[:k], step=d.langevin_step,
                              steps_per_level=args.steps_per_level, denoise=last and d.denoise)
        away = np.max(np.abs(x), axis=1) > args.limit
        per_level.append({"sigma": round(d.sigmas[k - 1], 4), "runaway_share": float(away.mean()),
                          "max_abs": round(float(np.max(np.abs(x))), 2)})
        print(json.dumps(per_level[-1]), flush=True)
    away = np.max(np.abs(x), axis=1) > args.limit
    if condition is not None:
        condition(d.sigma_min)
    eq, de_dx = backend.clamped(x, None)
    free_energy = model.energy(params, eq.state)
    v = -spec.gradep.alpha * de_dx
    out = {
        "run": args.run, "step": ckpt.step, "steps_per_level": args.steps_per_level, "limit": args.limit,
        "per_level": per_level, "runaway_share": float(away.mean()),
        "free_energy": {"runaway_mean": float(free_energy[away].mean()) if away.any() else None,
                        "others_mean": float(free_energy[~away].mean())},
        "readout_norm": {"runaway_mean": float(np.linalg.norm(v[away], axis=1).mean()) if away.any() else None,
                         "others_mean": float(np.linalg.norm(v[~away], axis=1).mean())},
        "weight_norms": {k: round(float(np.linalg.norm(p)), 3) for k, p in params.items()},
        "all": {k: evaluate_samples(x).to_dict()[k] for k in ("frechet", "classes_covered")},
    }
    if away.any() and (~away).sum() > 100:
        rest = evaluate_samples(x[~away]).to_dict()
        out["without_runaways"] = {k: rest[k] for k in ("frechet", "classes_covered")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
