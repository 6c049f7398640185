"""Does a finite relaxation budget break one-sided EP in practice? (De 2026; method.md 6.2)

`analogep study budget` measures one gradient; this trains with it. For each budget K, a
DSM model (examples/tiny.yaml, conditioning scale) is trained 400 steps with every phase
exactly K fast-solver sweeps (tol 0), one-sided and symmetric, the trust checks off (they
would drop every unconverged point). Each model is then judged with the converged
relaxation of examples/tiny.yaml: 1000 annealed-Langevin samples through `evaluate`, and
the EP gradient as trained (K sweeps) against the exact one at the final weights.

    .venv/bin/python studies/dsm_budget_training.py --out runs/dsm-budget [--budgets 2,3,1000] [--steps 400]

Results: docs/results/dsm.md and method.md 6.2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from analogep import api
from analogep.config import load_spec
from analogep.training.runlog import read_metrics

TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and result.json")
    parser.add_argument("--budgets", default="2,3,1000", help="comma-separated sweeps per phase")
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    base = yaml.safe_load(TINY.read_text())
    results = {}
    for k in (int(b) for b in args.budgets.split(",")):
        for phases in (2, 3):
            name = f"K{k}-{'one-sided' if phases == 2 else 'symmetric'}"
            spec = load_spec(TINY).replace(
                name=name,
                train={"objective": "dsm", "steps": args.steps, "checkpoint_every": args.steps, "max_residual": 1e9,
                       "max_asymmetry": 1.0, "max_dropped": 1.0},
                relax={"free_steps": k, "nudge_steps": k, "tol": 0.0},
                gradep={"phases": phases},
                dsm={"conditioning": "scale"},
            )
            result = api.train(spec, args.out / name)
            judged = spec.replace(relax=base["relax"])  # sampled with the converged relaxation
            quality = api.evaluate(api.sample(judged, result.params, n=1000)).to_dict()
            grad = api.gradcheck(spec, result.params, batch=32)
            losses = [r["loss"] for r in read_metrics(args.out / name)]
            results[name] = {
                "sweeps": k, "phases": phases, "loss_last50": float(np.mean(losses[-50:])),
                "confidence": quality["confidence"], "classes": quality["classes_covered"],
                "frechet": quality["frechet"], "grad_cosine_final": grad["cosine"],
            }
            print(name, json.dumps(results[name]), flush=True)
    (args.out / "result.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
