"""One sweep for the GradEP phases: each training point's free, +beta and -beta solutions
follow each other in one .dc sweep, with the nudge strength tabled by the sweep index."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from analogep.backends.spring import Nudge
from analogep.spice.run.ngspice import RunResult
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.ep.phases import nudge_anchor, run_phases
from analogep.evaluation.gradcheck import as_float64
from analogep.model.factory import build_energy
from analogep.objectives.flow import sample_flow_batch

pytestmark = pytest.mark.spice
TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"


@pytest.fixture(scope="module")
def setup():
    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed")
    spec = load_spec(TINY)
    model, params = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed)))
    batch = sample_flow_batch(load_dataset(dtype=np.float64), 24, np.random.default_rng(4), True)
    return spec, model, params, batch


class _Recording:
    """A pool that records the decks it is given; `cut` truncates the first sweep after that many rows."""

    def __init__(self, pool, cut: int | None = None):
        self.pool, self.cut, self.decks = pool, cut, []

    def __getattr__(self, name):
        return getattr(self.pool, name)

    def map(self, decks, timeout):
        self.decks.append(decks)
        results = self.pool.map(decks, timeout)
        if self.cut is not None and len(self.decks) == 1:
            r = results[0]
            results[0] = RunResult({k: v[: self.cut] for k, v in r.vectors.items()}, self.cut, "timestep too small (test)")
        return results


def _backend(spec, model, params, cut=None):
    from analogep.backends.spice_backend import SpiceBackend

    backend = SpiceBackend.from_spec(spec, model, runner="shared", workers=1)
    backend.pool = _Recording(backend.pool, cut)
    backend.program(params)
    return backend


def _per_phase(backend, batch, gradep):
    """The phases one sweep per phase (what run_phases does for a backend without `phases`)."""
    anchor = nudge_anchor(batch.x_t, batch.target, gradep)
    free = backend.equilibrium(batch.x_t, None, None)
    return [free] + [backend.equilibrium(batch.x_t, Nudge(b, anchor), free.state) for b in (gradep.beta, -gradep.beta)]


def test_one_sweep_carries_all_phases_and_matches_the_per_phase_sweeps(setup):
    spec, model, params, batch = setup
    backend = _backend(spec, model, params)
    try:
        together = run_phases(backend, batch.x_t, batch.target, spec.gradep).all
        one_sweep = backend.pool.decks
        assert len(one_sweep) == 1 and len(one_sweep[0]) == 1 and ".dc Vidx 0 71 1" in one_sweep[0][0]
        backend.pool.decks = []
        apart = _per_phase(backend, batch, spec.gradep)
        assert len(backend.pool.decks) == 3
    finally:
        backend.close()
    for a, b in zip(together, apart):
        for sa, sb in zip(a.state, b.state):
            np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-8)
        assert a.residual < 1e-6
    assert np.max(np.abs(together[1].state[0] - together[2].state[0])) > 1e-5  # the nudges took effect


def test_a_sweep_that_stops_is_finished_row_by_row_in_each_rows_own_phase(setup):
    spec, model, params, batch = setup
    backend = _backend(spec, model, params)
    try:
        want = run_phases(backend, batch.x_t, batch.target, spec.gradep).all
    finally:
        backend.close()
    backend = _backend(spec, model, params, cut=31)  # row 31: point 10's +beta phase
    try:
        got = run_phases(backend, batch.x_t, batch.target, spec.gradep).all
        decks = [d for call in backend.pool.decks for d in call]
    finally:
        backend.close()
    alone = [d for d in decks if "\n.op\n" in d]
    assert len(alone) == 1 and ": nudge_plus\n" in alone[0]
    assert ".dc Vidx 0 39 1" in decks[-1]  # the rest of the sweep: rows 32..71
    for a, b in zip(got, want):
        for sa, sb in zip(a.state, b.state):
            np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-8)
