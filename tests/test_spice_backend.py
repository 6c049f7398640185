"""The SPICE backend in the training loop, the check command and generation, with real ngspice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.model.factory import build_energy
from analogep.model.tensors import params_dot, params_norm
from analogep.objectives.flow import sample_flow_batch

pytestmark = pytest.mark.spice
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def _cos(a, b) -> float:
    return params_dot(a, b) / (params_norm(a) * params_norm(b))


def test_check_on_tiny_agrees_to_1e_6(tmp_path):
    from click.testing import CliRunner

    from analogep.cli.app import main

    res = CliRunner().invoke(main, ["check", str(TINY), "--n", "8", "--json", "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["max_rel_error"] <= 1e-6
    assert report["max_abs_error"] <= 1e-6
    assert report["grad_cosine"] >= 1 - 1e-6
    assert report["velocity_rel_error"] <= 1e-6
    assert (tmp_path / "c.png").stat().st_size > 0


def test_spice_training_step_moves_the_parameters_like_the_numpy_step():
    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.backends.spice_backend import SpiceBackend
    from analogep.training.optim import build_optimizer

    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(spec.model.seed))
    batch = sample_flow_batch(load_dataset(dtype=model.dtype), 16, np.random.default_rng(3), True)
    spice = SpiceBackend.from_spec(spec, model)
    try:
        s = _step(model, spice, params, batch, spec.gradep, spec.train.max_residual)
    finally:
        spice.close()
    n = _step(model, NumpyBackend(model, spec.gradep, spec.relax), params, batch, spec.gradep, spec.train.max_residual)
    assert not s.trouble and not n.trouble
    assert s.loss == pytest.approx(n.loss, rel=1e-4)
    assert _cos(s.grad, n.grad) >= 0.99
    moved = []
    for grad in (s.grad, n.grad):
        p = {k: v.copy() for k, v in params.items()}
        build_optimizer(spec.train.optimizer, p).step(p, grad)
        moved.append({k: p[k] - params[k] for k in p})
    assert _cos(*moved) >= 0.99


def test_train_runs_with_ngspice_in_the_loop(tmp_path):
    from analogep.training.checkpoint import load_checkpoint
    from analogep.training.loop import train

    spec = load_spec(TINY).replace(train={"steps": 2, "batch": 8, "checkpoint_every": 2})
    result = train(spec, tmp_path / "run", backend_name="spice")
    assert result.step == 2 and result.stopped is None
    assert all(np.isfinite(r["loss"]) and "skipped" not in r for r in result.records)
    start = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
    saved = load_checkpoint(tmp_path / "run").params
    assert any(not np.array_equal(saved[k], start[k]) for k in start)


def test_spice_generation_follows_the_numpy_velocity_field():
    from analogep import api
    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.objectives.flow_sampling import generate

    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(spec.model.seed))
    strict = spec.relax.__class__(solver="fast", free_steps=2000, nudge_steps=2000, tol=1e-9)
    numpy = NumpyBackend(model, spec.gradep, strict)
    numpy.program(params)
    x_numpy = {}
    for mode in ("energy", "spring"):
        x_spice = api.sample(spec, params, n=6, t1=0.1, dt=0.05, seed=2, mode=mode, backend="spice")
        x_numpy[mode] = generate(model, numpy, spec.gradep, n=6, t1=0.1, dt=0.05, seed=2, mode=mode)
        np.testing.assert_allclose(x_spice, x_numpy[mode], atol=1e-5, err_msg=mode)
    # the two modes really differ: spring mode is not energy mode under another name
    assert np.max(np.abs(x_numpy["spring"] - x_numpy["energy"])) > 1e-4


def test_shared_and_subprocess_runners_give_the_same_sweep():
    from analogep.backends.spice_backend import SpiceBackend
    from analogep.spice.run.ngspice import ngspice_info
    from analogep.spice.run.pool import NgspicePool
    from analogep.evaluation.gradcheck import as_float64

    if not ngspice_info().shared:
        pytest.skip("libngspice is not installed")
    spec = load_spec(TINY)
    model, p = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(0)))
    backend = SpiceBackend.from_spec(spec, model, runner="subprocess", workers=1)
    backend.program(p)
    x = load_dataset(dtype=np.float64)[:5]
    warm = [x] + model.zeros_state(5)[1:]
    deck = backend._deck("free", {"xt": x}, [w[:1] for w in warm], sweep=True, beta=None, want_clamp=False)
    backend.close()
    results = []
    for runner in ("subprocess", "shared"):
        pool = NgspicePool(runner, 1)
        results += pool.map([deck], 60)
        pool.close()
    a, b = results
    assert a.rows == b.rows == 5
    for name in ("x0", "h1_3", "h2_15"):
        np.testing.assert_allclose(a.vectors[name], b.vectors[name], rtol=0, atol=1e-12)


def _step(model, backend, params, batch, gradep, max_residual=np.inf, max_dropped=1.0, max_asymmetry=0.5):
    """One GradEP step as training takes it: program the backend, then measure."""
    from analogep.config import TrainSpec
    from analogep.ep.step import gradep_step
    from analogep.objectives.flow import FlowMatching

    realised = backend.program(params)
    trust = TrainSpec(max_residual=max_residual, max_dropped=max_dropped, max_asymmetry=max_asymmetry)
    return gradep_step(model, backend, realised, batch, FlowMatching(gradep, True, batch.x_t.shape[0]), gradep, trust)
