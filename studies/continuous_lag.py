"""Why continuous generation and the Euler sampler part (docs/results/generation.md): from the
same noise, the Euler sampler at the run's dt and at a 10x finer dt (the exact flow's
proxy), and the continuous flow at one capacitance ratio with the hidden layer started at
0 V (the circuit) and at its equilibrium h*(x0) (no initial lag). Per pair: the Fréchet
distance of each set, the median per-sample distance, and the share of samples the
classifier puts in another class (a different basin of the energy).

    .venv/bin/python studies/continuous_lag.py RUN [--ratio 100] [--n 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import analogep
from analogep.backends.factory import make_backend
from analogep.evaluation.quality import _predict_proba, evaluate_samples
from analogep.model.factory import build_energy
from analogep.objectives.continuous import flow, float64_model
from analogep.objectives.flow_sampling import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--ratio", type=float, default=100.0)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    spec, params, origin = analogep.load_model(a.run)
    g = spec.generate
    model = build_energy(spec.model)
    backend = make_backend(spec, model, "numpy")
    backend.program(params)
    x0 = np.random.default_rng(a.seed).standard_normal((a.n, model.sizes[0])).astype(model.dtype)
    runs = {
        f"euler dt {g.dt:g}": generate(model, backend, spec.gradep, n=a.n, t1=g.t1, dt=g.dt, seed=a.seed),
        f"euler dt {g.dt / 10:g}": generate(model, backend, spec.gradep, n=a.n, t1=g.t1, dt=g.dt / 10, seed=a.seed),
    }
    m64, p64 = float64_model(spec, params)
    _, states = flow(m64, p64, x0.astype(np.float64), t1=g.t1, ratio=a.ratio, alpha=spec.gradep.alpha, rtol=1e-5)
    runs[f"continuous ratio {a.ratio:g}, h(0) = 0"] = states[-1][0]
    eq, _ = backend.clamped(x0, None)
    _, states = flow(m64, p64, x0.astype(np.float64), t1=g.t1, ratio=a.ratio, alpha=spec.gradep.alpha, rtol=1e-5,
                     hidden=[np.asarray(h, dtype=np.float64) for h in eq.state[1:]])
    runs[f"continuous ratio {a.ratio:g}, h(0) = h*(x0)"] = states[-1][0]
    reference = runs[f"euler dt {g.dt / 10:g}"].astype(np.float64)
    ref_class = _predict_proba(np.clip(reference, -1, 1), 0).argmax(axis=1)
    out = {"source": origin, "n": a.n, "seed": a.seed, "t1": g.t1, "against": f"euler dt {g.dt / 10:g}", "runs": {}}
    for name, x in runs.items():
        x = np.asarray(x, dtype=np.float64)
        cls = _predict_proba(np.clip(x, -1, 1), 0).argmax(axis=1)
        out["runs"][name] = {
            "frechet": evaluate_samples(x).frechet,
            "median_distance": float(np.median(np.linalg.norm(x - reference, axis=1))),
            "other_class": float(np.mean(cls != ref_class)),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
