"""The hopfield84 family (Hopfield 1984 circuit of op-amps, resistors and 1N4148 diodes):
its energy is the circuit's device law, its block solve is exact, its Hessian is the
energy's, and EP on it matches the exact gradient (issue 21)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from analogep.cli.app import main
from analogep.config import load_spec
from analogep.model.factory import build_energy
from analogep.model.families import hopfield84 as h84

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny-physical.yaml"


def _model(dtype="float64"):
    spec = load_spec(TINY)
    model = build_energy(dataclasses.replace(spec.model, dtype=dtype))
    return spec, model, model.init_params(np.random.default_rng(0))


def test_diode_units_are_the_shockley_law_of_the_node():
    """dE_l/ds is the node's current balance times R_n / r: (s - r c)/R_n + 2 I_s sinh(s / N V_T)."""
    layer = h84.DiodeUnits(3)
    s = np.array([[-0.6, 0.05, 0.45]])
    c = np.array([[0.2, -0.1, 1.3]])
    r = layer.r
    current = (s - r * c) / h84.R_NODE + 2 * h84.DIODE_IS * np.sinh(s / (h84.DIODE_N * h84.THERMAL_VOLTAGE))
    np.testing.assert_allclose(layer.block_slope(s, c, None, None), current * h84.R_NODE / r, rtol=1e-12)
    assert abs(h84.THERMAL_VOLTAGE - 0.025864) < 1e-6  # kT/q at 27 C


def test_transfer_solves_the_node_exactly_and_saturates():
    layer = h84.DiodeUnits(1)
    c = np.array([[-50.0, -1.0, -0.1, 0.0, 1e-6, 0.3, 1.0, 50.0]])
    s = layer.transfer(c)
    np.testing.assert_allclose(layer.inverse(s), c, rtol=1e-12, atol=1e-15)
    assert np.all(np.diff(s) > 0)  # strictly increasing, so g^{-1} exists (Hopfield's condition)
    assert np.all(np.abs(s) < 0.7)  # the diodes clamp the swing
    assert abs(s[0, 6] - 1.0 * layer.r) > 0.05  # the diodes bend the curve at c = 1


def test_hessian_is_the_energys():
    spec, model, params = _model()
    rng = np.random.default_rng(1)
    state = [0.3 * rng.standard_normal((4, n)) for n in model.sizes]
    direction = [rng.standard_normal((4, n)) for n in model.sizes]
    eps = 1e-6
    plus = model.state_grad(params, [s + eps * d for s, d in zip(state, direction)])
    minus = model.state_grad(params, [s - eps * d for s, d in zip(state, direction)])
    hv = model.hessian_vector(params, state, direction)
    for p, m, h in zip(plus, minus, hv):
        np.testing.assert_allclose((p - m) / (2 * eps), h, rtol=1e-6, atol=1e-6)
    # and the field is the energy's gradient
    e_plus = model.energy(params, [s + eps * d for s, d in zip(state, direction)])
    e_minus = model.energy(params, [s - eps * d for s, d in zip(state, direction)])
    grad = model.state_grad(params, state)
    along = sum(np.sum(g * d, axis=1) for g, d in zip(grad, direction))
    np.testing.assert_allclose((e_plus - e_minus) / (2 * eps), along, rtol=1e-6)


def test_block_solver_reaches_a_stationary_point():
    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.evaluation.gradcheck import REFERENCE_RELAX

    spec, model, params = _model()
    backend = NumpyBackend(model, spec.gradep, REFERENCE_RELAX)
    backend.program(params)
    x_t = np.random.default_rng(2).standard_normal((8, model.sizes[0]))
    eq = backend.equilibrium(x_t, None, None)
    assert eq.residual < 1e-9


def test_gradcheck_cosine():
    result = CliRunner().invoke(main, ["gradcheck", str(TINY), "--json", "--batch", "8"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cosine"] >= 0.999
    assert report["float64_tight"]["cosine"] >= 0.999


def _deck_voltages(text: str) -> dict[str, float]:
    import re

    return {m.group(1): float(m.group(2)) for m in re.finditer(r"v\((\w+)\) = ([-\d.e+]+)", text)}


def test_compiled_decks_are_physical_and_ngspice_solves_them(tmp_path):
    """compile writes only R, C, D, independent sources, op-amp macromodels (linear E/G
    sources) and cells; ngspice -b solves the free deck as it is, near numpy's equilibrium
    (the .nodeset, 6 digits; the OPA241's finite gain moves it by ~1e-6)."""
    import re
    import subprocess

    out = tmp_path / "decks"
    result = CliRunner().invoke(main, ["compile", str(TINY), "--out", str(out)])
    assert result.exit_code == 0, result.output
    library = (out / "physical.lib").read_text()
    assert not (out / "analogep.lib").exists()
    decks = ["title\n" + library] + [(out / f"{p}.cir").read_text() for p in ("free", "nudge_plus", "nudge_minus", "generate")]
    for text in decks:  # the first line of a deck is its title
        body = [ln.strip() for ln in text.splitlines()[1:] if ln.strip() and not ln.lstrip().startswith(("*", "+", "."))]
        kinds = {ln[0].upper() for ln in body if not ln.lower().startswith(("set ", "op", "print", "quit", "run", "let"))}
        assert kinds <= set("RCDVIEGX"), kinds  # G: the nudge conductances and the op-amps' gain stage
        assert not any(ln.upper().startswith("B") for ln in body)
    deck = (out / "free.cir").read_text()
    nodeset = {k: float(v) for k, v in re.findall(r"v\((\w+)\)=([-\d.e+]+)", deck)}
    run = subprocess.run(["ngspice", "-b", "free.cir"], cwd=out, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    got = _deck_voltages(run.stdout)
    assert set(got) >= {f"h2_{j}" for j in range(16)}
    err = max(abs(got[k] - v) for k, v in nodeset.items() if k in got)
    assert err < 2e-5, err


def test_check_agrees_with_ngspice(tmp_path):
    """The OPA241's finite gain (128 dB) is the only element numpy idealises: node voltages
    agree to 1e-6 full scale, the EP gradients' cosine to 1 - 1e-6."""
    result = CliRunner().invoke(main, ["check", str(TINY), "--n", "2", "--workers", "1", "--json", "--plot", str(tmp_path / "check.png")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["max_rel_error"] <= 1e-6 and report["grad_cosine"] >= 1 - 1e-6 and report["passed"]


def test_a_swing_beyond_the_rails_is_one_line(tmp_path):
    """Weights whose equilibrium needs an op-amp output beyond +-4.7 V: one line, exit 2,
    nothing written."""
    config = tmp_path / "loud.yaml"
    config.write_text(TINY.read_text().replace("seed: 0\n", "seed: 0\n  init_gain: 5.0\n", 1))
    out = tmp_path / "decks"
    result = CliRunner().invoke(main, ["compile", str(config), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the needed swing" in lines[0], result.stderr
    assert not out.exists()
