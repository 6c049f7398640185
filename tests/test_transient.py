"""The circuit relaxing in time (spice/transient.py), with real ngspice on the tiny circuit:
the transient ends where `.op` does, its tail decays with the linearised time constant
C / (g0 lambda_min), and `compile --transient` writes decks that run as they are."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analogep.spice.transient import (
    run_transient,
    settling_time,
    start_state,
    tail_time_constant,
)
from analogep.cli.app import main
from analogep.config import load_spec
from analogep.model.factory import build_energy

ROOT = Path(__file__).resolve().parents[1]
TINY = (ROOT / "examples" / "tiny.yaml").read_text()


def _ngspice_print(deck: Path) -> dict[str, float]:
    run = subprocess.run(["ngspice", "-b", deck.name], capture_output=True, text=True, cwd=deck.parent, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.findall(r"^(\S+) = (\S+)$", run.stdout, re.MULTILINE)
    assert found, run.stdout[-2000:]
    return {k.lower().removesuffix("[last]"): float(v) for k, v in found}


def test_settling_and_tail_of_a_known_waveform():
    """Two modes, tau 1 and 0.1: the tail decays with the slow one; settling to 1e-3 of a
    unit start is at ln(1000) tau."""
    t = np.linspace(0, 30, 3001)
    d = np.exp(-t) + 0.5 * np.exp(-t / 0.1)
    assert tail_time_constant(t, d) == pytest.approx(1.0, rel=1e-3)
    assert settling_time(t, d, 1e-3) == pytest.approx(np.log(1000), rel=1e-3)
    assert settling_time(t, d, 10.0) == 0.0
    assert settling_time(t[:100], d[:100], 1e-6) == float("inf")


@pytest.mark.spice
def test_compiled_transient_decks_end_where_op_does(tmp_path):
    """compile --transient: each <phase>_tran.cir runs with ngspice -b (no .nodeset) and its
    final node voltages equal the .op deck's to 1e-6 relative (full scale)."""
    cfg = tmp_path / "tinyC.yaml"
    cfg.write_text(TINY + "\ncircuit:\n  capacitance: 1.0e-12\n")
    out = tmp_path / "decks"
    res = CliRunner().invoke(main, ["compile", str(cfg), "--transient", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for phase in ("free", "nudge_plus", "nudge_minus", "generate"):
        text = (out / f"{phase}_tran.cir").read_text()
        assert "\n.nodeset" not in text and ".ic v(" in text and ".tran " in text
        op = _ngspice_print(out / f"{phase}.cir")
        tran = _ngspice_print(out / f"{phase}_tran.cir")
        keys = [k for k in op if k.startswith(("v(", "i("))]
        assert keys and all(k in tran for k in keys)
        volts = [k for k in keys if k.startswith("v(")]
        scale = max(abs(op[k]) for k in volts)
        worst = max(abs(tran[k] - op[k]) for k in volts) / scale
        assert worst < 1e-6, f"{phase}: transient end differs from .op by {worst:.2e} of full scale"


@pytest.mark.spice
def test_transient_tail_decays_with_the_linearised_time_constant():
    """Three free-phase points of the tiny circuit: the waveform's tail time constant is
    within 25% of C / (g0 lambda_min) at the equilibrium, and the end state is numpy's
    equilibrium (which .op reproduces, test_spice_circuit.py) to 1e-6 relative."""
    from analogep.api import DECK_RELAX
    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.data import load_dataset
    from analogep.objectives.factory import build_objective

    spec = load_spec(ROOT / "examples" / "tiny.yaml").replace(circuit={"capacitance": 1e-12})
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    params = {k: v.astype(np.float64) for k, v in build_energy(spec.model).init_params(np.random.default_rng(0)).items()}
    batch = build_objective(spec).batch(load_dataset(dtype=np.float64), 3, np.random.default_rng(5))
    numpy = NumpyBackend(model, spec.gradep, DECK_RELAX)
    numpy.program(params)
    for i in range(3):
        anchors = {"xt": batch.x_t[i : i + 1]}
        eq = numpy.equilibrium(anchors["xt"], None, None).state
        tr = run_transient(spec, model, params, "free", anchors, start_state("free", anchors, None, model.sizes), eq)
        assert tr.tail_tau == pytest.approx(tr.predicted_tau, rel=0.25)
        assert tr.predicted_tau == pytest.approx(spec.circuit.capacitance / spec.circuit.g0 / tr.lambda_min)
        end, ref = np.concatenate(tr.end, axis=1), np.concatenate(eq, axis=1)
        assert np.max(np.abs(end - ref)) < 1e-6 * np.max(np.abs(ref))
        assert 0 < tr.settling_time(1e-3) < tr.t[-1]


def test_compile_transient_without_capacitance_is_one_line_and_writes_nothing(tmp_path):
    res = CliRunner().invoke(main, ["compile", str(ROOT / "examples" / "tiny.yaml"), "--transient", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == ["error: compile --transient: circuit.capacitance is 0; set it > 0 (e.g. 1e-12 F) in the config"]
    assert not (tmp_path / "d").exists()
