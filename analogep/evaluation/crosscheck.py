"""`analogep check`: the same training points solved by ngspice and by numpy relaxation.

For all three GradEP phases: node-voltage errors, the velocity read-out error and the
cosine between the EP gradients measured from each backend's equilibria (through the
same measurement layer). On ideal devices the circuit is the energy network, so the two
must agree to the solvers' tolerances (1e-6 relative or better). On non-ideal devices
(spec.devices) both backends program the same devices (the same seeded draws), so they
must agree as tightly; with crossbar line resistance, which numpy does not model, the
difference is the IR-drop error and is reported, not judged.

Relative errors are full-scale: max |V_spice - V_numpy| over all nodes and points,
divided by the largest |V_numpy| (for the velocity: by the largest |v_numpy|).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.factory import make_backend
from analogep.devices.crossbar import Devices
from analogep.spice.run.ngspice import ngspice_info
from analogep.config.sections import RelaxSpec
from analogep.config.spec import Spec
from analogep.data import load_dataset
from analogep.backends.spring import velocity
from analogep.ep.levels import gradient_by_level, phases_by_level
from analogep.evaluation.gradcheck import REFERENCE_RELAX, as_float64
from analogep.model.energy import Params
from analogep.model.tensors import params_dot, params_norm
from analogep.objectives.factory import build_objective

TOLERANCE = 1e-6
# A circuit on devices with no energy (mismatched copies, driver mismatch): its own
# dynamics, Euler steps of C ds/dt = -KCL, reach its stable fixed points, where block
# descent can cycle (tiny, rram, mismatched copies: 2 of 8 points stuck at residual 2.5).
NO_ENERGY_RELAX = RelaxSpec(solver="euler", step=0.1, free_steps=20000, nudge_steps=20000, tol=1e-11)


@dataclass
class CheckReport:
    n: int
    max_abs_error: float
    max_rel_error: float
    velocity_abs_error: float
    velocity_rel_error: float
    grad_cosine: float
    grad_rel_error: float
    per_phase_abs_error: dict
    spice_seconds: float
    numpy_seconds: float
    solves_per_s: float
    runner: str
    ngspice: str
    klu: bool
    passed: bool
    devices: str = "ideal"
    wire_resistance: float = 0.0  # ohm per segment; > 0: the difference is reported, not judged

    def to_dict(self) -> dict:
        return asdict(self)


def crosscheck(spec: Spec, params: Params, *, n: int, seed: int = 0, runner: str | None = None, workers: int = 0):
    """Solve n training points of the config's objective both ways; return (report, numpy
    volts, spice volts)."""
    model, p64 = as_float64(spec, params)
    data = load_dataset(spec.train.dataset, dtype=np.float64, source=spec.data)
    batch = build_objective(spec).batch(data, n, np.random.default_rng(seed))
    spice = make_backend(spec, model, "spice", runner=runner, workers=workers)
    try:
        t0 = time.perf_counter()
        spice.program(p64)
        ps = phases_by_level(spice, batch, spec.gradep)  # level by level with a level-dependent energy
        t_spice = time.perf_counter() - t0
    finally:
        spice.close()
    t0 = time.perf_counter()
    numpy = NumpyBackend(model, spec.gradep, REFERENCE_RELAX, None if spec.devices.ideal else Devices(spec, model))
    numpy.program(p64)
    if numpy.realisation is not None and not numpy.realisation.has_energy:
        numpy.relax_spec = NO_ENERGY_RELAX
    pn = phases_by_level(numpy, batch, spec.gradep)
    t_numpy = time.perf_counter() - t0

    names = ["free", "plus", "minus"][: len(pn.all)]
    ref = np.concatenate([np.concatenate([s.ravel() for s in e.state]) for e in pn.all])
    got = np.concatenate([np.concatenate([s.ravel() for s in e.state]) for e in ps.all])
    per_phase = {
        name: float(max(np.max(np.abs(a - b)) for a, b in zip(es.state, en.state)))
        for name, es, en in zip(names, ps.all, pn.all)
    }
    max_abs = float(np.max(np.abs(got - ref)))
    v_ref = velocity(pn.free.state[0], batch.x_t, spec.gradep)
    v_got = velocity(ps.free.state[0], batch.x_t, spec.gradep)
    v_abs = float(np.max(np.abs(v_got - v_ref)))
    weight = None if batch.weight is None else batch.weight.astype(np.float64)  # the objective's loss weights
    every = np.ones(n, dtype=bool)
    g_ref = gradient_by_level(model, p64, pn, every, batch, weight)
    g_got = gradient_by_level(model, p64, ps, every, batch, weight)
    cos = params_dot(g_ref, g_got) / (params_norm(g_ref) * params_norm(g_got) + 1e-300)
    diff = {k: g_got[k] - g_ref[k] for k in g_ref}
    rel = max_abs / max(float(np.max(np.abs(ref))), 1e-30)
    report = CheckReport(
        n=n,
        max_abs_error=max_abs,
        max_rel_error=rel,
        velocity_abs_error=v_abs,
        velocity_rel_error=v_abs / max(float(np.max(np.abs(v_ref))), 1e-30),
        grad_cosine=float(cos),
        grad_rel_error=params_norm(diff) / max(params_norm(g_ref), 1e-300),
        per_phase_abs_error=per_phase,
        spice_seconds=t_spice,
        numpy_seconds=t_numpy,
        solves_per_s=len(ps.all) * n / t_spice,
        runner=spice.pool.runner,
        ngspice=ngspice_info().version,
        klu=ngspice_info().klu,
        passed=bool(spec.devices.wire_resistance > 0 or (rel <= TOLERANCE and cos >= 1 - TOLERANCE)),
        devices="ideal" if spec.devices.ideal else spec.devices.preset,
        wire_resistance=spec.devices.wire_resistance,
    )
    return report, ref, got
