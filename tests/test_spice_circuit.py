"""The compiled circuit with real ngspice: golden decks, a hand-solved circuit, graph checks,
clipping, and the clear errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from analogep.api import compile_circuit
from analogep.spice.compiler import build_netlist
from analogep.spice.graph import check_graph
from analogep.spice.library import LIBRARY, library_text
from analogep.spice.netlist import render
from analogep.config import CircuitSpec, GradEPSpec, ModelSpec, Spec, load_spec
from analogep.errors import CircuitError
from analogep.model.families.hopfield import HopfieldEnergy
from analogep.model.factory import build_energy

pytestmark = pytest.mark.spice
ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "netlists" / "tiny"


def _ngspice_print(deck: Path) -> dict[str, float]:
    """Run `ngspice -b deck` (it must exit 0, as scripts expect) and parse its 'name = value' lines."""
    run = subprocess.run(["ngspice", "-b", deck.name], capture_output=True, text=True, cwd=deck.parent, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    found = re.findall(r"^(\S+) = (\S+)$", out, re.MULTILINE)
    assert found, out[-2000:]
    return {k.lower(): float(v) for k, v in found}


def _tiny():
    spec = load_spec(ROOT / "examples" / "tiny.yaml")
    params = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
    return spec, params


def test_golden_decks_are_what_the_compiler_writes():
    spec, params = _tiny()
    files, clipped = compile_circuit(spec, params, "examples/tiny.yaml (initial weights, seed 0)")
    assert sorted(files) == sorted(p.name for p in GOLDEN.iterdir())
    for name, text in files.items():
        assert (GOLDEN / name).read_text() == text, f"netlists/tiny/{name} differs: recompile with analogep compile examples/tiny.yaml --out netlists/tiny"
    assert clipped == {"W0": 0, "W1": 0}


def test_golden_decks_solve_to_the_numpy_equilibrium(tmp_path):
    """ngspice -b on each reviewed deck prints the numpy equilibrium (and -dE/dx for generate)."""
    from analogep.api import DECK_RELAX as TIGHT
    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.data import load_dataset
    from analogep.backends.spring import Nudge
    from analogep.ep.phases import nudge_anchor
    from analogep.evaluation.gradcheck import as_float64
    from analogep.objectives.flow import sample_flow_batch
    from analogep.solvers.fast import FastSolver

    spec, params = _tiny()
    model, p = as_float64(spec, params)
    batch = sample_flow_batch(load_dataset(dtype=np.float64), 1, np.random.default_rng(spec.train.seed), ot=False)
    numpy = NumpyBackend(model, spec.gradep, TIGHT)
    numpy.program(p)
    free = numpy.equilibrium(batch.x_t, None, None)
    a = nudge_anchor(batch.x_t, batch.u, spec.gradep)
    x = np.random.default_rng(spec.generate.seed).standard_normal((1, 64))
    gen = FastSolver(5000, tol=1e-12).relax(model, p, [x] + model.zeros_state(1)[1:], None, clamp_visible=True)
    expected = {
        "free.cir": free.state,
        "nudge_plus.cir": numpy.equilibrium(batch.x_t, Nudge(spec.gradep.beta, a), free.state).state,
        "nudge_minus.cir": numpy.equilibrium(batch.x_t, Nudge(-spec.gradep.beta, a), free.state).state,
        "generate.cir": gen.state,
    }
    for name in expected:
        shutil.copy(GOLDEN / name, tmp_path / name)
    shutil.copy(GOLDEN / LIBRARY, tmp_path / LIBRARY)
    for name, state in expected.items():
        got = _ngspice_print(tmp_path / name)
        for prefix, layer in zip(["x", "h1_", "h2_"], state):
            volts = np.array([got[f"v({prefix}{i})"] for i in range(layer.shape[1])])
            np.testing.assert_allclose(volts, layer[0], atol=1e-7, err_msg=f"{name}: {prefix} nodes")
    got = _ngspice_print(tmp_path / "generate.cir")
    minus_grad = -model.state_grad(p, gen.state)[0][0]
    clamp = np.array([got[f"i(vclamp{i})"] for i in range(64)]) / spec.circuit.g0
    np.testing.assert_allclose(clamp, minus_grad, atol=1e-6)


def _three_neuron_spec(**circuit) -> Spec:
    """x - h1 - h2, one unit each, plain SiLU (built directly: the digits check needs 64 visible)."""
    return Spec(name="three", model=ModelSpec(sizes=(1, 1, 1), activation="silu", dtype="float64"),
                gradep=GradEPSpec(), circuit=CircuitSpec(**circuit))


def _hand_solved():
    """Parameters for which (x*, h1, h2) = ((b_x + W0 silu(1) + lam x_t)/(1 + lam), 1, 1) solves the
    free phase exactly: at h = 1 a drive c = 1/silu'(1) gives h = silu'(1) c = 1."""
    lam, w0, w1, bx, xt = 15.0, 0.5, 0.2, 0.2, 0.3  # w1 = 0.8 has a second fixed point
    sig = 1.0 / (1.0 + np.exp(-1.0))
    silu1, dsilu1 = sig, sig * (1.0 + (1.0 - sig))
    c = 1.0 / dsilu1
    x_star = (bx + w0 * silu1 + lam * xt) / (1.0 + lam)
    params = {
        "b_x": np.array([bx]), "W0": np.array([[w0]]), "b0": np.array([c - w0 * x_star - w1 * silu1]),
        "W1": np.array([[w1]]), "b1": np.array([c - w1 * silu1]),
    }
    return params, np.array([[xt]]), [np.array([[x_star]]), np.array([[1.0]]), np.array([[1.0]])]


def test_three_neuron_circuit_matches_the_hand_solution(tmp_path):
    spec = _three_neuron_spec()
    model = HopfieldEnergy(spec.model)
    params, xt, expected = _hand_solved()
    net = build_netlist(spec, model, params, "free", {"xt": xt}, sweep=False)
    net.analysis = "* analysis: op, run by the .control block"
    net.control = ["set numdgt=12", "op", "print v(x0) v(h1_0) v(h2_0) i(vxt0)", "quit"]
    (tmp_path / "three.cir").write_text(render(net))
    (tmp_path / LIBRARY).write_text(library_text())
    got = _ngspice_print(tmp_path / "three.cir")
    assert got["v(x0)"] == pytest.approx(expected[0][0, 0], abs=1e-9)
    assert got["v(h1_0)"] == pytest.approx(1.0, abs=1e-9)
    assert got["v(h2_0)"] == pytest.approx(1.0, abs=1e-9)
    # The spring current is lambda g0 (x* - x_t): the velocity read-out, measured locally.
    spring = spec.gradep.lam * spec.circuit.g0 * (expected[0][0, 0] - xt[0, 0])
    assert got["i(vxt0)"] == pytest.approx(spring, rel=1e-7)  # flows x0 -> xt0 -> through Vxt0


def test_graph_check_names_floating_nodes_and_voltage_loops():
    lib = library_text()
    ok = "t\nR1 a 0 1k\nV1 a 0 1\n.op\n.end\n"
    assert check_graph(ok, "ok", lib) == 2
    with pytest.raises(CircuitError, match=r"floating.cir: node\(s\) b have no DC path to ground"):
        check_graph("t\nR1 a 0 1k\nC1 a b 1n\nI1 0 b 1m\n.end\n", "floating.cir", lib)
    with pytest.raises(CircuitError, match=r"loop.cir: voltage sources form a loop .*V1.*V2"):
        check_graph("t\nV1 a 0 1\nV2 a 0 2\nR1 a 0 1k\n.end\n", "loop.cir", lib)
    # Inside a library cell too: a visible cell whose sense line is shorted to ground by a source.
    with pytest.raises(CircuitError, match="voltage sources form a loop"):
        check_graph("t\nXx0 x0 x0_p x0_m x0_s visible g0=1e-4\nVbad x0_s 0 0\n.end\n", "cell.cir", lib)


def test_weights_outside_the_conductance_range_fail_or_are_clipped_with_a_count(tmp_path):
    from click.testing import CliRunner

    from analogep.cli.app import main

    cfg = tmp_path / "narrow.yaml"
    cfg.write_text((ROOT / "examples" / "tiny.yaml").read_text() + "\ncircuit:\n  gmax: 2.0e-5\n")
    res = CliRunner().invoke(main, ["compile", str(cfg), "--out", str(tmp_path / "a")])
    assert res.exit_code == 2
    assert re.search(r"error: W0: \d+ of 1024 weights do not fit the conductance range", res.output)
    assert not (tmp_path / "a").exists()  # nothing half-written
    cfg.write_text((ROOT / "examples" / "tiny.yaml").read_text() + "\ncircuit:\n  gmax: 2.0e-5\n  clip: true\n")
    res = CliRunner().invoke(main, ["compile", str(cfg), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    m = re.search(r"warning: clipped (\d+) weights to the conductance range \(W0: (\d+), W1: (\d+)", res.output)
    assert m and int(m.group(1)) > 0 and int(m.group(1)) == int(m.group(2)) + int(m.group(3))
    assert "Clipped weights: W0 " + m.group(2) in (tmp_path / "b" / "free.cir").read_text()


def test_a_deck_that_cannot_converge_fails_with_one_clear_line():
    """Tolerances below machine precision: no Newton iterate can satisfy them, so the sweep,
    then .op with gmin and source stepping, fail; the error names phase, point and ngspice's words."""
    from analogep.backends.spice_backend import SpiceBackend

    spec = _three_neuron_spec(reltol=1e-16, vntol=1e-19, abstol=1e-22, timeout=60)
    model = HopfieldEnergy(spec.model)
    params, xt, _ = _hand_solved()
    backend = SpiceBackend.from_spec(spec, model, workers=1)
    backend.program(params)
    try:
        with pytest.raises(CircuitError) as info:
            backend.equilibrium(np.array([[0.3], [0.1]]), None, None)
    finally:
        backend.close()
    msg = str(info.value)
    assert "\n" not in msg
    assert re.match(r"ngspice could not solve the free phase at training point \d of the batch: .*(Error|trouble|failed)", msg), msg


def test_unbounded_energy_is_reported_before_ngspice_runs():
    from analogep.backends.spice_backend import SpiceBackend

    spec = _three_neuron_spec()
    model = HopfieldEnergy(spec.model)
    params = {"b_x": np.zeros(1), "W0": np.array([[8.0]]), "b0": np.array([5.0]), "W1": np.array([[8.0]]), "b1": np.zeros(1)}
    backend = SpiceBackend.from_spec(spec, model, workers=1)
    backend.program(params)
    try:
        with pytest.raises(CircuitError, match="free phase: the energy looks unbounded"):
            backend.equilibrium(np.array([[1.0]]), None, None)
    finally:
        backend.close()


def _saddle_params():
    """x - h1 - h2 (SiLU) weights with a minimum and a saddle of the spring-clamped energy:
    at x_t = 0.3 the minimum is near h = (-0.41, -0.43), the saddle near (0.93, 0.88)."""
    return {"b_x": np.array([0.0]), "W0": np.array([[0.5]]), "b0": np.array([-1.0]), "W1": np.array([[3.0]]), "b1": np.array([-1.0])}


def test_the_backend_accepts_minima_only(monkeypatch):
    """A warm start at a saddle leads ngspice's DC solve to the saddle (a root finder
    converges to the nearest root); the backend checks the Hessian there and refuses it."""
    from scipy.optimize import root

    from analogep.backends.spice_backend import SpiceBackend
    from analogep.model.curvature import smallest_eigen
    from analogep.solvers.base import Equilibrium

    spec = _three_neuron_spec()
    model = HopfieldEnergy(spec.model)
    params = _saddle_params()
    xt = np.array([[0.3]])
    lam = spec.gradep.lam

    def grad(s):
        g = model.state_grad(params, [s[0:1][None], s[1:2][None], s[2:3][None]])
        g[0] = g[0] + lam * (s[0] - xt[0])
        return np.concatenate([q[0] for q in g])

    saddle = [np.array([[v]]) for v in root(grad, [0.3, 0.9, 0.9], tol=1e-13).x]
    assert smallest_eigen(model, params, saddle, lam)[0][0] < -1.0
    backend = SpiceBackend.from_spec(spec, model, workers=1)
    backend.program(params)
    try:
        eq = backend.equilibrium(xt, None, None)  # the honest warm start: the minimum
        assert eq.state[1][0, 0] == pytest.approx(-0.4117, abs=1e-3)
        monkeypatch.setattr(backend, "_warm", lambda start, spring, clamp_visible: Equilibrium(saddle, np.zeros(1), 1))
        with pytest.raises(CircuitError) as info:
            backend.equilibrium(xt, None, None)
        # the one-sweep path of a training step (free and nudged phases together) checks too
        from analogep.backends.spring import Nudge

        with pytest.raises(CircuitError, match="is a saddle of the energy"):
            backend.phases(xt, [Nudge(spec.gradep.beta, xt + 0.01)])
    finally:
        backend.close()
    msg = str(info.value)
    assert "\n" not in msg
    assert re.match(r"ngspice's free equilibrium at training point 0 of the batch is a saddle of the energy, not a minimum "
                    r"\(smallest Hessian eigenvalue -1\.\d+\)", msg), msg
