"""Continuous generation against the clamped Euler sampler (objectives/continuous.py; Gower
2026, discussion: two timescales on hardware).

For each visible-to-hidden capacitance ratio: every `evaluate` figure of the continuous
samples, mean and spread over noise seeds, beside the Euler sampler's at the same t1 from
the same noise (where timescale separation stops being adiabatic, quality leaves the
Euler band); the circuit's seconds and joules per sample (accounting/continuous.py) beside
the clamped loop's (`analogep energy`); and, optionally, ngspice transients of a few
samples against the numpy flow from the same noise (spice/generation.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from analogep.accounting.continuous import clamped_sample, continuous_sample
from analogep.accounting.programming import capacitance
from analogep.config.spec import Spec
from analogep.evaluation.generation import FIGURES, _figures, _summary
from analogep.model.energy import Params
from analogep.objectives.continuous import float64_model, generate_continuous
from analogep.objectives.flow_sampling import generate
from analogep.backends.factory import make_backend
from analogep.model.factory import build_energy
from analogep.spice.generation import generate_spice

# The numpy flow's tolerance in the quality sweep: its samples move by ~1e-5, far below
# the seed-to-seed spread of any figure.
STUDY_RTOL = 1e-5


def continuous_study(
    spec: Spec,
    params: Params,
    *,
    ratios: list[float],
    seeds: list[int],
    n: int,
    t1: float,
    spice_samples: int = 0,
    spice_ratio: float = 10.0,
    spice_reltol: float = 1e-6,
    energy_points: int = 8,
    precharge: float = 0.0,
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Quality, time and energy of continuous generation against the ratio (each with a
    precharge of `precharge` hidden time constants), and the Euler sampler's at t1
    (generate.dt, energy mode) beside it."""
    model = build_energy(spec.model)
    backend = make_backend(spec, model, "numpy")
    backend.program(params)
    euler_rows, reference = [], {}
    for seed in seeds:
        say(f"Euler sampler: t1 {t1:g}, dt {spec.generate.dt:g}, seed {seed}")
        x = generate(model, backend, spec.gradep, n=n, t1=t1, dt=spec.generate.dt, mode="energy", seed=seed)
        figs, reference = _figures(x)
        euler_rows.append([figs])
    per_seed = []
    for seed in seeds:
        row = []
        for r in ratios:
            say(f"continuous flow: ratio {r:g}, seed {seed}")
            row.append(_figures(generate_continuous(spec, params, n=n, t1=t1, ratio=r, seed=seed, rtol=STUDY_RTOL,
                                                    precharge=precharge))[0])
        per_seed.append(row)
    euler = _summary(euler_rows)
    result: dict = {
        "ratios": list(ratios), "precharge": precharge, "seeds": list(seeds), "n": n, "t1": t1, "dt": spec.generate.dt, "reference": reference,
        "figures": _summary(per_seed), "euler": {f: {"mean": euler[f]["mean"][0], "std": euler[f]["std"][0]} for f in FIGURES},
    }
    say("energy and time per sample")
    clamped = clamped_sample(spec, params, points=energy_points)
    result["energy"] = {
        "continuous": [_estimate(continuous_sample(spec, params, t1=t1, ratio=r, points=energy_points, precharge=precharge)) for r in ratios],
        "clamped": _estimate(clamped),
        "hidden_capacitance_f": capacitance(spec),
    }
    if spice_samples:
        say(f"ngspice transients: {spice_samples} samples at ratio {spice_ratio:g}")
        result["agreement"] = agreement(spec, params, n=spice_samples, t1=t1, ratio=spice_ratio, reltol=spice_reltol,
                                        seed=seeds[0], precharge=precharge)
    return result


def _estimate(e) -> dict:
    return {"label": e.label, "seconds": e.seconds, "joules": e.joules, "breakdown": e.breakdown}


def agreement(
    spec: Spec, params: Params, *, n: int, t1: float, ratio: float, reltol: float, seed: int, precharge: float = 0.0
) -> dict:
    """ngspice's transient against the numpy flow from the same noise, per sample: the
    largest difference over the visible nodes, over the full scale (the largest |x| of the
    numpy samples), and each against the Euler sampler's distance from the same noise."""
    x0 = np.random.default_rng(seed).standard_normal((n, spec.model.sizes[0])).astype(spec.model.dtype)
    model, p64 = float64_model(spec, params)
    c_h = capacitance(spec)
    spice = generate_spice(spec, model, p64, x0.astype(np.float64), t1=t1, ratio=ratio, hidden_capacitance=c_h,
                           reltol=reltol, precharge=precharge)
    numpy = generate_continuous(spec, params, n=n, t1=t1, ratio=ratio, seed=seed, precharge=precharge).astype(np.float64)
    euler = generate(build_energy(spec.model), _programmed(spec, params), spec.gradep, n=n, t1=t1, dt=spec.generate.dt,
                     seed=seed).astype(np.float64)
    scale = float(np.abs(numpy).max())
    return {
        "ratio": ratio, "precharge": precharge, "reltol": reltol, "n": n, "full_scale": scale,
        "spice_vs_numpy": (np.abs(spice.samples - numpy).max(axis=1) / scale).tolist(),
        "numpy_vs_euler": (np.abs(numpy - euler).max(axis=1) / scale).tolist(),
        "circuit_seconds": spice.circuit_seconds, "ngspice_seconds": spice.run_seconds,
    }


def _programmed(spec: Spec, params: Params):
    backend = make_backend(spec, build_energy(spec.model), "numpy")
    backend.program(params)
    return backend
