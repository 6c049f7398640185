"""The non-ideal crossbar (issue 9, method.md section 7 'Devices'): the device draws, the
write rules, mismatched copies (the circuit's KCL instead of an energy), the measurement
chain, in-situ training and its bit-exact resume, and bad device input.

The ideal preset's numbers are covered by every other test (the default is ideal)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analogep import api
from analogep.backends.numpy_backend import NumpyBackend
from analogep.devices.crossbar import Devices
from analogep.devices.periphery import MeasurementChain, quantise
from analogep.cli.app import main
from analogep.config import ConfigError, load_spec, with_devices
from analogep.config.hardware import DevicesSpec
from analogep.config.presets import device_presets
from analogep.data import load_dataset
from analogep.ep.step import gradep_step
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective
from analogep.solvers.base import sample_max_abs

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny():
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    return spec, model, model.init_params(np.random.default_rng(0))


def _devices(spec, **keys):
    return spec.replace(devices={"preset": "ideal", **keys})


def _batch(spec, model, n=64):
    data = load_dataset(spec.train.dataset, dtype=model.dtype)
    return build_objective(spec).batch(data, n, np.random.default_rng(0))


# --- config ----------------------------------------------------------------------------------------


def test_the_default_is_ideal_and_builds_no_devices(tiny):
    spec, model, _ = tiny
    assert spec.devices == DevicesSpec() and spec.devices.ideal
    assert with_devices(spec, "ideal").devices.ideal
    assert NumpyBackend.from_spec(spec, model).devices is None
    assert not with_devices(spec, "rram").devices.ideal


def test_every_preset_loads_and_every_value_it_sets_has_a_source_comment():
    assert set(device_presets()) >= {"ideal", "rram", "pcm"}
    for name in device_presets():
        text = resources.files("analogep.config").joinpath("devices", f"{name}.yaml").read_text()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if re.match(r"[a-z_]+:", line):  # a key (or a group of keys) sits under the comment citing it
                j = i - 1
                while j >= 0 and re.match(r"[a-z_]+:", lines[j]):
                    j -= 1
                assert j >= 0 and lines[j].startswith("#"), (name, line)
        spec = with_devices(load_spec(TINY), name)
        assert spec.devices.preset == name


@pytest.mark.parametrize(
    "keys, fragment",
    [
        ({"preset": "memristor9000"}, "devices.preset"),
        ({"variability": -0.01}, "devices.variability"),
        ({"gmin": 1e-4, "gmax": 1e-5}, "gmin < gmax"),
        ({"bits": 0}, "devices.bits"),
        ({"adc_bits": 8, "adc_range": 0.5}, "devices.adc_range"),
        ({"stuck_gmin": 0.6, "stuck_gmax": 0.6}, "devices.stuck_gmax"),
        ({"copies": "three"}, "devices.copies"),
    ],
)
def test_bad_device_values_are_one_config_error_naming_the_key(tiny, keys, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        tiny[0].replace(devices=keys)


def test_bad_devices_flag_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: rram\nvariability: -1\n")
    for value, fragment in [("nonesuch", "neither a preset"), (str(bad), "devices.variability"),
                            (str(tmp_path / "missing.yaml"), "no such file")]:
        out = tmp_path / "run"
        result = CliRunner().invoke(main, ["train", str(TINY), "--out", str(out), "--devices", value, "--steps", "2"])
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
        assert not out.exists()


# --- the device draws --------------------------------------------------------------------------------


def test_variability_stuck_faults_and_levels_have_the_configured_statistics(tiny):
    spec, model, params = tiny
    spec = _devices(spec, gmin=1e-6, gmax=1e-4, w_max=1.0, bits=4, variability=0.1, stuck_gmin=0.05, stuck_gmax=0.02)
    devices = Devices(spec, model)
    gains = np.concatenate([v.ravel() for k, v in devices.frozen.items() if k.startswith("gain/")])
    stuck = np.concatenate([v.ravel() for k, v in devices.frozen.items() if k.startswith("stuck/")])
    assert gains.size > 2000
    assert abs(gains.std() - 0.1) < 0.01 and abs(gains.mean() - 1.0) < 0.01
    assert abs(np.mean(stuck == 1) - 0.05) < 0.015 and abs(np.mean(stuck == 2) - 0.02) < 0.01
    devices.program(params)
    step = (1e-4 - 1e-6) / 15
    for key, g in devices.state.items():
        if key.startswith("g/"):  # no program noise: every programmed device sits on one of the 16 levels
            assert np.allclose(g / step, np.rint(g / step), atol=1e-9) and g.max() <= 15 * step * (1 + 1e-12)
    real = devices.realise(params)
    w0 = real.forward["W0"]
    frozen = devices.frozen
    assert np.all(w0.plus[frozen["stuck/W0/0/plus"] == 1] == 1e-6)
    assert np.all(w0.plus[frozen["stuck/W0/0/plus"] == 2] == 1e-4)


def test_same_seed_same_devices_other_seed_other_devices(tiny):
    spec, model, _ = tiny
    a = Devices(_devices(spec, variability=0.05), model).frozen["gain/W0/0/plus"]
    b = Devices(_devices(spec, variability=0.05), model).frozen["gain/W0/0/plus"]
    c = Devices(_devices(spec, variability=0.05, seed=1), model).frozen["gain/W0/0/plus"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --- the write rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["accumulate", "stochastic", "nearest"])
def test_small_updates_accumulate_except_with_naive_rounding(tiny, rule):
    """Forty updates of a quarter level each must move a weight by ten levels; rounding each
    update to the nearest level loses them all."""
    spec, model, params = tiny
    spec = _devices(spec, gmin=0.0, gmax=1e-4, w_max=1.0, bits=6, write_rule=rule)
    devices = Devices(spec, model)
    level = 1.0 / 63  # one level in weight units
    p = {k: v.astype(np.float64) for k, v in params.items()}
    p["W0"] = np.full_like(p["W0"], 20 * level)
    devices.program(p)
    start, first = devices.realise(p).weight("W0").copy(), devices.total_pulses
    for _ in range(40):
        p["W0"] = p["W0"] + 0.25 * level
        devices.program(p)
    moved = (devices.realise(p).weight("W0") - start) / level
    if rule == "nearest":
        assert np.all(moved == 0)
    elif rule == "accumulate":  # one pulse per level crossed, on the G+ devices only
        assert np.allclose(moved, 10.0) and devices.total_pulses - first == 10 * p["W0"].size
    else:  # stochastic rounding: unbiased
        assert abs(moved.mean() - 10.0) < 0.2


def test_write_noise_spreads_each_pulse_and_stuck_devices_never_change(tiny):
    spec, model, params = tiny
    spec = _devices(spec, gmin=0.0, gmax=1e-4, w_max=1.0, bits=8, write_noise=0.5, stuck_gmin=0.1)
    devices = Devices(spec, model)
    p = {k: v.astype(np.float64) for k, v in params.items()}
    devices.program(p)
    before = devices.realise(p).forward["W0"].plus.copy()
    p["W0"] = p["W0"] + 10.0 / 255  # ten pulses up for every positive device
    devices.program(p)
    after = devices.realise(p).forward["W0"].plus
    stuck = devices.frozen["stuck/W0/0/plus"] != 0
    assert np.array_equal(after[stuck], before[stuck])
    moved = (after - before)[~stuck & (p["W0"] > 0.05)] / (1e-4 / 255)
    assert abs(moved.mean() - 10) < 0.5 and 0.3 * np.sqrt(10) < moved.std() < 0.7 * np.sqrt(10)


# --- mismatched copies and drivers: the circuit's KCL ------------------------------------------------


def test_mismatched_copies_give_a_non_symmetric_circuit_whose_kcl_the_solver_satisfies(tiny):
    spec, model, params = tiny
    batch = _batch(spec, model)
    results = {}
    for copies in ("bidirectional", "mismatched"):
        s = _devices(spec, variability=0.05, copies=copies, driver_gain_sigma=0.0)
        backend = NumpyBackend.from_spec(s, model)
        backend.program(params)
        real = backend.realisation
        asymmetric = not np.array_equal(real.weight("W0", "forward"), real.weight("W0", "transposed"))
        assert asymmetric == (copies == "mismatched") and real.has_energy == (copies == "bidirectional")
        eq = backend.equilibrium(batch.x_t, None, None)
        assert eq.residual < 10 * spec.relax.tol
        # the KCL residual (state_grad of the realised circuit) plus the spring vanishes at the equilibrium
        kcl = backend.circuit.state_grad(backend.params, eq.state)
        kcl[0] = kcl[0] + spec.gradep.lam * (eq.state[0] - batch.x_t)
        assert sample_max_abs(kcl).max() < 10 * spec.relax.tol
        results[copies] = eq.state[0]
    assert not np.allclose(results["bidirectional"], results["mismatched"], atol=1e-5)


def test_driver_gain_and_offset_enter_as_the_drivers_outputs(tiny):
    spec, model, params = tiny
    s = _devices(spec, driver_gain_sigma=0.05, driver_offset_sigma=0.01)
    backend = NumpyBackend.from_spec(s, model)
    backend.program(params)
    assert not backend.realisation.has_energy
    x = _batch(spec, model).x_t
    eq, de_dx = backend.clamped(x, None)
    g, o = backend.realisation.gain, backend.realisation.offset
    a1 = g[1] * model.rho(eq.state[1]) + o[1]
    # the clamped read-out: x - (b_x + W0^T a_1) with the driver outputs a_1
    assert np.allclose(de_dx, x - (params["b_x"] + a1 @ backend.params["W0"]), atol=1e-5)


def test_ep_under_variability_and_mismatch_stays_close_to_ideal_at_small_spreads(tiny):
    spec, model, params = tiny
    batch, objective = _batch(spec, model, 128), build_objective(spec)

    def step(devices):
        s = spec if devices is None else _devices(spec, **devices)
        backend = NumpyBackend.from_spec(s, model)
        return gradep_step(model, backend, backend.program(params), batch, objective, s.gradep, s.train)

    ideal = step(None)
    flat = lambda r: np.concatenate([v.ravel() for v in r.grad.values()])
    for copies in ("bidirectional", "mismatched"):
        r = step({"variability": 0.01, "copies": copies})
        assert not r.trouble
        v_err = np.linalg.norm(r.v - ideal.v) / np.linalg.norm(ideal.v)
        cos = flat(r) @ flat(ideal) / np.linalg.norm(flat(r)) / np.linalg.norm(flat(ideal))
        assert 0 < v_err < 0.05 and cos > 0.99


# --- the measurement chain ---------------------------------------------------------------------------


def test_adc_quantises_to_its_levels_and_counts_what_it_clips():
    x = np.linspace(-3, 3, 1001)
    q, clipped = quantise(x, 3, 2.0)
    assert len(np.unique(q)) == 8 and clipped == np.count_nonzero(np.abs(x) > 2.0)
    chain = MeasurementChain(DevicesSpec(read_noise=0.01), np.random.default_rng(0))
    noisy = chain.read(np.zeros(100_000))
    assert abs(noisy.std() - 0.01) < 3e-4


# --- in-situ training ---------------------------------------------------------------------------------


def test_in_situ_training_resumes_bit_exactly_on_the_same_devices(tiny, tmp_path):
    spec = with_devices(tiny[0], "pcm").replace(train={"steps": 6, "checkpoint_every": 3, "batch": 64})
    whole = api.train(spec, tmp_path / "whole")
    api.train(spec.replace(train={"steps": 3}), tmp_path / "half")
    resumed = api.train(spec, tmp_path / "half", resume=True)
    for k in whole.params:
        assert np.array_equal(whole.params[k], resumed.params[k])
    a, b = np.load(tmp_path / "whole" / "checkpoint.npz"), np.load(tmp_path / "half" / "checkpoint.npz")
    device_keys = [k for k in a.files if k.startswith("device/")]
    assert device_keys and all(np.array_equal(a[k], b[k]) for k in device_keys)
    assert [r["pulses"] for r in whole.records][3:] == [r["pulses"] for r in resumed.records][3:]
    assert all(r["pulses"] > 0 for r in whole.records)


# --- robustness -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("devices") / "run"
    result = CliRunner().invoke(main, ["train", str(TINY), "--out", str(out), "--steps", "3", "--no-samples"])
    assert result.exit_code == 0, result.output
    return out


def test_robustness_reports_quality_per_severity_and_plots(tiny_run, tmp_path):
    plot = tmp_path / "robustness.png"
    result = CliRunner().invoke(main, ["robustness", str(tiny_run), "--sweep", "variability=0,0.2", "--n", "20",
                                       "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    rows = report["sweeps"]["variability"]
    assert [r["value"] for r in rows] == [0, 0.2] and report["n_samples"] == 20
    assert rows[0]["quality"] == report["ideal"]  # no spread on ideal devices: the ideal circuit's samples
    assert rows[1]["quality"]["frechet"] != rows[0]["quality"]["frechet"]
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("sweep, fragment", [("variability", "KEY=v1"), ("colour=1,2", "not a devices key"),
                                             ("bits=0,4", "--sweep bits=0")])
def test_robustness_refuses_a_bad_sweep_with_one_line(tiny_run, tmp_path, sweep, fragment):
    plot = tmp_path / "r.png"
    result = CliRunner().invoke(main, ["robustness", str(tiny_run), "--sweep", sweep, "--n", "20", "--plot", str(plot)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not plot.exists()


def test_numpy_says_it_does_not_model_wire_resistance(tiny):
    from analogep.errors import AnalogepWarning

    spec, model, _ = tiny
    with pytest.warns(AnalogepWarning, match="does not model wire resistance"):
        NumpyBackend.from_spec(_devices(spec, wire_resistance=1.0), model)
