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
from analogep.model.registry import build_energy

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
