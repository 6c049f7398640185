"""Denoising score matching (method.md section 6): batches, training through the CLI with
exact resume, annealed Langevin sampling, the gradient check, and bad schedules refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.evaluation import gradcheck as gc
from analogep.model.factory import build_energy
from analogep.model.tensors import params_dot, params_map
from analogep.objectives.dsm import DenoisingScoreMatching, dsm_loss
from analogep.objectives.factory import build_objective
from analogep.training.checkpoint import load_checkpoint
from analogep.training.runlog import read_metrics

from clirun import TINY, assert_ok, assert_one_line_error, invoke, tiny_dsm_yaml


@pytest.fixture(scope="module")
def spec():
    return load_spec(TINY).replace(train={"objective": "dsm"})


@pytest.fixture
def dsm_yaml(tmp_path) -> Path:
    """examples/tiny.yaml with train.objective: dsm."""
    return tiny_dsm_yaml(tmp_path / "tiny-dsm.yaml")


def test_the_schedule_is_geometric_from_sigma_max_to_sigma_min(spec):
    sigmas = np.array(spec.dsm.sigmas)
    assert len(sigmas) == spec.dsm.levels
    assert sigmas[0] == pytest.approx(spec.dsm.sigma_max) and sigmas[-1] == pytest.approx(spec.dsm.sigma_min)
    ratios = sigmas[1:] / sigmas[:-1]
    assert np.allclose(ratios, ratios[0]) and ratios[0] < 1
    one = spec.replace(dsm={"levels": 1, "sigma_min": 0.5, "sigma_max": 0.5})
    assert one.dsm.sigmas == (0.5,)


def test_batches_hold_noised_data_target_score_and_sigma_squared_weights(spec):
    objective = build_objective(spec)
    assert isinstance(objective, DenoisingScoreMatching)
    data = load_dataset("digits")
    b = objective.batch(data, 64, np.random.default_rng(3))
    assert b.x_t.shape == b.target.shape == b.n.shape == b.x0.shape == (64, 64)
    assert b.sigma.shape == (64, 1) and b.weight.shape == (64,)
    assert b.x_t.dtype == np.float32 and b.weight.dtype == np.float32
    assert set(np.round(b.sigma[:, 0], 5)) <= set(np.round(np.array(spec.dsm.sigmas, dtype=np.float32), 5))
    assert len(set(b.sigma[:, 0])) > 1  # one level per point
    np.testing.assert_allclose(b.x_t, b.x0 + b.sigma * b.n, rtol=1e-6)
    np.testing.assert_allclose(b.target, -b.n / b.sigma, rtol=1e-6)
    np.testing.assert_allclose(b.weight, b.sigma[:, 0] ** 2, rtol=1e-6)
    # every x0 is a digit, and the same seed gives the same batch
    assert all((data == row).all(axis=1).any() for row in b.x0)
    again = objective.batch(data, 64, np.random.default_rng(3))
    assert np.array_equal(again.x_t, b.x_t) and np.array_equal(again.weight, b.weight)
    # the loss is the weighted mean: (sigma s + n)^2; a zero score scores mean n^2
    assert dsm_loss(np.zeros_like(b.x_t), b) == pytest.approx(np.mean(b.n.astype(np.float64) ** 2), rel=1e-5)
    assert dsm_loss(b.target, b) == 0.0


def test_the_read_out_gain_asks_the_read_out_for_sigma_squared_times_the_score(spec):
    """conditioning: gain reads the score as read-out / sigma^2: the same points, target
    -sigma n and weight 1 / sigma^2 in read-out units, the same loss in score units."""
    data = load_dataset("digits")
    plain = build_objective(spec).batch(data, 32, np.random.default_rng(4))
    gained = build_objective(spec.replace(dsm={"conditioning": "gain"})).batch(data, 32, np.random.default_rng(4))
    assert np.array_equal(plain.x_t, gained.x_t) and np.array_equal(plain.sigma, gained.sigma)
    np.testing.assert_allclose(gained.target, plain.sigma**2 * plain.target, rtol=1e-6)
    np.testing.assert_allclose(gained.weight, 1 / plain.sigma[:, 0] ** 2, rtol=1e-6)
    score = np.random.default_rng(5).standard_normal(plain.x_t.shape).astype(np.float32)
    assert dsm_loss(plain.sigma**2 * score, gained) == pytest.approx(dsm_loss(score, plain), rel=1e-5)


def test_the_batch_stream_resumes_from_its_rng_state(spec):
    objective = build_objective(spec)
    data = load_dataset("digits")
    stream = objective.batches(data, np.random.default_rng(0), 3)
    first = stream.next()
    rng = np.random.default_rng()
    rng.bit_generator.state = stream.rng_state
    second = stream.next()
    resumed = objective.batches(data, rng, 2).next()
    assert np.array_equal(resumed.x_t, second.x_t) and not np.array_equal(first.x_t, second.x_t)
    stream.next()
    with pytest.raises(StopIteration):
        stream.next()


def test_training_through_the_cli_learns_and_resumes_bit_identically(dsm_yaml, tmp_path):
    out, whole = tmp_path / "run", tmp_path / "whole"
    assert_ok(invoke("train", dsm_yaml, "--out", out, "--steps", 2, "--no-samples"))
    assert load_spec(out / "config.yaml").train.objective == "dsm"
    assert_ok(invoke("train", "--resume", "--out", out, "--steps", 3, "--no-samples"))
    assert_ok(invoke("train", dsm_yaml, "--out", whole, "--steps", 3, "--no-samples"))
    a, b = load_checkpoint(out).params, load_checkpoint(whole).params
    assert all(np.array_equal(a[k], b[k]) for k in a)
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["loss"] for r in records] == [r["loss"] for r in read_metrics(whole)]
    assert all(np.isfinite(r["loss"]) and r["dropped"] == 0 and "skipped" not in r for r in records)


@pytest.mark.parametrize("conditioning", ["none", "scale", "gain"])
def test_langevin_sampling_gives_finite_samples_and_counts_its_steps(spec, conditioning):
    spec = spec.replace(dsm={"conditioning": conditioning})
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    seen = []
    samples = analogep.sample(spec, params, n=7, on_step=lambda done, total: seen.append((done, total)))
    d = spec.dsm
    total = d.levels * d.steps_per_level + int(d.denoise)
    assert samples.shape == (7, 64) and samples.dtype == np.float32 and np.all(np.isfinite(samples))
    assert seen[-1] == (total, total) and len(seen) == total
    assert np.array_equal(samples, analogep.sample(spec, params, n=7))  # the noise seed fixes them
    assert not np.array_equal(samples, analogep.sample(spec, params, n=7, seed=5))


@pytest.mark.parametrize("conditioning", ["none", "gain"])
def test_the_ep_gradient_of_the_weighted_loss_matches_the_exact_one(dsm_yaml, conditioning):
    dsm_yaml.write_text(dsm_yaml.read_text() + f"\ndsm:\n  conditioning: {conditioning}\n")
    result = invoke("gradcheck", dsm_yaml, "--json", "--batch", 16)
    assert_ok(result)
    report = json.loads(result.stdout)
    assert report["cosine"] >= 0.999 and report["float64_tight"]["cosine"] >= 0.999
    assert all(t["cosine"] >= 0.999 for t in report["per_tensor"].values())


@pytest.mark.parametrize("conditioning", ["none", "scale", "gain"])
def test_the_exact_gradient_is_of_the_weighted_loss(spec, conditioning):
    """gradcheck's loss is the training loss (sigma^2-weighted), and implicit
    differentiation matches its finite difference."""
    spec = spec.replace(dsm={"conditioning": conditioning})
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    model64, p64 = gc.as_float64(spec, params)
    batch = build_objective(spec).batch(load_dataset("digits", dtype=np.float64), 8, np.random.default_rng(1))
    eq = gc.free_equilibrium(model64, p64, batch.x_t, spec.gradep)
    score = gc.velocity(eq.state[0], batch.x_t, spec.gradep)
    assert gc.loss_at(model64, p64, batch, spec.gradep) == pytest.approx(0.5 * 64 * dsm_loss(score, batch), rel=1e-12)
    exact = gc.exact_gradient(model64, p64, batch, spec.gradep)
    direction = params_map(lambda p: np.random.default_rng(2).standard_normal(p.shape), p64)
    fd = gc.directional_fd(model64, p64, batch, spec.gradep, direction)
    assert params_dot(exact, direction) == pytest.approx(fd, rel=1e-5)


@pytest.mark.parametrize(
    "dsm, fragment",
    [
        ("sigma_min: 2.0\n  sigma_max: 1.0", "dsm: sigma_min = 2 is above sigma_max = 1 (range inverted)"),
        ("sigma_min: 0.0", "dsm.sigma_min: 0.0 is not allowed; must be > 0"),
        ("sigma_max: -1.0", "dsm.sigma_max: -1.0 is not allowed; must be > 0"),
        ("levels: 0", "dsm.levels: 0 is not allowed; must be >= 1"),
        ("levels: 1", "one level needs sigma_min = sigma_max"),
        ("sigma_min: 0.5\n  sigma_max: 0.5", "10 levels need sigma_min < sigma_max"),
        ("langevin_step: 0.05", "dsm: langevin_step = 0.05 makes the drift step 2.5 * read-out, not below 2/alpha = 1"),
        ("langevin_step: 0.03\n  conditioning: gain", "makes the drift step 1.5 * read-out, not below 2/alpha = 1"),
        ("conditioning: time", "dsm.conditioning: 'time' is not allowed; must be one of 'none', 'scale', 'gain', 'level-bias'"),
        ("sigma_min: 0.3\n  sigma_max: 3.0\n  sampler: ode\n  ode_steps: 2",
         "dsm: ode_steps = 2 makes the probability-flow step 6.15 * read-out, not below 2/alpha = 1"),
        ("sampler: sde", "dsm.sampler: 'sde' is not allowed; must be one of 'langevin', 'ode', 'ancestral'"),
        ("ode_steps: 0", "dsm.ode_steps: 0 is not allowed; must be >= 1"),
        ("steps_per_level: 5000", "Langevin steps is more than 10,000"),
    ],
)
def test_a_schedule_that_cannot_work_is_one_line_and_writes_nothing(dsm_yaml, tmp_path, dsm, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text(dsm_yaml.read_text() + f"\ndsm:\n  {dsm}\n")
    out = tmp_path / "run"
    result = invoke("train", bad, "--out", out)
    assert_one_line_error(result, fragment)
    assert not out.exists()
