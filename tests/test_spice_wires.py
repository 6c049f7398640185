"""Crossbar line resistance (SPICE only): the ladder topology against an independent nodal
solve, and the IR-drop error it leaves against the numpy model, with real ngspice."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.spice_backend import SpiceBackend
from analogep.spice.compiler import crossbar_sections, ideal_copies
from analogep.devices.crossbar import Devices
from analogep.devices.mapping import Conductances
from analogep.spice.graph import check_graph
from analogep.spice.netlist import Element, Netlist, fmt, render
from analogep.devices.programmed import program
from analogep.devices.wires import effective_pair
from analogep.config import CircuitSpec, GradEPSpec, ModelSpec, Spec, load_spec
from analogep.errors import AnalogepWarning
from analogep.evaluation.gradcheck import REFERENCE_RELAX, as_float64
from analogep.model.families.hopfield import HopfieldEnergy
from analogep.model.factory import build_energy
from analogep.solvers.base import VisibleSpring, free_start
from analogep.solvers.fast import FastSolver

pytestmark = pytest.mark.spice
ROOT = Path(__file__).resolve().parents[1]


def _ladder_currents(g: np.ndarray, u: np.ndarray, r: float) -> np.ndarray:
    """Sense currents of one read by nodal analysis of the documented ladder: rows 2i, 2i+1
    carry +u_i, -u_i through G+ = max(g, 0), G- = max(-g, 0); rows driven at column 0's
    end, columns sensed (0 V) below the last row; one segment R per tap pitch."""
    n_out, n_in = g.shape
    rows, cols = 2 * n_in, n_out
    gp, gm = np.maximum(g, 0), np.maximum(-g, 0)
    idx = {}
    for k in range(rows):
        for c in range(cols):
            idx["r", k, c] = len(idx)
            idx["c", k, c] = len(idx)
    a = np.zeros((len(idx), len(idx)))
    rhs = np.zeros(len(idx))
    y = 1.0 / r

    def link(p, q, cond):  # q None: a fixed potential given by rhs
        a[idx[p], idx[p]] += cond
        if q is not None:
            a[idx[q], idx[q]] += cond
            a[idx[p], idx[q]] -= cond
            a[idx[q], idx[p]] -= cond

    for k in range(rows):
        i, sign = k // 2, (1.0 if k % 2 == 0 else -1.0)
        link(("r", k, 0), None, y)
        rhs[idx["r", k, 0]] += y * sign * u[i]
        for c in range(cols):
            if c:
                link(("r", k, c - 1), ("r", k, c), y)
            dev = (gp if sign > 0 else gm)[c, i]
            link(("r", k, c), ("c", k, c), dev)
            link(("c", k, c), ("c", k + 1, c) if k + 1 < rows else None, y)
    v = np.linalg.solve(a, rhs)
    return np.array([v[idx["c", rows - 1, c]] * y for c in range(cols)])


def test_wired_crossbar_is_the_documented_ladder(tmp_path):
    """Drivers held at fixed voltages, sense lines at 0 V: ngspice's sense currents of the
    wired crossbar sections equal a nodal solve of the ladder (and G u as R -> 0)."""
    spec = Spec(name="wires", model=ModelSpec(sizes=(3, 2, 1), activation="silu", dtype="float64"),
                gradep=GradEPSpec(), circuit=CircuitSpec())
    model = HopfieldEnergy(spec.model)
    rng = np.random.default_rng(1)
    params = {k: rng.uniform(-2, 2, v.shape) for k, v in model.init_params(rng).items()}
    acts = [rng.uniform(-1, 1, n) for n in model.sizes]
    r_wire = 50.0  # large, so the drop is far above ngspice's tolerances
    sections, _ = crossbar_sections(spec, model, params, wire_resistance=r_wire)
    nodes = [[f"x{i}" for i in range(3)], ["h1_0", "h1_1"], ["h2_0"]]
    src = []
    for layer, names in enumerate(nodes):
        for n, a in zip(names, acts[layer]):
            src += [Element(f"V{n}p", (f"{n}_p", "0"), fmt(a)), Element(f"V{n}m", (f"{n}_m", "0"), fmt(-a)),
                    Element(f"V{n}s", (f"{n}_s", "0"), "0")]
    net = Netlist("wired crossbar", [], {}, [("drivers and sense lines", src)] + sections, "* op in .control")
    sense = [f"i(v{n}s)" for names in nodes for n in names]
    net.control = ["set numdgt=12", "op", "print " + " ".join(sense), "quit"]
    text = render(net, include=None)
    check_graph(text, "wires.cir")
    (tmp_path / "wires.cir").write_text(text)
    run = subprocess.run(["ngspice", "-b", "wires.cir"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    got = {k.lower(): float(v) for k, v in re.findall(r"^(\S+) = (\S+)$", run.stdout, re.MULTILINE)}
    g0 = spec.circuit.g0
    w0, w1 = params["W0"] * g0, params["W1"] * g0
    # Forward reads: layer l drives layer l+1's sense lines; transposed: l+1 drives l's.
    expect = {
        "x": _ladder_currents(w0.T, acts[1], r_wire),
        "h1_": _ladder_currents(w0, acts[0], r_wire) + _ladder_currents(w1.T, acts[2], r_wire),
        "h2_": _ladder_currents(w1, acts[1], r_wire),
    }
    for prefix, want in expect.items():
        have = np.array([got[f"i(v{prefix}{i}s)"] for i in range(want.size)])
        np.testing.assert_allclose(have, want, rtol=1e-9, atol=1e-15, err_msg=prefix)
    # And the drop is real: far from the ideal read G u.
    assert np.max(np.abs(expect["x"] - w0.T @ acts[1])) > 1e-3 * np.max(np.abs(w0.T @ acts[1]))
    np.testing.assert_allclose(_ladder_currents(w0, acts[0], 1e-9), w0 @ acts[0], rtol=1e-6)
    # The effective conductances of a wired read (devices/wires.py) give the same currents.
    for w, u in ((w0, acts[0]), (w0.T, acts[1]), (w1, acts[1])):
        plus, minus = effective_pair(np.maximum(w, 0), np.maximum(-w, 0), r_wire)
        np.testing.assert_allclose((plus - minus) @ u, _ladder_currents(w, u, r_wire), rtol=1e-10, atol=1e-16)


def test_wired_sections_count_two_segments_per_tap_and_zero_is_the_plain_crossbar():
    spec = load_spec(ROOT / "examples" / "tiny.yaml")
    model, params = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(0)))
    plain, _ = crossbar_sections(spec, model, params)
    assert crossbar_sections(spec, model, params, wire_resistance=0.0)[0] == plain
    wired, clipped = crossbar_sections(spec, model, params, wire_resistance=2.0)
    assert clipped == {"W0": 0, "W1": 0}
    taps = sum(2 * w.shape[1] * w.shape[0] for w in (params["W0"], params["W1"])) * 2  # 2 rows per input, 2 reads
    segments = [e for _, els in wired for e in els if e.name.startswith("RL")]
    assert len(segments) == 2 * taps and all(e.value == "2" for e in segments)
    devices = sorted(e.name for _, els in wired for e in els if not e.name.startswith("RL"))
    assert devices == sorted(e.name for _, els in plain for e in els)
    with pytest.raises(ValueError, match="wire_resistance"):
        crossbar_sections(spec, model, params, wire_resistance=-1.0)


def test_transposed_copy_can_have_its_own_conductances():
    spec = load_spec(ROOT / "examples" / "tiny.yaml")
    model, params = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(0)))
    copies = ideal_copies(spec, model, params)
    fwd, _ = copies["W1"]
    other = Conductances(fwd.plus * 1.5, fwd.minus * 1.5, 0)
    copies["W1"] = (fwd, other)
    sections, _ = crossbar_sections(spec, model, params, copies)
    by_name = {e.name: e for _, els in sections for e in els}
    j, i = map(int, np.argwhere(fwd.plus > 0)[0])
    assert float(by_name[f"RW1p_{j}_{i}"].value) == pytest.approx(1 / fwd.plus[j, i], rel=1e-11)
    assert float(by_name[f"RW1pT_{j}_{i}"].value) == pytest.approx(1 / (1.5 * fwd.plus[j, i]), rel=1e-11)
    assert any("its own device draw" in title for title, _ in sections)


def test_line_resistance_leaves_an_ir_drop_error_numpy_does_not_model():
    """With real ngspice on the tiny circuit: the free-phase equilibrium of the wired circuit
    departs from the numpy backend's (which has no wires, and says so) by an amount that
    grows with R_wire, and is zero at R_wire = 0; numpy solving the effective conductances
    of the wired arrays (devices/wires.py) lands on ngspice's equilibrium."""
    spec = load_spec(ROOT / "examples" / "tiny.yaml")
    model, params = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(0)))
    x_t = np.random.default_rng(3).standard_normal((2, 64)) * 0.5
    numpy = NumpyBackend(model, spec.gradep, REFERENCE_RELAX)
    numpy.program(params)
    ref = numpy.equilibrium(x_t, None, None).state
    with pytest.warns(AnalogepWarning, match="does not model wire resistance"):
        NumpyBackend.from_spec(spec.replace(devices={"wire_resistance": 1.0}), model)
    errors, exact = [], []
    for r_wire in (0.0, 1.0, 10.0):
        wired = spec.replace(devices={"wire_resistance": r_wire})
        spice = SpiceBackend.from_spec(wired, model, workers=1)
        try:
            spice.program(params)
            got = spice.equilibrium(x_t, None, None)
        finally:
            spice.close()
        errors.append(max(float(np.max(np.abs(a - b))) for a, b in zip(got.state, ref)))
        if r_wire:
            drawn = program(wired, model, params, Devices(wired, model))
            eff = FastSolver(3000, tol=1e-12).relax(drawn.solver, drawn.params, free_start(model, x_t),
                                                    VisibleSpring(spec.gradep.lam, x_t)).state
            exact.append(max(float(np.max(np.abs(a - b))) for a, b in zip(got.state, eff)))
            assert got.residual < 1e-6  # judged against the wired circuit's own KCL
    assert errors[0] < 1e-8
    assert 1e-4 < errors[1] < errors[2]
    assert max(exact) < 1e-7, exact
