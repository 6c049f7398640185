"""The hopfield energy and its derivatives against central finite differences (float64).

Everything GradEP, the solvers and the exact gradient use is an analytic derivative of
E (method.md section 1): dE/ds, d2E/ds2 . v, dE/dtheta and its state derivative. Each is
checked here against finite differences of the level below it, for several depths
(including three hidden layers), with and without the rank-k skip coupling, and both
activations.
"""

from __future__ import annotations

import numpy as np
import pytest

from analogep.config import ModelSpec, Spec, load_spec
from analogep.model.activations import Activation
from analogep.model.families.hopfield import HopfieldEnergy
from analogep.model.factory import build_energy

SIZES = [(5, 4), (6, 4, 3), (5, 4, 3, 3)]  # one, two and three hidden layers
SKIPS = {(5, 4): 2, (6, 4, 3): 2, (5, 4, 3, 3): 3}  # each depth again with a skip coupling of this rank
ACTIVATIONS = ["soft_silu", "silu"]
BATCH = 3


def make_model(sizes, activation, clamp=2.0, skip_rank=0) -> HopfieldEnergy:
    """A float64 model; a small clamp makes the soft clamp's tanh matter at these scales."""
    spec = ModelSpec(sizes=tuple(sizes), activation=activation, clamp=clamp, dtype="float64", skip_rank=skip_rank)
    return HopfieldEnergy(spec)


def random_params(model: HopfieldEnergy, rng: np.random.Generator) -> dict:
    """Order-one weights and non-zero biases, so every term of E contributes."""
    return {k: rng.standard_normal(shape) for k, shape in model.param_shapes().items()}


def random_state(model: HopfieldEnergy, rng: np.random.Generator) -> list[np.ndarray]:
    return [1.5 * rng.standard_normal((BATCH, n)) for n in model.sizes]


def reference_energy(model, params, state) -> np.ndarray:
    """method.md section 1 written out independently of hopfield.py (per batch element)."""
    rho = model.rho
    e = 0.5 * sum(np.sum(s**2, axis=1) for s in state) - state[0] @ params["b_x"]
    chain = state[:-1] if "U" in params else state
    below = state[0]
    for l in range(len(chain) - 1):
        post = rho(chain[l + 1])
        e = e - np.einsum("bi,bi->b", post, below @ params[f"W{l}"].T + params[f"b{l}"])
        below = post
    if "U" in params:  # the skip: - rho(z) . (U x + V rho(h_L) + b_z), z the last layer
        z = rho(state[-1])
        e = e - np.einsum("bk,bk->b", z, state[0] @ params["U"].T + below @ params["V"].T + params["b_z"])
    return e


@pytest.fixture(
    params=[(s, a, k) for s in SIZES for a in ACTIVATIONS for k in (0, SKIPS[s])],
    ids=lambda p: f"{'-'.join(map(str, p[0]))}-{p[1]}" + (f"-skip{p[2]}" if p[2] else ""),
)
def case(request):
    sizes, activation, skip_rank = request.param
    rng = np.random.default_rng(len(sizes) * 10 + len(activation) + skip_rank)
    model = make_model(sizes, activation, skip_rank=skip_rank)
    return model, random_params(model, rng), random_state(model, rng), rng


def test_energy_matches_the_written_out_formula(case):
    model, params, state, _ = case
    e = model.energy(params, state)
    assert e.shape == (BATCH,)
    np.testing.assert_allclose(e, reference_energy(model, params, state), rtol=1e-13, atol=1e-12)


def test_state_grad_matches_central_differences(case):
    model, params, state, _ = case
    grads = model.state_grad(params, state)
    h = 1e-6
    for layer, s in enumerate(state):
        assert grads[layer].shape == s.shape
        fd = np.zeros_like(s)
        for j in range(s.shape[1]):
            up = [x.copy() for x in state]
            down = [x.copy() for x in state]
            up[layer][:, j] += h
            down[layer][:, j] -= h
            # E is a sum of per-example terms: d E_b / d s_bj for all b at once
            fd[:, j] = (model.energy(params, up) - model.energy(params, down)) / (2 * h)
        np.testing.assert_allclose(grads[layer], fd, rtol=1e-6, atol=1e-7, err_msg=f"layer {layer}")


def test_layer_drive_gives_the_state_gradient(case):
    """dE/ds_l = s_l - rho'(s_l) c_l (and dE/dx = x - c_0): the structure the fast solver uses."""
    model, params, state, _ = case
    grads = model.state_grad(params, state)
    np.testing.assert_allclose(grads[0], state[0] - model.layer_drive(params, state, 0), rtol=1e-12, atol=1e-12)
    for layer in range(1, len(state)):
        c = model.layer_drive(params, state, layer)
        expected = state[layer] - model.rho.deriv(state[layer]) * c
        np.testing.assert_allclose(grads[layer], expected, rtol=1e-12, atol=1e-12)


def test_hessian_vector_matches_differences_of_the_gradient(case):
    model, params, state, rng = case
    direction = [rng.standard_normal(s.shape) for s in state]
    hv = model.hessian_vector(params, state, direction)
    h = 1e-6
    up = model.state_grad(params, [s + h * d for s, d in zip(state, direction)])
    down = model.state_grad(params, [s - h * d for s, d in zip(state, direction)])
    for layer in range(len(state)):
        fd = (up[layer] - down[layer]) / (2 * h)
        np.testing.assert_allclose(hv[layer], fd, rtol=1e-6, atol=1e-7, err_msg=f"layer {layer}")


def test_hessian_is_symmetric(case):
    """u . H v = v . H u: H is a Hessian, so the exact-gradient solve may rely on it."""
    model, params, state, rng = case
    u = [rng.standard_normal(s.shape) for s in state]
    v = [rng.standard_normal(s.shape) for s in state]
    u_hv = sum(np.sum(a * b) for a, b in zip(u, model.hessian_vector(params, state, v)))
    v_hu = sum(np.sum(a * b) for a, b in zip(v, model.hessian_vector(params, state, u)))
    assert abs(u_hv - v_hu) <= 1e-10 * (abs(u_hv) + 1.0)


def test_param_terms_match_differences_of_the_batch_mean_energy(case):
    model, params, state, _ = case
    terms = model.param_terms(params, state)
    assert list(terms) == list(model.param_names)
    h = 1e-6
    for name, p in params.items():
        assert terms[name].shape == p.shape
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[name][idx] += h
            down[name][idx] -= h
            fd[idx] = (model.energy(up, state).mean() - model.energy(down, state).mean()) / (2 * h)
        np.testing.assert_allclose(terms[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


def test_param_terms_jvp_matches_differences_of_param_terms(case):
    model, params, state, rng = case
    direction = [rng.standard_normal(s.shape) for s in state]
    jvp = model.param_terms_jvp(params, state, direction)
    h = 1e-6
    up = model.param_terms(params, [s + h * d for s, d in zip(state, direction)])
    down = model.param_terms(params, [s - h * d for s, d in zip(state, direction)])
    assert list(jvp) == list(model.param_names)
    for name in model.param_names:
        fd = (up[name] - down[name]) / (2 * h)
        np.testing.assert_allclose(jvp[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


def test_paper_config_has_24896_parameters():
    spec = load_spec(None)
    assert spec.model.sizes == (64, 128, 128)
    model = build_energy(spec.model)
    assert model.n_params == 24_896
    params = model.init_params(np.random.default_rng(0))
    assert sum(v.size for v in params.values()) == 24_896
    assert build_energy(Spec().model).n_params == 24_896


def test_init_is_xavier_normal_with_gain_and_zero_biases():
    spec = load_spec(None)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    assert all(v.dtype == np.float32 for v in params.values())
    for name, v in params.items():
        if name.startswith("b"):
            assert not np.any(v)
        else:
            fan_out, fan_in = v.shape
            expected = 0.5 * np.sqrt(2.0 / (fan_in + fan_out))
            assert abs(v.std() / expected - 1) < 0.05, name
    again = model.init_params(np.random.default_rng(0))
    assert all(np.array_equal(params[k], again[k]) for k in params)


@pytest.mark.parametrize("name", ["soft_silu", "silu"])
@pytest.mark.parametrize("clamp", [10.0, 1.5])
def test_activation_derivatives_match_central_differences(name, clamp):
    act = Activation(name, clamp)
    u = np.linspace(-12.0, 40.0, 521)
    f, d1, d2 = act.all(u)
    h = 1e-5
    fp, d1p, _ = act.all(u + h)
    fm, d1m, _ = act.all(u - h)
    np.testing.assert_allclose(d1, (fp - fm) / (2 * h), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d2, (d1p - d1m) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(act(u), f)
    np.testing.assert_array_equal(act.deriv(u), d1)
    silu = u / (1.0 + np.exp(-u))
    expected = silu if name == "silu" else clamp * np.tanh(silu / clamp)
    np.testing.assert_allclose(f, expected, rtol=1e-13, atol=1e-14)
    if name == "soft_silu":
        assert np.all(np.abs(f) <= clamp)  # the soft clamp bounds rho


def test_activation_is_finite_far_out():
    act = Activation("soft_silu", 10.0)
    u = np.array([-1e4, -800.0, 800.0, 1e4])
    with np.errstate(all="raise"):
        f, d1, d2 = act.all(u)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(d1)) and np.all(np.isfinite(d2))
    np.testing.assert_allclose(f, [0.0, 0.0, 10.0, 10.0], atol=1e-12)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="relu"):
        Activation("relu")
