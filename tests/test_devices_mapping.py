"""How weights are put on the devices (devices/crossbar.py, devices/faults.py): scaling each
coupling's largest |W| to a fraction of the window, realised as a read gain; the March test
that finds stuck devices; fault-aware pair mapping around them. Fast: numpy only."""

from __future__ import annotations

import json
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


# --- write models: verified writes, pulses, set-only PCM, drift ------------------------------------


def test_a_verified_write_cancels_the_device_gain_which_spreads_the_pulse_step_instead(tiny):
    _, _, params = tiny
    plain = _devices(tiny, variability=0.3, scale_fraction=0.6)
    verified = _devices(tiny, variability=0.3, scale_fraction=0.6, verified_writes=True)
    rp, rv = plain.program(params), verified.program(params)
    level = verified.step / verified.unit("W0")
    assert np.max(np.abs(rv.weight("W0") - params["W0"])) <= 0.5 * level + 1e-12
    assert np.max(np.abs(rp.weight("W0") - params["W0"])) > 20 * level  # d scales the whole device
    before = verified.state["g/W0/0/plus"].copy()
    verified.apply_pulses("W0", "plus", np.full(params["W0"].shape, 3))
    moved = (verified.state["g/W0/0/plus"] - before) / verified.step
    free = verified.state["level/W0/plus"] < verified.d.levels - 1
    assert np.allclose(moved[free], 3 * verified.frozen["gain/W0/0/plus"][free])


def test_apply_pulses_moves_whole_levels_and_counts_them(tiny):
    _, _, params = tiny
    d = _devices(tiny, scale_fraction=0.6)
    d.program(params)
    start, total = d.state["g/W1/0/minus"].copy(), d.total_pulses
    pulses = np.zeros(params["W1"].shape)
    pulses[0, :4] = [2, -1, 5, 0]
    level = d.state["level/W1/minus"][0, :4].copy()
    n = d.apply_pulses("W1", "minus", pulses)
    expect = np.clip(level + [2, -1, 5, 0], 0, d.d.levels - 1) - level
    assert np.allclose((d.state["g/W1/0/minus"] - start)[0, :4], expect * d.step)
    assert n == int(np.abs(expect).sum()) and d.total_pulses == total + n
    with pytest.raises(ValueError, match="shape"):
        d.apply_pulses("W1", "minus", np.zeros(3))


def test_set_only_devices_only_rise_between_refreshes_and_follow_their_target(tiny):
    _, _, params = tiny
    d = _devices(tiny, scale_fraction=0.6, set_only=True, bits=8)
    d.program(params)
    rng = np.random.default_rng(0)
    p = dict(params)
    for _ in range(120):  # a random walk of small updates, both signs
        before = {s: d.state[f"g/W0/0/{s}"].copy() for s in ("plus", "minus")}
        refreshed = getattr(d, "refreshes", 0)
        p = {k: v + 0.01 * np.max(np.abs(params[k])) * rng.standard_normal(v.shape) for k, v in p.items()}
        real = d.program(p)
        if getattr(d, "refreshes", 0) == refreshed:
            assert all(np.all(d.state[f"g/W0/0/{s}"] >= before[s]) for s in ("plus", "minus"))
    level = d.step / d.unit("W0")
    assert getattr(d, "refreshes", 0) > 0
    assert np.max(np.abs(real.weight("W0") - np.clip(p["W0"], -d.span / d.unit("W0"), None))) <= 2.5 * level
    with pytest.raises(ValueError, match="set_only"):
        d.apply_pulses("W0", "plus", -np.ones(params["W0"].shape))


def test_drift_shrinks_the_weights_and_global_compensation_restores_their_scale(tiny):
    spec, model, params = tiny
    keys = dict(EXACT, scale_fraction=0.6, drift_nu=0.05, drift_nu_std=0.02)
    year = 365 * 86400.0
    fresh = Devices(spec.replace(devices=keys), model).program(params).weight("W0")
    assert np.array_equal(fresh, Devices(spec.replace(devices={**keys, "drift_nu": 0.0, "drift_nu_std": 0.0}),
                                         model).program(params).weight("W0"))
    raw = Devices(spec.replace(devices={**keys, "time_since_programming": year, "drift_compensation": False}), model)
    comp = Devices(spec.replace(devices={**keys, "time_since_programming": year}), model)
    w_raw, w_comp = raw.program(params).weight("W0"), comp.program(params).weight("W0")
    shrink = ((year + 20) / 20) ** -0.05  # about 0.49
    ratio = np.sum(np.abs(w_raw)) / np.sum(np.abs(fresh))
    assert abs(ratio - shrink) < 0.1
    assert abs(np.sum(np.abs(w_comp)) / np.sum(np.abs(fresh)) - 1) < 0.05
    assert np.max(np.abs(w_comp - fresh)) > 0  # the spread of nu is not compensated


@pytest.mark.parametrize("value", ["-5", "nan"])
def test_a_negative_time_since_programming_is_one_line_exit_2(tmp_path, value):
    from click.testing import CliRunner

    from analogep.cli.app import main

    result = CliRunner().invoke(main, ["evaluate", str(TINY), "--n", "10", "--time-since-programming", value])
    assert result.exit_code == 2 and "--time-since-programming" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_drift_values_are_config_errors_naming_the_key(tiny):
    spec, _, _ = tiny
    for key in ("drift_nu", "time_since_programming"):
        with pytest.raises(ConfigError, match=key):
            spec.replace(devices={"preset": "pcm", key: -0.1})


# --- presets, hardware-aware training --------------------------------------------------------------


def test_presets_combine_and_build_on_each_other(tiny):
    from analogep.config import with_devices

    spec, _, _ = tiny
    both = with_devices(spec, "rram+periphery").devices
    rram = with_devices(spec, "rram").devices
    assert both.preset == "rram+periphery" and (both.adc_bits, both.dac_bits) == (9, 7)
    assert (both.variability, both.stuck_gmax, both.scale_fraction) == (rram.variability, rram.stuck_gmax, 0.6)
    stress = with_devices(spec, "rram-stress").devices
    assert (stress.stuck_gmin, stress.stuck_gmax) == (0.0175, 0.0904) and stress.bits == rram.bits
    assert (rram.stuck_gmin, rram.stuck_gmax) == (0.01, 0.01)
    pcm = with_devices(spec, "pcm").devices
    assert pcm.set_only and pcm.drift_nu > 0 and pcm.verified_writes
    with pytest.raises(ConfigError, match="rram\\+nonesuch"):
        spec.replace(devices={"preset": "rram+nonesuch"})


def test_soft_bounds_steps_shrink_toward_the_edge_they_approach(tiny):
    _, _, params = tiny
    d = _devices(tiny, step_model="soft_bounds", up_down=0.2)
    d.program({k: 0 * v for k, v in params.items()})  # every device at gmin
    shape = params["W0"].shape
    g0 = d.state["g/W0/0/plus"].copy()
    d.apply_pulses("W0", "plus", np.ones(shape))
    up_at_gmin = (d.state["g/W0/0/plus"] - g0) / d.step
    assert np.allclose(up_at_gmin, 2.0 * 1.2)  # soft bounds: 2x at gmin; asymmetry: x 1.2 up
    d.apply_pulses("W0", "plus", np.full(shape, 600))
    g1 = d.state["g/W0/0/plus"].copy()
    d.apply_pulses("W0", "plus", -np.ones(shape))
    down = (g1 - d.state["g/W0/0/plus"]) / d.step
    x = g1 / d.span
    assert np.allclose(down, 2.0 * x * 0.8)


def test_hardware_aware_training_sees_perturbed_weights_and_is_reproducible(tiny, tmp_path):
    from analogep import api

    spec, _, _ = tiny
    spec = spec.replace(train={"steps": 2, "checkpoint_every": 2, "batch": 32})
    losses = {}
    for name, keys in (("clean", {}), ("hw1", {"weight_noise": 0.05, "weight_drop": 0.02}),
                       ("hw2", {"weight_noise": 0.05, "weight_drop": 0.02})):
        api.train(spec.replace(train=keys), tmp_path / name)
        losses[name] = [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert losses["hw1"] == losses["hw2"] and losses["hw1"] != losses["clean"]


def test_refresh_all_rewrites_set_only_pairs_without_their_common_conductance(tiny):
    _, _, params = tiny
    d = _devices(tiny, scale_fraction=0.6, set_only=True, bits=8)
    d.program(params)
    rng = np.random.default_rng(1)
    p = dict(params)
    for _ in range(40):
        p = {k: v + 0.01 * np.max(np.abs(params[k])) * rng.standard_normal(v.shape) for k, v in p.items()}
        d.program(p)
    before = d.realise(p).forward["W0"]
    common = np.mean(np.minimum(before.plus, before.minus) - d.gmin)
    n = d.refresh_all()
    after = d.realise(p).forward["W0"]
    assert n == 4 * sum(np.size(params[k]) for k in d.couplings)
    assert np.mean(np.minimum(after.plus, after.minus) - d.gmin) < 0.2 * common
    level = d.step / d.unit("W0")
    assert np.max(np.abs(d.realise(p).weight("W0") - np.clip(p["W0"], -d.span / d.unit("W0"), None))) <= 0.5 * level + 1e-9


def test_the_decks_realise_the_read_gain_with_a_sense_amplifier_per_column(tiny):
    from analogep.devices.programmed import program
    from analogep.spice.compiler import crossbar_sections

    spec, model, params = tiny
    d = _devices(tiny, scale_fraction=0.6)
    drawn = program(spec.replace(devices={**EXACT, "scale_fraction": 0.6}), model, params, d)
    sections, _ = crossbar_sections(drawn.spec, model, drawn.params, drawn.copies)
    elements = [e for _, els in sections for e in els]
    amps = [e for e in elements if e.name.startswith("FW0f")]
    assert len(amps) == model.sizes[1] and all(e.nodes[1].endswith("_s") for e in amps)
    assert float(amps[0].value.split()[-1]) == pytest.approx(d.read_gain("W0"), rel=1e-6)
    devices_f = [e for e in elements if e.name.startswith("RW0p_")]
    assert devices_f and all(e.nodes[1].endswith("_W0fs") for e in devices_f)  # columns end on the amplifiers


def test_an_in_situ_run_logs_the_pairs_it_cannot_write(tiny, tmp_path):
    from analogep import api

    spec, _, _ = tiny
    spec = spec.replace(train={"steps": 1, "checkpoint_every": 1, "batch": 16},
                        devices={"preset": "rram-stress", "wire_resistance": 0.0})
    result = api.train(spec, tmp_path / "run")
    assert result.records[-1]["both_stuck"] > 0
