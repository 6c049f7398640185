"""Learning on the substrate (issue 19): train.update: substrate writes EP's update with the
devices' own coincident pulses (training/substrate.py). The pulse statistics, the held
difference against two pulse trains, the bit-exact resume with the pulse stream, bad input,
and the digital default left as it was."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analogep import api
from analogep.cli.app import main
from analogep.config import ConfigError, load_spec, with_devices
from analogep.config.load import dump_spec
from analogep.config.spec import Spec
from analogep.devices.crossbar import Devices
from analogep.model.factory import build_energy
from analogep.training.substrate import SubstrateUpdate, new_counts

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"
FINITE = {"preset": "ideal", "bits": 8, "w_max": 1.0}  # ideal devices with finite levels


@pytest.fixture(scope="module")
def tiny():
    return load_spec(TINY)


def _substrate(spec, **keys):
    train = {"update": "substrate", "steps": 4, "batch": 16, "checkpoint_every": 2,
             "substrate": {"group_size": 8, "lr": 0.03, **keys}}
    return spec.replace(train=train, devices=FINITE)


def test_the_digital_default_writes_no_new_key(tiny):
    assert tiny.train.update == "digital"
    text = dump_spec(tiny)
    assert "\n  update:" not in text and "substrate" not in text
    assert "update: substrate" in dump_spec(_substrate(tiny))


@pytest.mark.parametrize("keys, fragment", [
    ({"train": {"update": "substrate", "substrate": {"bl": 0}}, "devices": FINITE}, "train.substrate.bl"),
    ({"train": {"update": "substrate", "batch": 16, "substrate": {"group_size": 32}}, "devices": FINITE},
     "train.substrate.group_size: 32 is above train.batch 16"),
])
def test_bad_substrate_config_is_one_line(tiny, keys, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        tiny.replace(**keys)


@pytest.mark.parametrize("keys, fragment", [
    ({"train": {"update": "substrate"}}, "devices section has none"),
    ({"train": {"update": "substrate"}, "devices": {"preset": "ideal", "variability": 0.1}}, "needs a pulse step"),
])
def test_substrate_without_a_pulse_step_is_refused_where_the_devices_are_final(tiny, tmp_path, keys, fragment):
    """A config may name its devices on the command line (--devices): the devices are
    judged when training or the accounting starts, before anything is written."""
    spec = tiny.replace(**keys)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        api.train(spec, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        api.energy(spec, build_energy(spec.model).init_params(np.random.default_rng(0)), measure_cpu=False)


def test_devices_flag_supplies_the_pulse_step(tmp_path):
    cfg = tmp_path / "sub.yaml"
    cfg.write_text("name: tiny\nmodel: {sizes: [64, 16, 16]}\n"
                   "train: {update: substrate, steps: 1, batch: 16, substrate: {group_size: 8}}\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(cfg), "--devices", "pcm", "--out", str(out), "--no-samples"])
    assert result.exit_code == 0, result.output
    assert (out / "checkpoint.npz").is_file()


def test_bad_substrate_input_exits_2_and_writes_nothing(tmp_path):
    for body, fragment in [
        ("train: {update: substrate, substrate: {bl: 0}}\ndevices: {bits: 8}\n", "train.substrate.bl"),
        ("train: {update: substrate, batch: 8, substrate: {group_size: 9}}\ndevices: {bits: 8}\n", "group_size"),
        ("train: {update: substrate}\n", "train.update: substrate"),
    ]:
        cfg = tmp_path / "bad.yaml"
        cfg.write_text("name: tiny\nmodel: {sizes: [64, 16, 16]}\n" + body)
        out = tmp_path / "run"
        result = CliRunner().invoke(main, ["train", str(cfg), "--out", str(out), "--steps", "2"])
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
        assert not out.exists()


def _update(tiny, **keys) -> SubstrateUpdate:
    spec = _substrate(tiny, **keys)
    model = build_energy(spec.model)
    return SubstrateUpdate(spec, model, Devices(spec, model))


def test_coincidences_have_the_expected_mean(tiny):
    """E[pulses] = BL p_x p_d per device, signed by x_i d_j: the average written update is
    eta x d^T (no probability clipped here)."""
    up = _update(tiny, bl=31)
    rng = np.random.default_rng(1)
    x, d = rng.uniform(-1, 1, (1, 5)), rng.uniform(-1, 1, (1, 3))
    dw = up._dw(up.couplings[0][0])
    eta = np.array([0.2 * dw])  # probabilities well below 1
    counts = new_counts()
    total = np.zeros((3, 5))
    n = 4000
    for _ in range(n):
        u, dn, expected = up._coincide(x, d, eta, counts, dw)
        total += (u - dn) * dw
    assert counts["p_sat"] == 0
    np.testing.assert_allclose(expected, eta[0] * np.outer(d[0], x[0]), rtol=1e-12)
    mean = total / n
    assert np.max(np.abs(mean - expected)) < 5 * np.sqrt(np.max(np.abs(expected)) * dw / n) + 1e-12


def test_a_pulse_moves_one_level_and_keeps_the_pair_canonical(tiny):
    """Up then down on the device that carries the weight's sign (Devices.apply_pulses);
    a weight within two levels of zero on the minus side stops at zero."""
    up = _update(tiny)
    model = build_energy(up.spec.model)
    up.devices.program(model.init_params(np.random.default_rng(0)))
    name = up.couplings[0][0]
    n0 = up._levels(name).copy()
    ones = np.ones_like(n0)
    up._pulse(name, 3 * ones, ones)  # net +2 levels on every weight
    st = up.devices.state
    far = (n0 >= 0) | (n0 <= -2)
    np.testing.assert_array_equal(up._levels(name)[far], np.clip(n0 + 2, -up.top, up.top)[far])
    assert np.all((st[f"level/{name}/plus"] == 0) | (st[f"level/{name}/minus"] == 0))


def test_held_difference_beats_two_pulse_trains(tiny):
    """The SNR problem: two independent trains write the difference of two products that
    are ~1/(2 beta) larger than it; holding one phase and writing the difference follows
    the EP gradient."""
    cos = {}
    for mode in ("held", "two_trains"):
        spec = _substrate(tiny, difference=mode).replace(train={"steps": 1, "batch": 32, "substrate": {"group_size": 32}})
        cos[mode] = _first_cos(spec)
    assert cos["held"] > 0.5 and cos["two_trains"] < 0.5 * cos["held"], cos


def _first_cos(spec: Spec) -> float:
    with tempfile.TemporaryDirectory() as out:
        return api.train(spec, out).records[0]["update_cos"]


def test_substrate_training_resumes_bit_exactly_with_its_pulse_stream(tiny, tmp_path):
    spec = _substrate(tiny)
    whole = api.train(spec, tmp_path / "whole")
    api.train(spec.replace(train={"steps": 2}), tmp_path / "half")
    resumed = api.train(spec, tmp_path / "half", resume=True)
    for k in whole.params:
        assert np.array_equal(whole.params[k], resumed.params[k])
    a, b = np.load(tmp_path / "whole" / "checkpoint.npz"), np.load(tmp_path / "half" / "checkpoint.npz")
    device_keys = [k for k in a.files if k.startswith("device/")]
    assert device_keys and all(np.array_equal(a[k], b[k]) for k in device_keys)
    assert [r["loss"] for r in whole.records][2:] == [r["loss"] for r in resumed.records][2:]
    assert all(r["pulses"] > 0 and -1 <= r["update_cos"] <= 1 for r in whole.records)


def test_substrate_runs_on_a_preset(tiny, tmp_path):
    spec = with_devices(_substrate(tiny), "rram").replace(train={"steps": 2, "update": "substrate"})
    result = api.train(spec, tmp_path / "rram")
    assert result.step == 2 and all(np.isfinite(r["loss"]) for r in result.records)


def test_energy_prices_the_substrate_update(tiny):
    spec = _substrate(tiny).replace(train={"batch": 64})
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    report = api.energy(spec, params, points=2, samples=10, sample_points=1, measure_cpu=False)
    a = report.training["analog"]
    assert "device pulses (coincidences)" in a.breakdown and "pulse generation (line charging)" in a.breakdown
    assert not {"ADC conversions", "digital update (accumulate, Adam)", "programming (write pulses)"} & set(a.breakdown)
    sub = a.notes["substrate"]
    assert sub["device_pulses"] > 0 and sub["coincidences_per_device_point"] > 0
    assert np.isclose(a.breakdown["device pulses (coincidences)"], sub["device_pulses"] * spec.physics.write_energy)
    row = a.notes["crossover"]["gpu_backprop"]
    e10, e100 = row["write_energy_10x"], row["write_energy_100x"]
    assert e10 is None or e100 is None or e10 > e100


@pytest.mark.spice
def test_spice_equilibria_write_the_same_pulses_as_numpy(tiny, tmp_path):
    """--backend spice: the equilibria from ngspice, the writes from the device model. With
    numpy's relaxation as tight as ngspice's tolerances, both write the same pulses on every
    device (the held difference is O(beta): a loose relaxation moves a few probabilities)."""
    spec = _substrate(tiny).replace(train={"steps": 1, "batch": 4, "substrate": {"group_size": 4}},
                                    relax={"tol": 1e-9, "free_steps": 1000, "nudge_steps": 1000})
    runs = {b: api.train(spec.replace(train={"backend": b}), tmp_path / b) for b in ("numpy", "spice")}
    assert abs(runs["numpy"].records[0]["loss"] - runs["spice"].records[0]["loss"]) < 1e-5
    a, b = np.load(tmp_path / "numpy" / "checkpoint.npz"), np.load(tmp_path / "spice" / "checkpoint.npz")
    levels = [k for k in a.files if k.startswith("device/state/level/")]
    assert levels and all(np.array_equal(a[k], b[k]) for k in levels)
    assert runs["spice"].records[0]["backend"] == "spice" and runs["spice"].records[0]["pulses"] > 0


@pytest.mark.parametrize("keys", [{}, {"devices": {**FINITE, "scale_fraction": 0.5}}, {"difference": "two_trains"}],
                         ids=["held", "scale_fraction", "two_trains"])
def test_the_energy_counts_the_coincidences_a_training_step_fires(tiny, tmp_path, keys):
    """The accounting's expected coincidences per device per point are what training logs at
    its first step from the same weights, batch (api.energy draws it with seed 0, training
    with train.seed 0) and pulse stream, within 4 standard deviations of the realised count
    over the pulse draws (computed from their probabilities). The groups are written in
    sequence and move the weights within the step: priced at the initial weights alone, the
    accounting counted 0.54x what tiny's first step fires."""
    devices = keys.get("devices", FINITE)
    spec = _substrate(tiny, **{k: v for k, v in keys.items() if k != "devices"}).replace(
        train={"steps": 1, "batch": 64}, devices=devices)
    assert spec.train.seed == 0
    params = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
    logged = api.train(spec, tmp_path / "run").records[0]["coincidences_per_device_point"]
    report = api.energy(spec, params, points=2, samples=10, sample_points=1, measure_cpu=False)
    sub = report.training["analog"].notes["substrate"]
    predicted, sd = sub["coincidences_per_device_point"], sub["coincidences_sd_per_device_point"]
    assert 0 < sd < 0.05 * predicted
    assert abs(logged - predicted) < 4 * sd, (logged, predicted, sd)


def test_the_coincidence_spread_is_that_of_the_pulse_draws(tiny):
    """The standard deviation the accounting gives its count (the tolerance above): per slot
    R fired rows and C fired columns coincide R C times; its mean and spread over repeated
    draws of the same probabilities match the predicted ones."""
    up = _update(tiny)
    rng = np.random.default_rng(3)
    x, d = 0.01 * rng.uniform(-1, 1, (8, 64)), rng.uniform(-1, 1, (8, 16))
    eta = np.full(8, 0.05)
    realised = []
    for _ in range(2000):
        counts = new_counts()
        up._coincide(x, d, eta, counts, 1 / 255)
        realised.append(counts["coincidence_slots"])
    assert counts["p_sat"] == 0
    mean, sd = counts["expected_coincidences"], np.sqrt(counts["coincidence_variance"])
    assert abs(np.mean(realised) - mean) < 4 * sd / np.sqrt(len(realised))
    assert np.std(realised) == pytest.approx(sd, rel=0.1)  # the estimate's own spread: 1.6%
