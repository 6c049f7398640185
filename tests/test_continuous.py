"""Continuous generation (objectives/continuous.py, spice/generation.py): the circuit's own
two-timescale flow in numpy and as an ngspice transient, on the tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep.config import load_spec
from analogep.model.factory import build_energy
from analogep.objectives.continuous import flow, float64_model, generate_continuous, physical_time

from clirun import TINY, assert_ok, assert_one_line_error, invoke, tiny_dsm_yaml, train_tiny


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs") / "flow", 3)


def test_the_flow_tends_to_the_euler_samplers_as_the_hidden_layer_gets_faster():
    """The visible flow is the Euler sampler's velocity at the hidden equilibrium only when
    the hidden layer follows adiabatically: its distance to fine Euler steps from the same
    noise falls as the capacitance ratio grows."""
    spec = load_spec(TINY)
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    euler = analogep.sample(spec, params, n=6, t1=0.5, dt=0.005, seed=3)
    gaps = [np.abs(generate_continuous(spec, params, n=6, t1=0.5, ratio=r, seed=3) - euler).max() for r in (1, 10, 100)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.1 * gaps[0]


def test_the_hidden_layer_relaxes_ratio_times_faster_than_the_visible():
    """With the visible nodes far slower, a short flow moves the hidden layer to its
    equilibrium while the visible nodes have barely moved."""
    spec = load_spec(TINY)
    model, params = float64_model(spec, build_energy(spec.model).init_params(np.random.default_rng(0)))
    x0 = np.random.default_rng(1).standard_normal((2, 64))
    _, states = flow(model, params, x0, t1=0.02, ratio=1000, alpha=spec.gradep.alpha)
    end = states[-1]
    grads = model.state_grad(params, end)
    assert np.abs(grads[1]).max() < 1e-2 * np.abs(model.state_grad(params, [x0] + [np.zeros_like(h) for h in end[1:]])[1]).max()
    assert np.abs(end[0] - x0).max() < 0.1 * np.abs(x0).max()


def test_a_precharge_starts_the_flow_with_the_hidden_layer_at_its_equilibrium():
    """Held at the noise for 20 hidden time constants, the hidden layer reaches h*(x0): its
    gradient at release is a small fraction of the 0 V start's, and the visible nodes have
    not moved."""
    spec = load_spec(TINY)
    model, params = float64_model(spec, build_energy(spec.model).init_params(np.random.default_rng(0)))
    x0 = np.random.default_rng(1).standard_normal((2, 64))
    start = [x0] + [np.zeros((2, k)) for k in model.sizes[1:]]
    _, held = flow(model, params, x0, t1=20 / (spec.gradep.alpha * 10), ratio=10, alpha=spec.gradep.alpha, visible_held=True)
    assert np.array_equal(held[-1][0], x0)
    at_release = max(np.abs(g).max() for g in model.state_grad(params, held[-1])[1:])
    assert at_release < 1e-3 * max(np.abs(g).max() for g in model.state_grad(params, start)[1:])
    # The precharged flow is the flow from that hidden state.
    _, a = flow(model, params, x0, t1=0.3, ratio=10, alpha=spec.gradep.alpha, precharge=20)
    _, b = flow(model, params, x0, t1=0.3, ratio=10, alpha=spec.gradep.alpha, hidden=held[-1][1:])
    assert np.allclose(a[-1][0], b[-1][0], atol=1e-9)


def test_physical_time_is_t1_alpha_times_the_visible_time_constant():
    spec = load_spec(TINY)
    # alpha 2, C_v = 100 pF, g0 = 1e-4 S: C_v/g0 = 1 us, so t1 = 1 is 2 us.
    assert physical_time(spec, 1.0, 100.0, 1e-12) == pytest.approx(2e-6)


def test_ngspice_transient_and_numpy_flow_give_the_same_sample(flow_run, tmp_path):
    """`sample --mode continuous --backend spice` against the numpy flow from the same noise:
    the issue's bar is 1e-4 of full scale per sample."""
    npy = tmp_path / "spice.npy"
    result = invoke("sample", flow_run, "--mode", "continuous", "--backend", "spice", "--ratio", 10, "--t1", 0.5,
                    "--n", 2, "--seed", 4, "--save", npy, "--json")
    assert_ok(result)
    summary = json.loads(result.stdout)
    assert summary["mode"] == "continuous" and summary["circuit_seconds_per_sample"] == pytest.approx(1e-7)
    spice = np.load(npy)
    spec, params, _ = analogep.load_model(flow_run)
    numpy = generate_continuous(spec, params, n=2, t1=0.5, ratio=10, seed=4)
    scale = np.abs(numpy).max()
    assert np.abs(spice - numpy).max() < 1e-4 * scale
    # Not the noise it started from: the circuit moved the sample.
    noise = np.random.default_rng(4).standard_normal((2, 64)).astype(np.float32)
    assert np.abs(spice - noise).max() > 100 * np.abs(spice - numpy).max()


def test_ngspice_precharge_switches_give_the_numpy_precharged_sample(flow_run, tmp_path):
    """With a precharge the deck holds the visible nodes at the noise through switches, then
    opens them; ngspice's sample is the numpy precharged flow's to 1e-4 of full scale, and
    the precharge moved the sample (it is not the unprecharged one)."""
    npy = tmp_path / "spice.npy"
    result = invoke("sample", flow_run, "--mode", "continuous", "--backend", "spice", "--ratio", 10, "--t1", 0.5,
                    "--precharge", 10, "--n", 1, "--seed", 4, "--save", npy, "--json")
    assert_ok(result)
    # 10 C_h / g0 = 100 ns of hold before the 100 ns flow.
    assert json.loads(result.stdout)["circuit_seconds_per_sample"] == pytest.approx(2e-7)
    spec, params, _ = analogep.load_model(flow_run)
    numpy = generate_continuous(spec, params, n=1, t1=0.5, ratio=10, seed=4, precharge=10)
    plain = generate_continuous(spec, params, n=1, t1=0.5, ratio=10, seed=4)
    scale = np.abs(numpy).max()
    gap = np.abs(np.load(npy) - numpy).max()
    assert gap < 1e-4 * scale
    assert np.abs(plain - numpy).max() > 100 * gap


@pytest.mark.parametrize("args, fragment", [
    (["--mode", "continuous", "--ratio", "0.5"], "--ratio: 0.5 is below 1"),
    (["--mode", "continuous", "--precharge", "-1"], "--precharge: -1 must be"),
    (["--precharge", "5"], "--precharge: only with --mode continuous"),
    (["--mode", "continuous", "--ratio", "nan"], "--ratio: nan is below 1"),
    (["--ratio", "10"], "--ratio: only with --mode continuous"),
    (["--mode", "continuous", "--dt", "0.1"], "--dt: continuous generation takes no Euler steps"),
    (["--mode", "continuous", "--spice-reltol", "1e-6"], "--spice-reltol"),
])
def test_sample_continuous_refuses_bad_settings_in_one_line(flow_run, tmp_path, args, fragment):
    png = tmp_path / "s.png"
    assert_one_line_error(invoke("sample", flow_run, *args, "--out", png), fragment)
    assert not png.exists()


def test_sample_continuous_refuses_a_score_matching_run(tmp_path):
    cfg = tiny_dsm_yaml(tmp_path / "dsm.yaml")
    run = tmp_path / "dsm"
    assert_ok(invoke("train", cfg, "--out", run, "--steps", 1, "--no-samples"))
    png = tmp_path / "s.png"
    assert_one_line_error(invoke("sample", run, "--mode", "continuous", "--out", png), "is a dsm run")
    assert not png.exists()


def test_study_continuous_puts_quality_time_and_energy_against_the_ratio(flow_run, tmp_path):
    plot = tmp_path / "c.png"
    result = invoke("study", "continuous", flow_run, "--ratios", "2,50", "--seeds", "1,2", "--n", 12, "--t1", 0.5,
                    "--plot", plot, "--json")
    assert_ok(result)
    r = json.loads(result.stdout)
    assert plot.stat().st_size > 0 and r["ratios"] == [2.0, 50.0]
    assert np.array(r["figures"]["frechet"]["values"]).shape == (2, 2)  # seeds x ratios
    assert r["euler"]["frechet"]["std"] > 0
    slow, fast = r["energy"]["continuous"]
    # The flow lasts t1 alpha C_v / g0: 25 times longer at 25 times the visible capacitance.
    assert slow["seconds"] < fast["seconds"] and fast["joules"] > slow["joules"] > 0
    assert r["energy"]["clamped"]["joules"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["--ratios", "0.5,10"], "--ratios: 0.5 is below 1"),
    (["--ratios", "-1"], "--ratios: '-1' must list positive numbers"),
    (["--t1", "0"], "--t1: 0 must be positive"),
    (["--precharge", "inf"], "--precharge: inf must be"),
])
def test_study_continuous_refuses_bad_input_in_one_line(flow_run, tmp_path, args, fragment):
    plot = tmp_path / "c.png"
    assert_one_line_error(invoke("study", "continuous", flow_run, *args, "--plot", plot), fragment)
    assert not plot.exists()


def test_continuous_generation_on_devices_is_the_realised_circuits_flow(flow_run, tmp_path):
    """Deployed on the pcm preset's devices, the same noise gives other (finite) samples than
    on the ideal circuit: the flow is the realised conductances'."""
    ideal, pcm = tmp_path / "ideal.npy", tmp_path / "pcm.npy"
    for npy, extra in ((ideal, []), (pcm, ["--devices", "pcm"])):
        assert_ok(invoke("sample", flow_run, "--mode", "continuous", "--ratio", 30, "--t1", 0.5, "--n", 4, "--save", npy,
                         *extra))
    a, b = np.load(ideal), np.load(pcm)
    assert np.all(np.isfinite(b)) and np.abs(a - b).max() > 1e-3
    png = tmp_path / "s.png"
    assert_one_line_error(invoke("sample", flow_run, "--mode", "continuous", "--backend", "spice", "--devices", "pcm",
                          "--out", png), "--devices: continuous generation on devices runs with --backend numpy only")
    assert not png.exists()


def test_continuous_generation_of_an_in_situ_run_flows_on_the_devices_it_trained(tmp_path):
    """A run trained in situ generates continuously on its own devices (the checkpoint's
    device state), not on fresh ones: the realised conductances are the numpy backend's
    after the same state is loaded, and the samples differ from a fresh deployment's."""
    from analogep.backends.factory import make_backend
    from analogep.devices.crossbar import Devices
    from analogep.devices.programmed import program
    from analogep.training.checkpoint import load_checkpoint

    run = tmp_path / "insitu"
    assert_ok(invoke("train", TINY, "--out", run, "--devices", "pcm", "--steps", 2, "--no-samples"))
    ckpt = load_checkpoint(run)
    # Without the lines' IR drop, which the realised flow models and the numpy backend does not.
    spec, params = ckpt.spec.replace(devices={"wire_resistance": 0.0}), ckpt.params
    backend = make_backend(spec, build_energy(spec.model), "numpy")
    backend.devices.load_state_dict(*ckpt.devices, where="test")
    realised = backend.program(params)
    model, p64 = float64_model(spec, params)
    devices = Devices(spec, model)
    devices.load_state_dict(*ckpt.devices, where="test")
    drawn = program(spec, model, p64, devices)
    for name in realised:
        assert np.allclose(drawn.params[name], realised[name], rtol=1e-5, atol=1e-6), name
    own, fresh = tmp_path / "own.npy", tmp_path / "fresh.npy"
    assert_ok(invoke("sample", run, "--mode", "continuous", "--ratio", 30, "--t1", 0.5, "--n", 3, "--save", own))
    assert_ok(invoke("sample", run, "--mode", "continuous", "--ratio", 30, "--t1", 0.5, "--n", 3, "--save", fresh,
                     "--devices", "pcm"))
    a, b = np.load(own), np.load(fresh)
    assert np.all(np.isfinite(a)) and np.abs(a - b).max() > 1e-4
