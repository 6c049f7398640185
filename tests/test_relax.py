"""Relaxation: both solvers reach the equilibrium of E + springs (method.md section 3).

The euler solver is the paper's dynamics (checked step by step against a hand computation);
the fast solver is block coordinate descent and must land on the same fixed point.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from analogep.config import ModelSpec, RelaxSpec, load_spec
from analogep.data import load_dataset
from analogep.model.families.hopfield import HopfieldEnergy
from analogep.model.factory import build_energy
from analogep.model.tensors import max_abs
from analogep.solvers import fast as relax_module
from analogep.solvers.base import VisibleSpring, total_grad
from analogep.solvers.euler import EulerSolver
from analogep.solvers.factory import build_solver
from analogep.solvers.fast import FastSolver

SOLVERS = ["euler", "fast"]
LAM = 15.0


def small_model(gain: float = 0.5, seed: int = 0, sizes=(16, 12, 8)):
    """A float64 model; gain > 1 with non-zero biases stands in for trained weights."""
    model = HopfieldEnergy(ModelSpec(sizes=sizes, init_gain=gain, dtype="float64"))
    rng = np.random.default_rng(seed)
    params = model.init_params(rng)
    for k in params:
        if k.startswith("b"):
            params[k] = 0.3 * rng.standard_normal(params[k].shape)
    x = rng.standard_normal((6, sizes[0]))
    return model, params, x


def free_start(model, x):
    state = model.zeros_state(x.shape[0])
    state[0][...] = x
    return state


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("tol", [1e-4, 1e-9])
def test_relaxation_reaches_its_tolerance(solver, tol):
    model, params, x = small_model(gain=1.5)
    start = free_start(model, x)
    start_copy = [s.copy() for s in start]
    spring = VisibleSpring(LAM, x)
    eq = build_solver(RelaxSpec(solver=solver, tol=tol, omega=1.0), 20000).relax(model, params, start, spring)
    assert eq.iterations < 20000
    assert eq.residual < tol
    # the reported residual is the real one, recomputed here from the returned state
    assert max_abs(total_grad(model, params, eq.state, spring)) == pytest.approx(eq.residual, rel=1e-12)
    # every relaxed unit is checked, not only the visible ones
    hidden = model.state_grad(params, eq.state)[1:]
    assert max_abs(hidden) < tol
    assert all(np.array_equal(a, b) for a, b in zip(start, start_copy))  # start is not modified


@pytest.mark.parametrize("solver", SOLVERS)
def test_zero_tol_runs_every_step(solver):
    model, params, x = small_model()
    solve = build_solver(RelaxSpec(solver=solver, tol=0.0), 7)
    eq = solve.relax(model, params, free_start(model, x), VisibleSpring(LAM, x))
    assert eq.iterations == 7


def test_unknown_solver_is_refused():
    model, params, x = small_model()
    with pytest.raises(ValueError, match="newton"):
        build_solver(RelaxSpec(solver="newton"), 3)


def test_euler_reproduces_a_hand_computed_two_step_example():
    """sizes (2, 1), soft_silu with clamp 10, spring lambda = 15: two Euler steps by hand.

    dE/dx_i = x_i - bx_i - W_i rho(h) + k (x_i - a_i)
    dE/dh   = h - rho'(h) (W . x + b0)
    """
    w = [0.7, -1.3]
    bx = [0.2, -0.1]
    b0 = 0.4
    k, a = 15.0, [0.5, -0.25]
    eps, clamp = 0.1, 10.0

    def rho_and_deriv(h):
        sig = 1.0 / (1.0 + math.exp(-h))
        silu = h * sig
        dsilu = sig * (1.0 + h * (1.0 - sig))
        t = math.tanh(silu / clamp)
        return clamp * t, (1.0 - t * t) * dsilu

    x, h = [0.3, -0.8], 0.9
    for _ in range(2):
        r, dr = rho_and_deriv(h)
        gx = [x[i] - bx[i] - w[i] * r + k * (x[i] - a[i]) for i in range(2)]
        gh = h - dr * (w[0] * x[0] + w[1] * x[1] + b0)
        x = [x[i] - eps * gx[i] for i in range(2)]
        h = h - eps * gh

    model = HopfieldEnergy(ModelSpec(sizes=(2, 1), activation="soft_silu", clamp=clamp, dtype="float64"))
    params = {"b_x": np.array(bx), "W0": np.array([w]), "b0": np.array([b0])}
    start = [np.array([[0.3, -0.8]]), np.array([[0.9]])]
    eq = EulerSolver(2, step=eps).relax(model, params, start, VisibleSpring(k, np.array([a])))
    assert eq.iterations == 2
    np.testing.assert_allclose(eq.state[0][0], x, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(eq.state[1][0], [h], rtol=1e-14, atol=1e-15)
    # and the state really moved: the example is not a fixed point
    assert abs(eq.state[0][0][0] - 0.3) > 0.1 and abs(eq.state[1][0][0] - 0.9) > 0.01


@pytest.mark.parametrize("omega", [1.0, 1.4, 1.8])
@pytest.mark.parametrize("gain", [0.5, 1.0, 1.5])
def test_fast_and_euler_reach_the_same_equilibrium(gain, omega):
    """Init (0.5) and trained-like weights: 400 steps of tiny.yaml grow the weights' std to
    ~1.5x the init (gain ~0.75). Far stronger weights make E multistable, and then the two
    solvers can settle in different basins from the same start (see the report)."""
    model, params, x = small_model(gain=gain)
    spring = VisibleSpring(LAM, x)
    start = free_start(model, x)
    e = EulerSolver(50000, tol=1e-11).relax(model, params, start, spring)
    f = FastSolver(50000, tol=1e-11, omega=omega).relax(model, params, start, spring)
    assert e.residual < 1e-11 and f.residual < 1e-11
    assert max_diff(e.state, f.state) < 1e-8
    # hidden units are really active (the test is not about a trivial h = 0 fixed point)
    assert max(np.max(np.abs(h)) for h in e.state[1:]) > 0.2


@pytest.mark.parametrize("omega", [1.0, 1.4])
@pytest.mark.parametrize("beta_sign", [1.0, -1.0])
def test_fast_and_euler_agree_in_nudged_phases(beta_sign, omega):
    """Nudged phases: combined spring (negative stiffness for -beta), warm start from free."""
    model, params, x = small_model(gain=1.5, seed=3)
    rng = np.random.default_rng(5)
    anchor = x + 0.1 * rng.standard_normal(x.shape)
    free_spring = VisibleSpring(LAM, x)
    free = FastSolver(5000, tol=1e-12).relax(model, params, free_start(model, x), free_spring)
    nudge = VisibleSpring(beta_sign * 1.25e-3 * (2.0 * LAM) ** 2, anchor)
    spring = VisibleSpring.combine(free_spring, nudge)
    e = EulerSolver(50000, tol=1e-11).relax(model, params, free.state, spring)
    f = FastSolver(50000, tol=1e-11, omega=omega).relax(model, params, free.state, spring)
    assert e.residual < 1e-11 and f.residual < 1e-11
    assert max_diff(e.state, f.state) < 1e-8
    # the nudge moved x toward (+beta) or away from (-beta) the anchor
    toward = np.sum((f.state[0] - free.state[0]) * (anchor - x))
    assert np.sign(toward) == beta_sign


def test_fast_and_euler_agree_on_the_paper_model_at_init():
    spec = load_spec(None)
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    params = model.init_params(np.random.default_rng(spec.model.seed))
    rng = np.random.default_rng(0)
    x1 = load_dataset(dtype=np.float64)[:6]
    t = rng.random((6, 1))
    x = (1 - t) * rng.standard_normal(x1.shape) + t * x1
    spring = VisibleSpring(spec.gradep.lam, x)
    start = free_start(model, x)
    e = EulerSolver(20000, tol=1e-10, step=spec.relax.step).relax(model, params, start, spring)
    f = FastSolver(20000, tol=1e-10).relax(model, params, start, spring)
    assert e.residual < 1e-10 and f.residual < 1e-10
    assert max_diff(e.state, f.state) < 1e-8


def test_fast_over_relaxes_only_points_near_their_equilibrium():
    """Far from equilibrium (largest slope above relax._OVERRELAX_BELOW) a sweep ignores
    omega, so the path that picks the basin is plain block descent; near it, omega acts."""
    model, params, x = small_model(gain=1.5)
    spring = VisibleSpring(LAM, x)
    far = free_start(model, x)
    assert relax_module.sample_max_abs(total_grad(model, params, far, spring)).min() > relax_module.OVERRELAX_BELOW
    plain = FastSolver(1, omega=1.0).relax(model, params, far, spring)
    over = FastSolver(1, omega=1.8).relax(model, params, far, spring)
    assert max_diff(plain.state, over.state) == 0.0
    near = FastSolver(5000, tol=1e-3).relax(model, params, far, spring).state
    assert max_abs(total_grad(model, params, near, spring)) < relax_module.OVERRELAX_BELOW
    plain = FastSolver(1, omega=1.0).relax(model, params, near, spring)
    over = FastSolver(1, omega=1.8).relax(model, params, near, spring)
    assert max_diff(plain.state, over.state) > 1e-6


@pytest.mark.parametrize("solver", SOLVERS)
def test_clamp_visible_keeps_x_fixed(solver):
    model, params, x = small_model(gain=1.5)
    start = free_start(model, x)
    # a spring that would pull x elsewhere must be ignored when x is clamped
    spring = VisibleSpring(LAM, x + 1.0)
    solve = build_solver(RelaxSpec(solver=solver, tol=1e-10, omega=1.0), 20000)
    eq = solve.relax(model, params, start, spring, clamp_visible=True)
    assert np.array_equal(eq.state[0], x)
    assert eq.residual < 1e-10
    assert max_abs(model.state_grad(params, eq.state)[1:]) < 1e-10  # hidden units relaxed
    assert np.max(np.abs(model.state_grad(params, eq.state)[0])) > 1e-3  # x is not at its own rest


def test_clamped_equilibria_agree_between_solvers():
    model, params, x = small_model(gain=1.5, seed=1)
    start = free_start(model, x)
    e = EulerSolver(50000, tol=1e-11).relax(model, params, start, None, clamp_visible=True)
    f = FastSolver(50000, tol=1e-11).relax(model, params, start, None, clamp_visible=True)
    assert max_diff(e.state, f.state) < 1e-8


def test_spring_combine_equals_the_sum_of_springs():
    rng = np.random.default_rng(0)
    springs = [
        VisibleSpring(15.0, rng.standard_normal((4, 5))),
        VisibleSpring(1.125, rng.standard_normal((4, 5))),
        VisibleSpring(-1.125, rng.standard_normal((4, 5))),  # a -beta nudge is a negative spring
    ]
    combined = VisibleSpring.combine(*springs)
    assert combined.stiffness == pytest.approx(15.0)
    assert combined.target.dtype == springs[0].target.dtype
    for _ in range(3):
        x = rng.standard_normal((4, 5))
        grad_sum = sum(s.stiffness * (x - s.target) for s in springs)
        np.testing.assert_allclose(combined.stiffness * (x - combined.target), grad_sum, rtol=1e-12, atol=1e-12)
    # energies differ by an x-independent constant
    def energy(s, x):
        return 0.5 * s.stiffness * np.sum((x - s.target) ** 2, axis=1)

    xs = [rng.standard_normal((4, 5)) for _ in range(3)]
    gaps = [sum(energy(s, x) for s in springs) - energy(combined, x) for x in xs]
    np.testing.assert_allclose(gaps[0], gaps[1], rtol=1e-10)
    np.testing.assert_allclose(gaps[0], gaps[2], rtol=1e-10)


def test_total_grad_adds_the_spring_only_on_the_visible_layer():
    model, params, x = small_model()
    rng = np.random.default_rng(2)
    state = [rng.standard_normal(s.shape) for s in free_start(model, x)]
    spring = VisibleSpring(LAM, x)
    plain = model.state_grad(params, state)
    tg = total_grad(model, params, state, spring)
    np.testing.assert_allclose(tg[0], plain[0] + LAM * (state[0] - x), rtol=1e-13)
    for a, b in zip(tg[1:], plain[1:]):
        np.testing.assert_array_equal(a, b)
    clamped = total_grad(model, params, state, spring, clamp_visible=True)
    assert not np.any(clamped[0])


def test_spring_combine_handles_springs_that_cancel():
    """A -beta nudge with beta (alpha lambda)^2 = lambda cancels the training spring's
    stiffness exactly (the config allows it with the fast solver: the leak keeps the
    visible curvature at 1). The sum of the springs is then a constant force, which the
    combined spring must still reproduce; a (stiffness, target) pair divides by zero."""
    rng = np.random.default_rng(0)
    a1, a2 = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    springs = [VisibleSpring(15.0, a1), VisibleSpring(-15.0, a2)]
    combined = VisibleSpring.combine(*springs)
    x = rng.standard_normal((2, 3))
    expected = sum(s.stiffness * (x - s.target) for s in springs)
    model = HopfieldEnergy(ModelSpec(sizes=(3, 2), dtype="float64"))
    params = model.init_params(rng)
    state = [x, rng.standard_normal((2, 2))]
    got = total_grad(model, params, state, combined)[0] - model.state_grad(params, state)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_fast_and_paper_euler_give_the_same_training_steps_on_the_paper_config():
    """Issue 4's check: on the paper config's first steps, the default solver and the paper's
    euler (T = 300, as trusted by the paper) give the same EP gradients (cosine >= 0.999) and
    the same parameters after three Adam steps."""
    import dataclasses

    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.config import load_spec
    from analogep.data import load_dataset
    from analogep.evaluation.gradcheck import compare
    from analogep.model.factory import build_energy
    from analogep.objectives.flow import sample_flow_batch
    from analogep.training.optim import build_optimizer, clip_by_global_norm

    spec = load_spec(None)
    paper = dataclasses.replace(spec.relax, solver="euler", step=0.1, free_steps=300, nudge_steps=300, tol=0.0)
    model = build_energy(spec.model)
    data = load_dataset(dtype=np.float32)
    runs = {}
    for name, relax_spec in (("fast", spec.relax), ("euler", paper)):
        params = model.init_params(np.random.default_rng(spec.model.seed))
        optimizer = build_optimizer(spec.train.optimizer, params)
        rng = np.random.default_rng(0)
        grads = []
        for _ in range(3):
            batch = sample_flow_batch(data, 96, rng, True)
            result = _step(model, NumpyBackend(model, spec.gradep, relax_spec), params, batch, spec.gradep)
            grads.append(result.grad)
            optimizer.step(params, clip_by_global_norm(result.grad, spec.train.grad_clip)[0])
        runs[name] = (grads, params)
    for g_fast, g_euler in zip(runs["fast"][0], runs["euler"][0]):
        assert compare(g_fast, g_euler).cosine >= 0.999
    # Adam's first steps move each parameter by about lr * sign(gradient), so an entry whose
    # gradient is near zero may step either way; compare the parameter changes as a whole.
    init = model.init_params(np.random.default_rng(spec.model.seed))
    delta = {run: {k: v - init[k] for k, v in params.items()} for run, (_, params) in runs.items()}
    assert compare(delta["fast"], delta["euler"]).rel_error < 0.02


def _step(model, backend, params, batch, gradep, max_residual=np.inf, max_dropped=1.0, max_asymmetry=0.5):
    """One GradEP step as training takes it: program the backend, then measure."""
    from analogep.config import TrainSpec
    from analogep.ep.step import gradep_step
    from analogep.objectives.flow import FlowMatching

    realised = backend.program(params)
    trust = TrainSpec(max_residual=max_residual, max_dropped=max_dropped, max_asymmetry=max_asymmetry)
    return gradep_step(model, backend, realised, batch, FlowMatching(gradep, True, batch.x_t.shape[0]), gradep, trust)
