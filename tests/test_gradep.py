"""GradEP: the EP estimate is the gradient of the flow loss (method.md section 3).

Reference: the exact gradient by implicit differentiation (gradcheck.exact_gradient), itself
checked against finite differences of the loss. The EP bias must shrink as O(beta) for
two-phase and O(beta^2) for symmetric three-phase nudging.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from analogep.config import TrainSpec
from analogep.data import load_dataset
from analogep.ep.step import gradep_step
from analogep.ep.trust import diagnose, trusted_points
from analogep.evaluation import gradcheck as gc
from analogep.model.tensors import params_dot, params_map, params_norm
from analogep.objectives.flow import sample_flow_batch

MAX_NUDGE_ASYMMETRY = TrainSpec().max_asymmetry
from analogep.backends.numpy_backend import NumpyBackend
from analogep.config import load_spec
from analogep.backends.spring import velocity
from analogep.ep.measurement import ep_gradient, nudge_asymmetry
from analogep.ep.phases import PhaseResult, run_phases
from analogep.model.factory import build_energy
from analogep.objectives.flow import flow_loss
from analogep.solvers.base import Equilibrium

TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"


def _as32(batch):
    """The flow batch in float32, as training sees it."""
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name).astype(np.float32) for f in dataclasses.fields(batch)
                                         if getattr(batch, f.name) is not None})


def _drop_first(batch):
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name)[1:] for f in dataclasses.fields(batch)
                                         if getattr(batch, f.name) is not None})


@pytest.fixture(scope="module")
def setup():
    """tiny.yaml (64-16-16) at its initial weights, float64 copies, one flow batch of 8."""
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(spec.model.seed))
    model64, params64 = gc.as_float64(spec, params)
    data = load_dataset(dtype=np.float64)
    batch = sample_flow_batch(data, 8, np.random.default_rng(0), ot=True)
    exact = gc.exact_gradient(model64, params64, batch, spec.gradep)
    return spec, model, params, model64, params64, batch, exact


def test_ep_gradient_matches_the_exact_gradient_at_the_default_beta(setup):
    spec, model, params, model64, params64, batch, exact = setup
    assert spec.gradep.beta == 1.25e-3 and spec.gradep.phases == 3
    # as training measures it: the config's solver, tolerance and float32
    as_trained = gc.compare(gc.ep_estimate(model, params, batch, spec.gradep, spec.relax), exact)
    assert as_trained.cosine >= 0.999
    assert as_trained.rel_error < 0.05
    # float64, tight relaxation: only the method's O(beta^2) bias is left
    tight = gc.compare(gc.ep_estimate(model64, params64, batch, spec.gradep, gc.REFERENCE_RELAX), exact)
    assert tight.cosine >= 0.9999
    assert tight.rel_error < 0.02
    for name, stats in tight.per_tensor.items():
        assert stats["cosine"] >= 0.999, name


def test_exact_gradient_matches_finite_differences_of_the_loss(setup):
    spec, _, _, model64, params64, batch, exact = setup
    rng = np.random.default_rng(1)
    for _ in range(3):
        direction = {k: rng.standard_normal(v.shape) for k, v in params64.items()}
        fd = gc.directional_fd(model64, params64, batch, spec.gradep, direction)
        analytic = params_dot(exact, direction)
        assert abs(fd) > 1e-3  # a direction along which the loss really changes
        assert analytic == pytest.approx(fd, rel=1e-5)


def test_exact_gradient_matches_finite_differences_per_tensor(setup):
    """One direction per tensor, so an error confined to one tensor cannot hide."""
    spec, _, _, model64, params64, batch, exact = setup
    rng = np.random.default_rng(2)
    for name in params64:
        direction = {k: np.zeros_like(v) for k, v in params64.items()}
        direction[name] = rng.standard_normal(params64[name].shape)
        fd = gc.directional_fd(model64, params64, batch, spec.gradep, direction)
        assert params_dot(exact, direction) == pytest.approx(fd, rel=1e-4, abs=1e-7), name


def test_loss_at_is_half_the_squared_velocity_error(setup):
    spec, _, _, model64, params64, batch, _ = setup
    eq = gc.free_equilibrium(model64, params64, batch.x_t, spec.gradep)
    v = spec.gradep.alpha * spec.gradep.lam * (eq.state[0] - batch.x_t)
    expected = 0.5 * np.mean(np.sum((v - batch.u) ** 2, axis=1))
    assert gc.loss_at(model64, params64, batch, spec.gradep) == pytest.approx(expected, rel=1e-12)
    # the logged training loss is the per-pixel mean of the same squared error
    assert flow_loss(v, batch.u) == pytest.approx(2 * expected / v.shape[1], rel=1e-12)


def _slope(betas, errors) -> float:
    return float(np.polyfit(np.log(betas), np.log(errors), 1)[0])


def test_ep_bias_shrinks_as_beta_for_two_phase_and_beta_squared_for_three_phase(setup):
    spec, _, _, model64, params64, batch, _ = setup
    # below ~1e-5 the 1e-11 relaxation tolerance / beta starts to show; above ~1e-3 the
    # higher-order terms do: this range is where the leading bias term dominates
    betas = np.geomspace(1e-5, 4e-4, 6)
    errors = gc.beta_sweep(model64, params64, batch, spec.gradep, betas)
    two, three = np.array(errors["two-phase"]), np.array(errors["three-phase"])
    assert np.all(np.diff(two) > 0) and np.all(np.diff(three) > 0)
    assert _slope(betas, two) == pytest.approx(1.0, abs=0.1)
    assert _slope(betas, three) == pytest.approx(2.0, abs=0.15)
    assert np.all(three < two)  # symmetric nudging is more accurate at every beta here


def test_two_phase_variant(setup):
    spec, model, params, model64, params64, batch, exact = setup
    gradep2 = dataclasses.replace(spec.gradep, phases=2)
    backend = NumpyBackend(model64, gradep2, gc.REFERENCE_RELAX)
    backend.program(params64)
    phases = run_phases(backend, batch.x_t, batch.u, gradep2)
    assert phases.minus is None and len(phases.all) == 2
    grad = ep_gradient(model64, params64, phases)
    # one-sided estimate: [dE/dtheta(+beta) - dE/dtheta(free)] / beta
    plus = model64.param_terms(params64, phases.plus.state)
    free = model64.param_terms(params64, phases.free.state)
    for k in grad:
        np.testing.assert_allclose(grad[k], (plus[k] - free[k]) / gradep2.beta, rtol=1e-12, atol=1e-15)
    comparison = gc.compare(grad, exact)
    assert comparison.cosine >= 0.995
    # O(beta) bias: clearly worse than the three-phase estimate at the same beta
    three = gc.compare(gc.ep_estimate(model64, params64, batch, spec.gradep, gc.REFERENCE_RELAX), exact)
    assert comparison.rel_error > 3 * three.rel_error
    # and the training step runs it without trouble, reporting no asymmetry
    step = _step(model, NumpyBackend(model, gradep2, spec.relax), params, _as32(batch), gradep2, 1e-2)
    assert step.trouble == []
    assert step.metrics["nudge_asym"] == 0.0
    assert gc.compare(step.grad, exact).cosine >= 0.995


def test_gradep_step_reads_velocity_from_the_spring_and_loss_from_it(setup):
    spec, model, params, _, _, batch, _ = setup
    b32 = _as32(batch)
    step = _step(model, NumpyBackend(model, spec.gradep, spec.relax), params, b32, spec.gradep, 1e-2)
    x_star = step.phases.free.state[0]
    np.testing.assert_allclose(step.v, spec.gradep.alpha * spec.gradep.lam * (x_star - b32.x_t), rtol=1e-6)
    np.testing.assert_array_equal(step.v, velocity(x_star, b32.x_t, spec.gradep))
    assert step.loss == pytest.approx(float(np.mean((step.v.astype(np.float64) - b32.u) ** 2)), rel=1e-6)
    assert step.metrics["loss"] == step.loss
    assert step.metrics["grad_norm"] == pytest.approx(params_norm(step.grad))
    assert step.trouble == []
    assert step.metrics["residual_free"] < spec.relax.tol
    # linear response: d+- ~ +-k (a - x) / (1 + lambda +- k), k = beta (alpha lambda)^2, so the
    # asymmetry |d+ + d-| / sqrt(2 (|d+|^2 + |d-|^2)) is about k / (1 + lambda) = 0.07, far below 0.5
    k = spec.gradep.nudge_stiffness
    assert step.metrics["nudge_asym"] == pytest.approx(k / (1 + spec.gradep.lam), rel=0.2)
    assert all(g.dtype == np.float32 for g in step.grad.values())


def test_gradient_descent_along_the_ep_gradient_lowers_the_loss(setup):
    spec, _, _, model64, params64, batch, _ = setup
    grad = gc.ep_estimate(model64, params64, batch, spec.gradep, gc.REFERENCE_RELAX)
    before = gc.loss_at(model64, params64, batch, spec.gradep)
    lr = 1e-3 / params_norm(grad)
    after = gc.loss_at(model64, params_map(lambda p, g: p - lr * g, params64, grad), batch, spec.gradep)
    assert after < before


def test_minus_phase_is_finite_when_the_nudge_cancels_the_spring(setup):
    """beta = 1/(alpha^2 lambda) passes validation with the fast solver (1 + lambda - beta
    (alpha lambda)^2 = 1 > 0: the leak keeps the energy bounded), so the -beta phase must
    relax to a finite equilibrium like any other."""
    spec, _, _, model64, params64, batch, _ = setup
    spec = spec.replace(gradep={"beta": 1.0 / (spec.gradep.alpha**2 * spec.gradep.lam)})
    assert spec.gradep.nudge_stiffness == spec.gradep.lam  # the -beta spring cancels lambda exactly
    backend = NumpyBackend(model64, spec.gradep, gc.REFERENCE_RELAX)
    backend.program(params64)
    phases = run_phases(backend, batch.x_t, batch.u, spec.gradep)
    assert all(np.all(np.isfinite(s)) for s in phases.minus.state)
    assert phases.minus.residual < 1e-8


# --- trouble: per-point checks and the step verdict -------------------------------------------------


def _metrics(**changes) -> dict:
    clean = {"loss": 1.0, "residual_free": 1e-6, "residual_nudge": 1e-6, "nudge_asym": 0.01, "dropped": 0}
    return {**clean, **changes}


def _grad() -> dict:
    return {"W0": np.ones((2, 3)), "b0": np.zeros(2)}


def test_diagnose_passes_a_clean_step():
    assert diagnose(_metrics(), _grad(), 8, 0.05) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_diagnose_flags_non_finite_gradients(bad):
    grad = _grad()
    grad["W0"][1, 2] = bad
    trouble = diagnose(_metrics(), grad, 8, 0.05)
    assert len(trouble) == 1 and "non-finite" in trouble[0]
    assert any("non-finite" in t for t in diagnose(_metrics(loss=float(bad)), _grad(), 8, 0.05))


def test_diagnose_flags_too_many_dropped_points():
    assert diagnose(_metrics(dropped=1), _grad(), 20, 0.05) == []  # 1 of 20 is 5%: allowed
    trouble = diagnose(_metrics(dropped=2, residual_free=0.5), _grad(), 20, 0.05)
    assert len(trouble) == 1 and "2 of 20" in trouble[0] and "unconverged" in trouble[0]
    # every point dropped: no gradient at all
    trouble = diagnose(_metrics(dropped=8), None, 8, 0.05)
    assert len(trouble) == 1 and "8 of 8" in trouble[0]  # one reason, not a second 'non-finite' line


def _eq(state, residual=None) -> Equilibrium:
    batch = state[0].shape[0]
    return Equilibrium(state, np.zeros(batch) if residual is None else np.asarray(residual, float), 1)


def test_nudge_asymmetry_measures_broken_linear_response():
    rng = np.random.default_rng(0)
    x, d = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    symmetric = PhaseResult(_eq([x]), _eq([x + d]), _eq([x - d]), 1e-3)
    np.testing.assert_allclose(nudge_asymmetry(symmetric), 0.0, atol=1e-12)
    jumped = PhaseResult(_eq([x]), _eq([x + d]), _eq([x + d]), 1e-3)  # both nudges moved the same way
    np.testing.assert_allclose(nudge_asymmetry(jumped), 1.0, rtol=1e-12)
    one_bad = x - d
    one_bad[2] = x[2] + 3 * d[2]  # one training point jumped
    asym = nudge_asymmetry(PhaseResult(_eq([x]), _eq([x + d]), _eq([one_bad]), 1e-3))
    assert asym[2] > MAX_NUDGE_ASYMMETRY
    np.testing.assert_allclose(np.delete(asym, 2), 0.0, atol=1e-12)
    two_phase = PhaseResult(_eq([x]), _eq([x + d]), None, 1e-3)
    np.testing.assert_array_equal(nudge_asymmetry(two_phase), np.zeros(4))


def test_trusted_points_drops_unconverged_asymmetric_and_non_finite_points():
    assert MAX_NUDGE_ASYMMETRY == 0.5
    rng = np.random.default_rng(1)
    x, d = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    minus = x - d
    minus[1] = x[1] + 0.2 * d[1]  # asymmetry 0.6 / sqrt(2 * 1.04) = 0.83 > 0.5
    minus[2] = x[2] - 0.4 * d[2]  # asymmetry 0.6 / sqrt(2 * 1.16) = 0.39: still trusted
    plus = x + d
    plus[3, 0] = np.nan
    free_res = [0, 0, 0, 0, 0.5, 0]  # point 4: free phase unconverged
    nudge_res = [0, 0, 0, 0, 0, 0.5]  # point 5: a nudged phase unconverged
    phases = PhaseResult(_eq([x], free_res), _eq([plus], nudge_res), _eq([minus]), 1e-3)
    keep, asym = trusted_points(phases, max_residual=1e-3)
    assert keep.tolist() == [True, False, True, False, False, False]
    assert asym[1] > 0.5 > asym[2]
    # a NaN residual is not "converged"
    phases = PhaseResult(_eq([x], [np.nan, 0, 0, 0, 0, 0]), _eq([x + d]), _eq([x - d]), 1e-3)
    assert trusted_points(phases, 1e-3)[0].tolist() == [False] + [True] * 5


class _JumpingBackend(NumpyBackend):
    """The numpy backend, except that training point 0's -beta phase lands where +beta did
    (what a basin jump near a bifurcation looks like)."""

    def equilibrium(self, x_t, nudge, start):
        eq = super().equilibrium(x_t, nudge, start)
        if nudge is not None:
            if nudge.beta > 0:
                self.last_plus = [s[0].copy() for s in eq.state]
            else:
                for s, p in zip(eq.state, self.last_plus):
                    s[0] = p
        return eq


def test_gradep_step_drops_a_basin_jumping_point(setup):
    spec, model, params, _, _, batch, _ = setup
    b32 = _as32(batch)
    backend = _JumpingBackend(model, spec.gradep, spec.relax)
    strict = _step(model, backend, params, b32, spec.gradep, 1e-3, max_dropped=0.0)
    assert strict.keep.tolist() == [False] + [True] * 7
    assert strict.metrics["dropped"] == 1 and strict.metrics["nudge_asym"] > MAX_NUDGE_ASYMMETRY
    assert len(strict.trouble) == 1 and "1 of 8" in strict.trouble[0]
    keep_all = _step(model, backend, params, b32, spec.gradep, 1e-3, max_dropped=0.0, max_asymmetry=1.0)
    assert keep_all.keep.all() and keep_all.trouble == []  # the paper's setting: no point dropped
    lenient = _step(model, backend, params, b32, spec.gradep, 1e-3, max_dropped=0.2)
    assert lenient.trouble == []
    # the gradient averages the trusted points only
    expected = ep_gradient(model, params, lenient.phases, lenient.keep)
    for k in expected:
        np.testing.assert_array_equal(lenient.grad[k], expected[k])
    clean = _step(model, NumpyBackend(model, spec.gradep, spec.relax), params, _as32(_drop_first(batch)), spec.gradep, 1e-3)
    assert gc.compare(lenient.grad, clean.grad).cosine > 0.99999


def test_gradep_step_reports_an_unconverged_phase(setup):
    spec, model, params, _, _, batch, _ = setup
    short = dataclasses.replace(spec.relax, free_steps=1, nudge_steps=1, tol=0.0)
    step = _step(model, NumpyBackend(model, spec.gradep, short), params, _as32(batch), spec.gradep, 1e-3, 0.05)
    assert not step.keep.any()
    assert any("8 of 8" in t and "unconverged" in t for t in step.trouble)


def _step(model, backend, params, batch, gradep, max_residual=np.inf, max_dropped=1.0, max_asymmetry=0.5):
    """One GradEP step as training takes it: program the backend, then measure."""
    from analogep.config import TrainSpec
    from analogep.objectives.flow import FlowMatching

    realised = backend.program(params)
    trust = TrainSpec(max_residual=max_residual, max_dropped=max_dropped, max_asymmetry=max_asymmetry)
    return gradep_step(model, backend, realised, batch, FlowMatching(gradep, True, batch.x_t.shape[0]), gradep, trust)
