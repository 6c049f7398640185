"""The SPICE backend on non-ideal devices, with real ngspice on the tiny config: it realises
what the numpy backend realises (the same seeded devices), so `check --devices` agrees as
tightly as the ideal check; line resistance is reported, not judged; `compile --devices`
writes the realised circuit."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analogep.api import check_circuit, compile_circuit
from analogep.cli import main
from analogep.config import load_spec
from analogep.evaluation.crosscheck import TOLERANCE
from analogep.model.factory import build_energy

pytestmark = pytest.mark.spice
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def _tiny(**devices):
    spec = load_spec(TINY)
    if devices:
        spec = spec.replace(devices=devices)
    return spec, build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))


@pytest.mark.parametrize("copies", ["bidirectional", "mismatched"])
def test_check_on_rram_devices_agrees_as_tightly_as_the_ideal_check(copies):
    """Variability, faults, levels, driver gain and offset: ngspice and numpy solve the same
    realised circuit (one device read both ways, or two copies: no energy, a KCL fixed point)."""
    spec, params = _tiny(preset="rram", wire_resistance=0.0, copies=copies)
    report, _, _ = check_circuit(spec, params, n=2, workers=1)
    assert report.passed and report.devices == "rram" and report.wire_resistance == 0.0
    assert report.max_rel_error <= TOLERANCE and report.grad_cosine >= 1 - TOLERANCE, report


def test_check_with_line_resistance_reports_the_difference_and_passes(tmp_path):
    spec, params = _tiny(preset="rram", copies="bidirectional")  # the preset's 1 ohm per segment
    assert spec.devices.wire_resistance == 1.0
    result = CliRunner().invoke(main, ["check", str(TINY), "--devices", "rram", "--n", "1", "--workers", "1", "--json",
                                       "--plot", str(tmp_path / "check.png")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["wire_resistance"] == 1.0 and report["passed"]
    assert report["max_abs_error"] > 1e-4  # the IR drop numpy does not model


def test_compile_with_devices_writes_the_realised_circuit(tmp_path):
    """Decks of the realised circuit: its device conductances (the forward and transposed
    copies differ when mismatched), the drivers.lib cells with per-neuron gain and offset,
    and the deck solves (with ngspice -b) to numpy's equilibrium of the same circuit."""
    spec, params = _tiny(preset="rram", wire_resistance=0.0, copies="mismatched")
    files, clipped = compile_circuit(spec, params, "tiny initial weights")
    assert {"drivers.lib", "analogep.lib", "free.cir"} <= set(files)
    free = files["free.cir"]
    assert ".include drivers.lib" in free and "hidden_soft_silu_drv" in free and " gain=" in free
    assert "its own device draw" in free
    g = {m[0]: float(m[1]) for m in re.findall(r"^(RW1pT?_3_2) \S+ \S+ (\S+)$", free, re.MULTILINE)}
    assert g["RW1p_3_2"] != g["RW1pT_3_2"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    run = subprocess.run(["ngspice", "-b", "free.cir"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    got = {k.lower(): float(v) for k, v in re.findall(r"^(\S+) = (\S+)$", run.stdout, re.MULTILINE)}
    ns = dict(re.findall(r"v\((\w+)\)=(\S+)", free[free.index(".nodeset"):]))
    for node, value in ns.items():  # the .nodeset is numpy's equilibrium of the realised circuit
        assert got[f"v({node})"] == pytest.approx(float(value), rel=1e-5, abs=1e-6), node


def test_in_situ_step_on_spice_is_the_numpy_step_on_the_same_devices():
    """train --backend spice --devices: the SPICE step programs the devices (write rule,
    pulses), measures through the same chain (read noise: the same seeded stream) and
    gives the numpy backend's update on the same devices."""
    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.backends.spice_backend import SpiceBackend
    from analogep.config import TrainSpec
    from analogep.data import load_dataset
    from analogep.ep.step import gradep_step
    from analogep.model.tensors import params_dot, params_norm
    from analogep.objectives.flow import FlowMatching, sample_flow_batch

    spec, params = _tiny(preset="rram", wire_resistance=0.0)
    spec = spec.replace(relax={"omega": 1.0, "tol": 1e-10, "free_steps": 3000, "nudge_steps": 3000})
    model = build_energy(spec.model)
    batch = sample_flow_batch(load_dataset(dtype=model.dtype), 4, np.random.default_rng(3), True)
    steps = []
    for backend in (SpiceBackend.from_spec(spec, model, workers=1), NumpyBackend.from_spec(spec, model)):
        try:
            backend.program(params)  # the first write: every device
            moved = {k: v + 0.01 for k, v in params.items()}
            realised = backend.program(moved)  # an update: through the write rule
            assert backend.device_metrics()["pulses"] > 0
            objective = FlowMatching(spec.gradep, True, 4)
            steps.append(gradep_step(model, backend, realised, batch, objective, spec.gradep, TrainSpec(max_residual=1.0)))
        finally:
            backend.close()
    s, n = steps
    assert s.loss == pytest.approx(n.loss, rel=1e-5)
    cos = params_dot(s.grad, n.grad) / (params_norm(s.grad) * params_norm(n.grad))
    assert cos > 1 - 1e-6


def test_sampling_on_spice_with_devices_follows_numpy_on_the_same_devices():
    from analogep import api

    spec, params = _tiny(preset="pcm", wire_resistance=0.0, copies="mismatched", read_noise=0.0)
    spec = spec.replace(relax={"omega": 1.0, "tol": 1e-10, "free_steps": 3000, "nudge_steps": 3000})
    x_spice = api.sample(spec, params, n=4, t1=0.1, dt=0.05, seed=2, backend="spice")
    x_numpy = api.sample(spec, params, n=4, t1=0.1, dt=0.05, seed=2)
    ideal = api.sample(load_spec(TINY), params, n=4, t1=0.1, dt=0.05, seed=2)
    np.testing.assert_allclose(x_spice, x_numpy, atol=1e-5)
    assert np.max(np.abs(x_numpy - ideal)) > 1e-3  # the devices matter


def test_compile_with_line_resistance_writes_the_ladders_and_solves_to_the_reduction(tmp_path):
    """compile with devices.wire_resistance: the decks carry the line segments and say how
    they are drawn; ngspice on the ladders lands on the .nodeset, numpy's equilibrium of
    the wired arrays' effective conductances (devices/wires.py)."""
    spec, params = _tiny(wire_resistance=2.0)
    files, _ = compile_circuit(spec, params, "tiny initial weights")
    free = files["free.cir"]
    assert "Line resistance 2 ohm per segment" in free and re.search(r"^RLW0fr_0_0 x0_p W0fr0_0 2$", free, re.MULTILINE)
    assert "drivers.lib" not in files
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    run = subprocess.run(["ngspice", "-b", "free.cir"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    got = {k.lower(): float(v) for k, v in re.findall(r"^(\S+) = (\S+)$", run.stdout, re.MULTILINE)}
    ns = dict(re.findall(r"v\((\w+)\)=(\S+)", free[free.index(".nodeset"):]))
    assert len(ns) == 96
    for node, value in ns.items():
        assert got[f"v({node})"] == pytest.approx(float(value), rel=1e-5, abs=1e-6), node
