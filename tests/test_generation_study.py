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

from clirun import TINY, assert_ok, assert_one_line_error, invoke, tiny_dsm_yaml, train_tiny


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


def test_study_generation_refuses_a_score_matching_run(tmp_path):
    cfg = tiny_dsm_yaml(tmp_path / "dsm.yaml")
    plot = tmp_path / "gen.png"
    assert_one_line_error(invoke("study", "generation", cfg, "--plot", plot), "is a dsm run")
    assert not plot.exists()
