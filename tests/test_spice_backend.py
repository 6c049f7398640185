"""The SPICE backend in the training loop, the check command and generation, with real ngspice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analogep.data import load_dataset
from analogep.energy import params_dot, params_norm
from analogep.flow import sample_flow_batch
from analogep.hopfield import build_energy
from analogep.spec import load_spec

pytestmark = pytest.mark.spice
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def _cos(a, b) -> float:
    return params_dot(a, b) / (params_norm(a) * params_norm(b))


def test_check_on_tiny_agrees_to_1e_6(tmp_path):
    from click.testing import CliRunner

    from analogep.cli import main

    res = CliRunner().invoke(main, ["check", str(TINY), "--n", "8", "--json", "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["max_rel_error"] <= 1e-6
    assert report["max_abs_error"] <= 1e-6
    assert report["grad_cosine"] >= 1 - 1e-6
    assert report["velocity_rel_error"] <= 1e-6
    assert (tmp_path / "c.png").stat().st_size > 0


def test_spice_training_step_moves_the_parameters_like_the_numpy_step():
    from analogep.gradep import gradep_step
    from analogep.optim import build_optimizer
    from analogep.phases import NumpyBackend
    from analogep.spice_backend import SpiceBackend

    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(spec.model.seed))
    batch = sample_flow_batch(load_dataset(dtype=model.dtype), 16, np.random.default_rng(3), True)
    spice = SpiceBackend(spec, model)
    try:
        s = gradep_step(model, spice, params, batch, spec.gradep, spec.train.max_residual)
    finally:
        spice.close()
    n = gradep_step(model, NumpyBackend(model, spec.gradep, spec.relax), params, batch, spec.gradep, spec.train.max_residual)
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
    from analogep.checkpoint import load_checkpoint
    from analogep.train import train

    spec = load_spec(TINY).replace(train={"steps": 2, "batch": 8, "checkpoint_every": 2})
    result = train(spec, tmp_path / "run", backend_name="spice")
    assert result.step == 2 and result.stopped is None
    assert all(np.isfinite(r["loss"]) and "skipped" not in r for r in result.records)
    start = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
    saved = load_checkpoint(tmp_path / "run").params
    assert any(not np.array_equal(saved[k], start[k]) for k in start)


def test_spice_generation_follows_the_numpy_velocity_field():
    from analogep.generate import generate
    from analogep.spice_backend import spice_generate

    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(spec.model.seed))
    x_spice = spice_generate(spec, params, n=6, t1=0.1, dt=0.05, seed=2)
    strict = spec.relax.__class__(solver="fast", free_steps=2000, nudge_steps=2000, tol=1e-9)
    x_numpy = generate(model, params, spec.gradep, strict, n=6, t1=0.1, dt=0.05, seed=2)
    np.testing.assert_allclose(x_spice, x_numpy, atol=1e-5)


def test_shared_and_subprocess_runners_give_the_same_sweep():
    from analogep.gradcheck import as_float64
    from analogep.ngspice import NgspicePool, ngspice_info
    from analogep.spice_backend import SpiceBackend

    if not ngspice_info().shared:
        pytest.skip("libngspice is not installed")
    spec = load_spec(TINY)
    model, p = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(0)))
    backend = SpiceBackend(spec, model, runner="subprocess", workers=1)
    x = load_dataset(dtype=np.float64)[:5]
    warm = [x] + model.zeros_state(5)[1:]
    deck = backend._deck("free", p, {"xt": x}, [w[:1] for w in warm], sweep=True, beta=None, want_clamp=False)
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
