"""The DSM samplers and the bias study (method.md section 6): the probability-flow ODE,
`sample --sampler`, and `analogep study unbiasedness|budget|bias-variance`, each on the tiny
config (small batches: the measurements, not their precision, are under test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.evaluation import study
from analogep.model.factory import build_energy
from analogep.objectives.dsm import dsm_loss
from analogep.objectives.factory import build_objective

from clirun import TINY, assert_ok, assert_one_line_error, invoke, tiny_dsm_yaml, train_tiny


@pytest.fixture(scope="module")
def spec():
    return load_spec(TINY).replace(train={"objective": "dsm"})


@pytest.fixture(scope="module")
def params(spec):
    return build_energy(spec.model).init_params(np.random.default_rng(0))


@pytest.fixture(scope="module")
def dsm_yaml(tmp_path_factory) -> Path:
    return tiny_dsm_yaml(tmp_path_factory.mktemp("cfg") / "tiny-dsm.yaml")


@pytest.fixture(scope="module")
def dsm_run(dsm_yaml, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dsm"
    assert_ok(invoke("train", dsm_yaml, "--out", out, "--steps", 3, "--no-samples"))
    return out


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs") / "flow", 2)


def test_the_scaled_read_out_asks_for_sigma_times_the_score_with_equal_weights(spec):
    """conditioning: scale reads the score as read-out / sigma (Song & Ermon 2020): target -n
    and weight 1 in read-out units, the same loss in score units."""
    data = load_dataset("digits")
    plain = build_objective(spec).batch(data, 32, np.random.default_rng(4))
    scaled = build_objective(spec.replace(dsm={"conditioning": "scale"})).batch(data, 32, np.random.default_rng(4))
    assert np.array_equal(plain.x_t, scaled.x_t)
    np.testing.assert_allclose(scaled.target, -plain.n, rtol=1e-6)
    assert np.array_equal(scaled.weight, np.ones(32, dtype=np.float32))
    score = np.random.default_rng(5).standard_normal(plain.x_t.shape).astype(np.float32)
    assert dsm_loss(plain.sigma * score, scaled) == pytest.approx(dsm_loss(score, plain), rel=1e-5)


@pytest.mark.parametrize("conditioning", ["none", "scale", "gain"])
def test_the_probability_flow_ode_gives_finite_samples_and_counts_its_steps(spec, params, conditioning):
    spec = spec.replace(dsm={"conditioning": conditioning, "sampler": "ode", "ode_steps": 8})
    seen = []
    samples = analogep.sample(spec, params, n=5, on_step=lambda done, total: seen.append((done, total)))
    total = 2 * 8 + 1
    assert samples.shape == (5, 64) and samples.dtype == np.float32 and np.all(np.isfinite(samples))
    assert seen[-1] == (total, total) and len(seen) == total
    assert np.array_equal(samples, analogep.sample(spec, params, n=5))
    assert not np.array_equal(samples, analogep.sample(spec, params, n=5, seed=3))


def test_the_ode_grid_is_geometric_and_heun_is_second_order(spec, params):
    """Heun's error on the ODE shrinks about 4x per halving of the step (method.md 6):
    compared with a fine reference, 8 vs 16 vs 32 steps, one start."""
    grid = spec.replace(dsm={"ode_steps": 4}).dsm.ode_sigmas
    assert grid[0] == pytest.approx(1.0) and grid[-1] == pytest.approx(0.1) and len(grid) == 5
    s64 = spec.replace(model={"dtype": "float64"}, relax={"tol": 1e-12, "free_steps": 2000})

    def run(k):
        s = s64.replace(dsm={"sampler": "ode", "ode_steps": k, "denoise": False})
        return analogep.sample(s, params, n=3)

    ref = run(128)
    e8, e16, e32 = (np.abs(run(k) - ref).max() for k in (8, 16, 32))
    assert e16 < e8 / 3 and e32 < e16 / 3


def test_sample_takes_the_dsm_sampler_and_titles_it(dsm_run, tmp_path):
    png = tmp_path / "ode.png"
    result = invoke("sample", dsm_run, "--sampler", "ode", "--ode-steps", 4, "--n", 6, "--out", png, "--json")
    assert_ok(result)
    summary = json.loads(result.stdout)
    assert summary["sampler"] == "ode" and summary["ode_steps"] == 4 and "t1" not in summary and png.exists()
    result = invoke("sample", dsm_run, "--steps-per-level", 2, "--n", 6, "--out", tmp_path / "l.png", "--json")
    assert_ok(result)
    assert json.loads(result.stdout)["sampler"] == "langevin"


@pytest.mark.parametrize(
    "run, args, fragment",
    [
        ("flow", ["--sampler", "ode"], "--sampler: only for a score-matching run"),
        ("flow", ["--ode-steps", "3"], "--ode-steps: only for a score-matching run"),
        ("dsm", ["--t1", "2"], "--t1: only for a flow-matching run"),
        ("dsm", ["--sampler", "sde"], "Invalid value for '--sampler'"),
        ("dsm", ["--steps-per-level", "0"], "Invalid value for '--steps-per-level'"),
        ("dsm", ["--steps-per-level", "2000"], "Langevin steps is more than 10,000"),
    ],
)
def test_a_sampler_option_that_cannot_work_is_one_line_and_writes_nothing(dsm_run, flow_run, tmp_path, run, args, fragment):
    png, npy = tmp_path / "s.png", tmp_path / "s.npy"
    result = invoke("sample", dsm_run if run == "dsm" else flow_run, *args, "--out", png, "--save", npy)
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert not png.exists() and not npy.exists()


def test_evaluate_refuses_a_sampler_for_samples_given(tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((4, 64), dtype=np.float32))
    assert_one_line_error(invoke("evaluate", npy, "--sampler", "ode"), "--sampler: " + str(npy) + " holds samples already")


def test_evaluate_judges_a_dsm_run_with_either_sampler(dsm_run):
    result = invoke("evaluate", dsm_run, "--n", 20, "--sampler", "ode", "--json")
    assert_ok(result)
    report = json.loads(result.stdout)
    assert report["sampler"] == "ode" and np.isfinite(report["frechet"])
    assert json.loads((dsm_run / "quality-n20-ode.json").read_text())["sampler"] == "ode"  # the run's quality.json kept


def test_ep_error_falls_as_beta_to_the_first_and_second_power(spec, params):
    betas = np.geomspace(1e-5, 1e-3, 3)
    r = study.unbiasedness(spec, params, batch=4, betas=betas)
    for group in ("coupling", "bias", "all"):
        assert r["one-sided"][group]["slope"] == pytest.approx(1.0, abs=0.1)
        assert r["symmetric"][group]["slope"] == pytest.approx(2.0, abs=0.1)
        assert min(r["symmetric"][group]["cosine"]) > 0.9999
        assert r["symmetric"][group]["direction_error"][-1] <= r["symmetric"][group]["rel_error"][-1]


def test_a_short_relaxation_budget_hurts_one_sided_ep_more(spec, params):
    r = study.relaxation_budget(spec, params, batch=4, budgets={"fast": [2, 50], "euler": [20, 400]})
    for solver in ("fast", "euler"):
        one, sym = r[solver]["one-sided"]["cosine"], r[solver]["symmetric"]["cosine"]
        assert sym[0] > one[0] and sym[-1] > 0.999 and one[-1] > 0.99
        assert r[solver]["one-sided"]["residual"][0] > r[solver]["one-sided"]["residual"][1]


def test_the_best_beta_grows_with_read_noise_as_the_analysis_predicts(spec, params):
    r = study.bias_variance(spec, params, batch=4, noise_levels=[1e-7, 1e-5], repeats=3,
                            betas=np.geomspace(1e-5, 8e-3, 13), adc=(12, 5.0))
    assert r["one-sided"]["exponent"] == pytest.approx(0.5, abs=0.1)
    assert r["symmetric"]["exponent"] == pytest.approx(1 / 3, abs=0.1)
    for kind in ("one-sided", "symmetric"):
        assert r[kind]["best_beta"][0] < r[kind]["best_beta"][1] and len(r[kind]["adc_rel_error"]) == 13
    assert r["adc"]["lsb"] == pytest.approx(10 / 4096)


@pytest.mark.parametrize(
    "args",
    [
        ["unbiasedness", "--batch", "3"],
        ["budget", "--batch", "3", "--euler", "10,40", "--sweeps", "1,3"],
        ["bias-variance", "--batch", "3", "--noise", "1e-6,1e-5", "--repeats", "1", "--adc-bits", "0"],
    ],
)
def test_each_study_is_one_command_with_a_figure(dsm_yaml, tmp_path, args):
    png = tmp_path / "study.png"
    result = invoke("study", *args, dsm_yaml, "--plot", png, "--json")
    assert_ok(result)
    report = json.loads(result.stdout)
    assert png.exists() and png.stat().st_size > 1000 and report["plot"] == str(png)
    assert "one-sided" in json.dumps(report) and "symmetric" in json.dumps(report)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["bias-variance", "--noise", "1e-5"], "--noise: '1e-5' gives one level"),
        (["bias-variance", "--noise", "x,1"], "--noise: 'x,1' is not a comma-separated list of numbers"),
        (["budget", "--sweeps", "0,2"], "--sweeps: '0,2' must list positive numbers"),
        (["unbiasedness", "--fit-min", "1e-3", "--fit-max", "1e-4"], "--fit-min 0.001 must be below --fit-max 0.0001"),
        (["unbiasedness", "--plot", "u.txt2"], "extension .txt2"),
    ],
)
def test_a_study_option_that_cannot_work_is_one_line_and_writes_nothing(dsm_yaml, tmp_path, args, fragment):
    png = tmp_path / "study.png"
    extra = [] if "--plot" in args else ["--plot", png]
    result = invoke("study", *args, dsm_yaml, *extra)
    assert_one_line_error(result, fragment)
    assert not png.exists()
