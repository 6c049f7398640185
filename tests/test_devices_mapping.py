"""How weights are put on the devices (devices/crossbar.py, devices/faults.py): scaling each
coupling's largest |W| to a fraction of the window, realised as a read gain; the March test
that finds stuck devices; fault-aware pair mapping around them. Fast: numpy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analogep.config import load_spec
from analogep.config.schema import ConfigError
from analogep.devices import faults
from analogep.devices.crossbar import Devices
from analogep.model.factory import build_energy

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"
EXACT = {"preset": "ideal", "gmin": 1e-5, "gmax": 1e-4, "w_max": 1.0, "bits": 10}


@pytest.fixture(scope="module")
def tiny():
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = {k: np.asarray(v, np.float64) for k, v in model.init_params(np.random.default_rng(0)).items()}
    return spec, model, params


def _devices(tiny, **keys) -> Devices:
    spec, model, _ = tiny
    return Devices(spec.replace(devices={**EXACT, **keys}), model)


def test_scaling_maps_each_couplings_largest_weight_to_the_fraction_and_the_read_gain_undoes_it(tiny):
    _, _, params = tiny
    d = _devices(tiny, scale_fraction=0.6)
    real = d.program(params)
    for name in d.couplings:
        g = real.forward[name]
        top = np.max(np.abs(g.plus - g.minus))
        assert top == pytest.approx(0.6 * d.span, rel=2e-3)  # within a level of 0.6 of the window
        assert g.gain == pytest.approx(d.g0 / d.unit(name)) and g.gain != 1.0
        level = d.step / d.unit(name)  # one level in weight units
        assert np.max(np.abs(real.weight(name) - params[name])) <= 0.5 * level + 1e-12
    # without scaling the same weights use about a third of the window: coarser in weight units
    plain = _devices(tiny)
    assert all(plain.read_gain(n) == 1.0 for n in plain.couplings)
    assert all(d.step / d.unit(n) < plain.step / plain.unit(n) for n in d.couplings)


def test_the_scale_is_fixed_at_the_first_write_and_kept_in_the_state(tiny):
    _, _, params = tiny
    d = _devices(tiny, scale_fraction=0.6)
    d.program(params)
    gains = {n: d.read_gain(n) for n in d.couplings}
    d.program({k: 2 * v for k, v in params.items()})  # larger weights later: the gain does not move
    assert {n: d.read_gain(n) for n in d.couplings} == gains
    again = _devices(tiny, scale_fraction=0.6)
    again.load_state_dict(*d.state_dict(), where="test")
    assert {n: again.read_gain(n) for n in again.couplings} == gains


def test_march_test_finds_exactly_the_stuck_devices(tiny):
    _, _, params = tiny
    d = _devices(tiny, stuck_gmin=0.05, stuck_gmax=0.1, fault_aware=True)
    d.program(params)
    for key in (f"{n}/0/{s}" for n in d.couplings for s in ("plus", "minus")):
        stuck = d.frozen[f"stuck/{key}"]
        assert np.array_equal(d.state[f"fault/{key}"], stuck)
        assert (stuck == faults.AT_GMAX).any() and (stuck == faults.AT_GMIN).any()


def test_fault_aware_mapping_recovers_the_weights_a_stuck_on_device_can_carry(tiny):
    _, _, params = tiny
    blind = _devices(tiny, stuck_gmax=0.1, scale_fraction=0.6)
    aware = _devices(tiny, stuck_gmax=0.1, scale_fraction=0.6, fault_aware=True)
    rb, ra = blind.program(params), aware.program(params)
    for name in aware.couplings:
        plus, minus = aware.state[f"fault/{name}/0/plus"], aware.state[f"fault/{name}/0/minus"]
        one = (plus != faults.FREE) ^ (minus != faults.FREE)
        # plus stuck at gmax: G+ - G- = gmax - G- covers weights >= 0 (minus stuck: <= 0)
        fits = one & np.where(plus != faults.FREE, params[name] >= 0, params[name] <= 0)
        level = aware.step / aware.unit(name)
        err_a = np.abs(ra.weight(name) - params[name])
        err_b = np.abs(rb.weight(name) - params[name])
        assert fits.sum() > 10 and np.max(err_a[fits]) <= 0.5 * level + 1e-12
        assert np.min(err_b[fits]) > 0.6 * np.max(np.abs(params[name]))  # blind: off by >= (1/0.6 - 1) max|W|
        assert aware.both_stuck[name] == faults.both_stuck(plus, minus) == int(np.sum((plus != 0) & (minus != 0)))


def test_pair_targets_put_the_weight_on_the_healthy_device():
    g = np.array([0.3, -0.3, 0.3, -0.3, 0.3])
    plus = np.array([0, 0, 2, 1, 2], np.int8)
    minus = np.array([0, 2, 0, 0, 2], np.int8)
    tp, tm = faults.pair_targets(g, plus, minus, 1.0)
    assert np.allclose(tp, [0.3, 0.7, 1.0, 0.0, 1.0]) and np.allclose(tm, [0.0, 1.0, 0.7, 0.3, 1.0])
    assert np.allclose((tp - tm)[:4], g[:4])


@pytest.mark.parametrize("value", [0.0, 1.5, -0.2])
def test_a_scale_fraction_outside_0_1_is_one_config_error_naming_it(tiny, value):
    spec, _, _ = tiny
    with pytest.raises(ConfigError, match="scale_fraction"):
        spec.replace(devices={"preset": "rram", "scale_fraction": value})
