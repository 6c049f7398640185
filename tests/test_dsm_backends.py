"""Score matching on everything flow matching runs on (issue 10): training with ngspice in
the loop against numpy, the numpy cross-check, the compiled decks of a DSM training point,
Langevin and ODE sampling on the circuit, and compare across objectives. Real ngspice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analogep import api
from analogep.config import load_spec
from analogep.model.factory import build_energy
from analogep.model.tensors import params_dot, params_map, params_norm
from analogep.training.checkpoint import load_checkpoint
from analogep.training.runlog import read_metrics

from clirun import TINY, assert_ok, invoke, tiny_dsm_yaml


@pytest.fixture
def dsm_yaml(tmp_path) -> Path:
    return tiny_dsm_yaml(tmp_path / "tiny-dsm.yaml", "  conditioning: scale\n")


@pytest.mark.spice
def test_spice_training_of_dsm_follows_the_numpy_training(dsm_yaml, tmp_path):
    runs = {}
    for backend in ("numpy", "spice"):
        out = tmp_path / backend
        assert_ok(invoke("train", dsm_yaml, "--backend", backend, "--steps", 2, "--batch", 4, "--out", out, "--no-samples"))
        runs[backend] = out
    a, b = (read_metrics(runs[k]) for k in ("numpy", "spice"))
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-4)
    start = build_energy(load_spec(dsm_yaml).model).init_params(np.random.default_rng(0))
    moved = [params_map(lambda p, p0: p - p0, load_checkpoint(runs[k]).params, start) for k in ("numpy", "spice")]
    assert params_dot(*moved) / (params_norm(moved[0]) * params_norm(moved[1])) >= 0.99  # Adam's steps alike
    result = invoke("compare", runs["numpy"], runs["spice"], "--json", "--plot", tmp_path / "cmp.png")
    assert_ok(result)


@pytest.mark.spice
def test_the_numpy_cross_check_passes_on_a_dsm_config(dsm_yaml, tmp_path):
    result = invoke("check", dsm_yaml, "--n", 6, "--json", "--plot", tmp_path / "c.png")
    assert_ok(result)
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["max_abs_error"] <= 1e-6 and report["grad_cosine"] >= 1 - 1e-6


@pytest.mark.spice
@pytest.mark.parametrize("sampler", ["langevin", "ode"])
def test_dsm_sampling_on_the_circuit_follows_numpy(sampler):
    spec = load_spec(TINY).replace(
        train={"objective": "dsm"}, dsm={"levels": 3, "steps_per_level": 1, "ode_steps": 2, "sampler": sampler},
        relax={"tol": 1e-9, "free_steps": 2000},
    )
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    x_spice = api.sample(spec, params, n=4, seed=2, backend="spice")
    x_numpy = api.sample(spec, params, n=4, seed=2)
    np.testing.assert_allclose(x_spice, x_numpy, atol=1e-5)


def test_the_decks_of_a_dsm_training_point_name_its_level(dsm_yaml, tmp_path):
    out = tmp_path / "decks"
    assert_ok(invoke("compile", dsm_yaml, "--out", out))
    header = (out / "free.cir").read_text().splitlines()[3]
    assert "denoising score-matching draw 0" in header and "sigma = " in header and "weight 1" in header
    assert {p.name for p in out.iterdir()} >= {"free.cir", "nudge_plus.cir", "nudge_minus.cir", "generate.cir"}


def test_compare_sets_a_dsm_run_beside_a_flow_run(dsm_yaml, tmp_path):
    flow, dsm = tmp_path / "flow", tmp_path / "dsm"
    assert_ok(invoke("train", TINY, "--steps", 2, "--out", flow, "--no-samples"))
    assert_ok(invoke("train", dsm_yaml, "--steps", 2, "--out", dsm, "--no-samples"))
    result = invoke("compare", flow, dsm, "--json", "--plot", tmp_path / "cmp.png")
    assert_ok(result)
    assert (tmp_path / "cmp.png").exists()
