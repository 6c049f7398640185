"""`analogep study generation` (evaluation/generation.py): quality against t1 and Euler
steps on the tiny config (few samples: the measurement, not its precision, is under test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analogep.config import load_spec
from analogep.evaluation.generation import FIGURES, sweet_spots
from analogep.model.factory import build_energy
from analogep.backends.factory import make_backend
from analogep.objectives.flow_sampling import generate, generate_snapshots

from clirun import TINY, assert_ok, assert_one_line_error, invoke, train_tiny


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs") / "flow", 3)


def test_snapshots_are_the_samples_of_a_run_to_that_t1():
    """One trajectory's snapshot after k steps is what sampling to t1 = k dt gives."""
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    backend = make_backend(spec, model, "numpy")
    backend.program(params)
    shots = generate_snapshots(model, backend, spec.gradep, n=8, steps=[3, 7], dt=0.05, seed=4)
    for k in (3, 7):
        alone = generate(model, backend, spec.gradep, n=8, t1=k * 0.05, dt=0.05, seed=4)
        np.testing.assert_array_equal(shots[k], alone)
    assert not np.array_equal(shots[3], shots[7])


def test_sweet_spots_follow_each_figures_rule():
    grid = [0.5, 1.0, 2.0]
    figures = {f: {"mean": [3.0, 1.0, 2.0], "std": [0.1, 0.2, 0.3]} for f in FIGURES}
    reference = dict.fromkeys(FIGURES, 2.1)
    spots = sweet_spots(grid, figures, reference)
    assert spots["frechet"]["at"] == 1.0 and spots["outside_range"]["at"] == 1.0  # lowest
    assert spots["confidence"]["at"] == 0.5 and spots["classes_covered"]["at"] == 0.5  # highest
    assert spots["nearest_train_distance"]["at"] == 2.0  # closest to the real digits' 2.1
    assert spots["frechet"]["std"] == 0.2


def test_study_generation_measures_every_figure_per_mode_and_seed(flow_run, tmp_path):
    plot = tmp_path / "gen.png"
    result = invoke("study", "generation", flow_run, "--t1-grid", "0.2,0.4", "--steps-grid", "4,8", "--steps-t1", "0.4",
                    "--seeds", "1,2", "--n", 12, "--plot", plot, "--json")
    assert_ok(result)
    r = json.loads(result.stdout)
    assert plot.stat().st_size > 0
    t1 = r["t1"]
    assert t1["grid"] == [0.2, 0.4] and t1["steps"] == [4, 8] and set(t1["modes"]) == {"energy", "spring"}
    for mode in t1["modes"].values():
        for f in FIGURES:
            assert np.array(mode["figures"][f]["values"]).shape == (2, 2)  # seeds x grid
        assert set(mode["sweet_spot"]) == set(FIGURES)
    # Distinct seeds give distinct samples, so the spread of the Fréchet distance is not zero.
    assert all(s > 0 for s in t1["modes"]["energy"]["figures"]["frechet"]["std"])
    # The steps sweep's 8 steps to 0.4 are the t1 sweep's t1 = 0.4 (dt 0.05): the same samples.
    steps = r["steps"]
    assert steps["grid"] == [4, 8]
    np.testing.assert_allclose(np.array(steps["figures"]["frechet"]["values"])[:, 1],
                               np.array(t1["modes"]["energy"]["figures"]["frechet"]["values"])[:, 1])


@pytest.mark.parametrize("args, fragment", [
    (["--t1-grid", "1,-0.5"], "--t1-grid: '1,-0.5' must list positive numbers"),
    (["--t1-grid", "0,1"], "--t1-grid: '0,1' must list positive numbers"),
    (["--t1-grid", "0.01"], "--t1-grid: 0.01 is below the Euler step"),
    (["--steps-grid", "1"], "--steps-grid: 1 steps over t1"),
    (["--modes", "spring,langevin"], "--modes"),
])
def test_study_generation_refuses_bad_grids_in_one_line(flow_run, tmp_path, args, fragment):
    plot = tmp_path / "gen.png"
    assert_one_line_error(invoke("study", "generation", flow_run, *args, "--plot", plot), fragment)
    assert not plot.exists()


def dsm_config(tmp_path, extra: str = "") -> Path:
    """examples/tiny.yaml as a dsm run with level biases (the level code is clipped below
    sigma_min: the extended schedule's levels take the last level's energy)."""
    cfg = tmp_path / "dsm.yaml"
    cfg.write_text(TINY.read_text().replace("train:\n", "train:\n  objective: dsm\n", 1)
                   + "dsm:\n  conditioning: level-bias\n  levels: 5\n  steps_per_level: 2\n" + extra)
    return cfg


@pytest.fixture(scope="module")
def dsm_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dsm"
    assert_ok(invoke("train", dsm_config(tmp_path_factory.mktemp("cfg")), "--out", out, "--steps", 2, "--no-samples"))
    return out


def test_langevin_snapshots_are_the_samples_of_a_schedule_cut_or_continued_there(tmp_path):
    """A snapshot at level i is annealed Langevin over the first i + 1 levels of the continued
    schedule (same noise, same warm starts, the Tweedie step at that level's sigma); at
    tau = 1 it is the run's own sampler."""
    from analogep.evaluation.dsm_generation import _langevin_settings, _sampling, extended_sigmas, schedule_levels
    from analogep.objectives.factory import build_objective
    from analogep.objectives.langevin import annealed_langevin, langevin_snapshots

    spec = load_spec(dsm_config(tmp_path))
    spec = spec.replace(generate={"n": 8, "seed": 4})
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    backend = make_backend(spec, model, "numpy")
    backend.program(params)
    ends = schedule_levels(spec.dsm, [0.5, 1.0, 1.75])
    assert ends == [2, 4, 7]
    sigmas = extended_sigmas(spec.dsm, max(ends))
    assert sigmas[:5] == list(spec.dsm.sigmas) and sigmas[7] == pytest.approx(0.1 ** 1.75)
    settings = _langevin_settings(spec, backend)
    sampling = _sampling(spec, model, backend, n=8, mode="energy", seed=4)
    shots = langevin_snapshots(sampling, sigmas=sigmas, ends=ends, steps_per_level=2, **settings)
    for i in ends:
        alone = annealed_langevin(sampling, sigmas=sigmas[: i + 1], steps_per_level=2, **settings)
        np.testing.assert_array_equal(shots[i], alone)
    np.testing.assert_array_equal(shots[4], build_objective(spec).sample(model, backend, spec.generate))
    assert not np.array_equal(shots[4], shots[7])
    # Steps added at sigma_min are one-step levels there: per-level counts [1, ..., 1] are
    # annealed Langevin with one step per level over the same sigmas.
    more = list(spec.dsm.sigmas) + [spec.dsm.sigma_min] * 3
    extra = langevin_snapshots(sampling, sigmas=more, ends=[7], steps_per_level=[1] * 8, **settings)
    alone = annealed_langevin(sampling, sigmas=more, steps_per_level=1, **settings)
    np.testing.assert_array_equal(extra[7], alone)


def test_study_generation_on_a_dsm_run_sweeps_tau_and_steps_per_level(dsm_run, tmp_path):
    plot = tmp_path / "gen.png"
    result = invoke("study", "generation", dsm_run, "--t1-grid", "0.5,1,1.5", "--steps-grid", "1,3", "--extra-grid", "0,4",
                    "--steps-per-level", 1, "--seeds", "1,2", "--n", 12, "--plot", plot, "--json")
    assert_ok(result)
    r = json.loads(result.stdout)
    assert plot.stat().st_size > 0
    t = r["t1"]
    assert t["levels"] == [2, 4, 6] and t["tau"] == [0.5, 1.0, 1.5] and t["steps_per_level"] == 1
    assert t["sigma_end"][1] == pytest.approx(0.1) and t["sigma_end"][2] == pytest.approx(0.1 ** 1.5)
    assert set(t["modes"]) == {"energy", "spring"}
    for mode in t["modes"].values():
        for f in FIGURES:
            assert np.array(mode["figures"][f]["values"]).shape == (2, 3)  # seeds x grid
        assert set(mode["sweet_spot"]) == set(FIGURES)
    assert all(s > 0 for s in t["modes"]["energy"]["figures"]["frechet"]["std"])
    # 1 step per level to tau = 1 is the tau sweep's tau = 1 (1 step per level): the same samples.
    steps = r["steps"]
    assert steps["grid"] == [1, 3] and steps["tau"] == 1.0
    np.testing.assert_allclose(np.array(steps["figures"]["frechet"]["values"])[:, 0],
                               np.array(t["modes"]["energy"]["figures"]["frechet"]["values"])[:, 1])
    # No steps added at sigma_min is the sampler as it is: tau = 1 again.
    extra = r["extra"]
    assert extra["grid"] == [0, 4] and set(extra["sweet_spot"]) == set(FIGURES)
    np.testing.assert_allclose(np.array(extra["figures"]["frechet"]["values"])[:, 0],
                               np.array(t["modes"]["energy"]["figures"]["frechet"]["values"])[:, 1])
    assert not np.allclose(np.array(extra["figures"]["frechet"]["values"])[:, 1],
                           np.array(extra["figures"]["frechet"]["values"])[:, 0])
    text = invoke("study", "generation", dsm_run, "--t1-grid", "1,2", "--modes", "energy", "--steps-per-level", 1,
                  "--seeds", "1,2", "--n", 6, "--plot", tmp_path / "g2.png")
    assert_ok(text)
    assert "tau ends at sigma 0.1, 0.01 (1 Langevin steps per level)" in text.stdout
    assert "frechet at tau = " in text.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--dt", "0.1"], "--dt: a dsm run's sampler takes no Euler step"),
    (["--t1-grid", "1,1.1"], "--t1-grid: 1 and 1.1 both end at level 4"),
    (["--t1-grid", "5000"], "Langevin steps"),
    (["--t1-grid", "1", "--steps-grid", "5000"], "--steps-grid: 5000 steps per level x 5 levels"),
    (["--t1-grid", "1", "--extra-grid", "0,-3"], "--extra-grid: '0,-3' must list whole numbers >= 0"),
    (["--t1-grid", "1", "--extra-grid", "0,1.5"], "--extra-grid: '0,1.5' is not a comma-separated list"),
    (["--t1-grid", "1", "--extra-grid", "20000"], "--extra-grid: 5 levels x 2 steps + 20000"),
])
def test_study_generation_refuses_bad_dsm_input_in_one_line(tmp_path, args, fragment):
    plot = tmp_path / "gen.png"
    assert_one_line_error(invoke("study", "generation", dsm_config(tmp_path), *args, "--plot", plot), fragment)
    assert not plot.exists()


def test_study_generation_refuses_a_one_level_schedule_and_steps_per_level_on_flow(tmp_path, flow_run):
    plot = tmp_path / "gen.png"
    one = dsm_config(tmp_path).read_text().replace("levels: 5", "levels: 1\n  sigma_min: 0.5\n  sigma_max: 0.5")
    (tmp_path / "one.yaml").write_text(one)
    assert_one_line_error(invoke("study", "generation", tmp_path / "one.yaml", "--plot", plot), "one-level schedule")
    assert_one_line_error(invoke("study", "generation", flow_run, "--steps-per-level", 3, "--plot", plot),
                   "--steps-per-level: ")
    assert_one_line_error(invoke("study", "generation", flow_run, "--extra-grid", "0,10", "--plot", plot), "--extra-grid: ")
    assert not plot.exists()


def test_continuous_sampling_of_a_dsm_run_is_refused_and_writes_nothing(dsm_run, tmp_path):
    before = sorted(p.name for p in dsm_run.iterdir())
    png, npy = tmp_path / "s.png", tmp_path / "s.npy"
    assert_one_line_error(invoke("sample", dsm_run, "--mode", "continuous", "--n", 4, "--out", png, "--save", npy),
                   "is a dsm run; continuous generation is the flow-matching energy's gradient flow")
    assert_one_line_error(invoke("sample", dsm_run, "--mode", "continuous", "--n", 4), "is a dsm run")
    assert_one_line_error(invoke("study", "continuous", dsm_run, "--n", 4, "--plot", png), "is a dsm run")
    assert not png.exists() and not npy.exists()
    assert sorted(p.name for p in dsm_run.iterdir()) == before
