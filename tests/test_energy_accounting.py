"""Time and energy accounting (accounting/power.py, accounting/settling.py, accounting/report.py,
`analogep energy`): the power computed from node voltages and netlist values against
ngspice's own device powers and source currents, the numpy relaxation's settling times
against ngspice's transients, and the command's output and its refusal of bad constants."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analogep.api import deck_points
from analogep.backends.spring import Nudge
from analogep.backends.spring import phase_spring
from analogep.spice.compiler import build_netlist, state_nodes
from analogep.spice.netlist import render
from analogep.spice.run.ngspice import SubprocessNgspice
from analogep.accounting.power import circuit_power
from analogep.spice.transient import run_transient, start_state
from analogep.cli.app import main
from analogep.config import load_spec
from analogep.accounting.settling import settle
from analogep.model.factory import build_energy

ROOT = Path(__file__).resolve().parents[1]
TINY = (ROOT / "examples" / "tiny.yaml").read_text()


def _tiny(**circuit):
    spec = load_spec(ROOT / "examples" / "tiny.yaml")
    if circuit:
        spec = spec.replace(circuit=circuit)
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    params = {k: v.astype(np.float64) for k, v in build_energy(spec.model).init_params(np.random.default_rng(0)).items()}
    return spec, model, params


@pytest.mark.spice
@pytest.mark.parametrize("phase", ["free", "nudge_minus"])
def test_power_from_node_voltages_matches_ngspice(phase):
    """At the operating point of the tiny circuit: the resistors' dissipation (ngspice's
    @R[p]) is the crossbar + leak + spring power computed from the node voltages, and the
    anchor sources, sense lines and row drivers carry the currents computed for them."""
    spec, model, params = _tiny()
    point = deck_points(spec, params)[phase]
    net = build_netlist(spec, model, params, phase, point.anchors, sweep=False, nodeset=point.nodeset)
    names = [n for layer in state_nodes(model.sizes) for n in layer]
    resistors = [e.name.lower() for e in net.elements if e.name[0] == "R"] + [f"r.x{n}.rleak" for n in names]
    drivers = [f"e.x{n}.e{pm}" if n.startswith("x") else f"b.x{n}.b{pm}" for n in names for pm in ("p", "m")]
    n_vis = model.sizes[0]
    net.saves = ([f"v({n})" for n in names] + [f"@{r}[p]" for r in resistors] + [f"i(vxt{i})" for i in range(n_vis)]
                 + [f"i(v.x{n}.vsense)" for n in names] + [f"i({d})" for d in drivers])
    res = SubprocessNgspice().run(render(net, include=None), 120)
    state = [np.array([[res.vectors[n][0] for n in layer]]) for layer in state_nodes(model.sizes)]
    power = circuit_power(spec, model, params, phase, state, point.anchors)
    spice_dissipated = sum(res.vectors[f"@{r}[p]"][0] for r in resistors)
    ours = power.crossbar[0] + power.leak[0] + power.spring[0]
    assert ours == pytest.approx(spice_dissipated, rel=1e-6)
    assert power.crossbar[0] > power.spring[0] > 0
    currents = {
        "anchors": sum(abs(res.vectors[f"vxt{i}#branch"][0]) for i in range(n_vis)),
        "sense": sum(abs(res.vectors[f"v.x{n}.vsense#branch"][0]) for n in names),
        "drivers": sum(abs(res.vectors[f"{d}#branch"][0]) for d in drivers),
    }
    for group, spice_amps in currents.items():
        assert power.currents[group][0] == pytest.approx(spice_amps, rel=1e-6), group


@pytest.mark.spice
def test_numpy_relaxation_settles_as_the_spice_transient_does():
    """The circuit's flow integrated in numpy (accounting/settling.py) against ngspice's
    transient of the same point: settling times to 1e-3 and 1e-4 agree within 5%."""
    spec, model, params = _tiny(capacitance=1e-12)
    points = deck_points(spec, params)
    unit = spec.circuit.capacitance / spec.circuit.g0
    for phase in ("free", "nudge_plus"):
        p = points[phase]
        start = start_state(phase, p.anchors, points["free"].nodeset, model.sizes)
        tr = run_transient(spec, model, params, phase, p.anchors, start, p.nodeset)
        nudge = None if phase == "free" else Nudge(spec.gradep.beta, p.anchors["a"])
        for tol in (1e-3, 1e-4):
            s = settle(model, params, start, phase_spring(spec.gradep, p.anchors["xt"], nudge), tol=tol)
            assert s.time[0] * unit == pytest.approx(tr.settling_time(tol), rel=0.05), (phase, tol)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("energy")
    plot = out / "energy.png"
    res = CliRunner().invoke(main, ["energy", str(ROOT / "examples" / "tiny.yaml"), "--points", "4", "--samples", "10",
                                    "--sample-points", "2", "--no-cpu", "--json", "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    return json.loads(res.output), plot


def test_energy_report_adds_up_and_compares(report):
    data, plot = report
    analog = data["training"]["analog"]
    assert analog["joules"] == pytest.approx(sum(analog["breakdown"].values()))
    supply = sum(v for k, v in analog["breakdown"].items() if k.startswith(("row", "sense", "inj", "anchor", "nudge", "bias")))
    assert sum(data["dissipated"].values()) <= supply  # a class-B supply delivers at least what the elements dissipate
    for key in ("gpu_euler", "gpu_fast", "gpu_backprop"):
        assert data["ratios"]["training"][key] > 0 and key in data["sampling"]
    assert data["training"]["gpu_euler"]["notes"]["relaxation_steps_per_point"] == 900
    assert all(s["unsettled"] == 0 and s["mean_s"] > 0 for s in data["settling"].values())
    assert data["constants"]["adc_fom"]["source"].startswith("B. Murmann")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settling_scales_with_capacitance_and_the_quiescent_energy_is_on_time(tmp_path):
    """Time is C/g0 times a number of flow units: doubling C doubles every settling time.
    The amplifiers' quiescent energy is their count x supply x current x the time each
    phase's circuit is on (settling plus readout), summed over the batch."""
    results = []
    for c in ("1.0e-12", "2.0e-12"):
        cfg = tmp_path / f"c{c}.yaml"
        cfg.write_text(TINY + f"\ncircuit:\n  capacitance: {c}\n")
        res = CliRunner().invoke(main, ["energy", str(cfg), "--points", "2", "--samples", "2", "--sample-points", "1", "--no-cpu", "--json"])
        assert res.exit_code == 0, res.output
        results.append(json.loads(res.output))
    for phase in ("free", "nudge_plus", "nudge_minus"):
        assert results[1]["settling"][phase]["mean_s"] == pytest.approx(2 * results[0]["settling"][phase]["mean_s"], rel=1e-9)
    data = results[0]
    analog, k = data["training"]["analog"], data["constants"]
    amps = {"free": 4 * 96 + 64, "nudge_plus": 4 * 96 + 3 * 64, "nudge_minus": 4 * 96 + 3 * 64}
    on = sum(amps[ph] * t for ph, t in analog["notes"]["per_phase_s"].items())
    expected = data["batch"] * k["supply_voltage"]["value"] * k["amp_quiescent_current"]["value"] * on
    assert analog["breakdown"]["amplifier quiescent current"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("yaml_tail", "fragment"),
    [
        ("circuit:\n  capacitance: -1.0e-12\n", "circuit.capacitance: -1e-12 is not allowed; must be >= 0"),
        ("physics:\n  supply_voltage: 0\n", "physics.supply_voltage: 0.0 is not allowed; must be > 0"),
        ("physics:\n  adc_bits: 0\n", "physics.adc_bits: 0 is not allowed; must be >= 1"),
        ("physics:\n  capacitance: 0\n", "circuit.capacitance and physics.capacitance are both 0"),
    ],
)
def test_bad_constants_are_one_line_and_nothing_is_written(tmp_path, yaml_tail, fragment):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TINY + "\n" + yaml_tail)
    plot = tmp_path / "out" / "energy.png"
    res = CliRunner().invoke(main, ["energy", str(cfg), "--points", "2", "--no-cpu", "--plot", str(plot)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.output
    assert not plot.exists() and not plot.parent.exists()


def _energy_json(*args: str) -> dict:
    res = CliRunner().invoke(main, ["energy", str(ROOT / "examples" / "tiny.yaml"), "--points", "2", "--samples", "2",
                                    "--sample-points", "1", "--no-cpu", "--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_on_devices_the_write_pulses_come_from_the_write_rule(tmp_path):
    """--devices: the pulses per step are counted by the devices' write rule (a finer level
    grid fires more pulses for the same update), the programming energy is those pulses at
    physics.write_energy, and the circuit is the devices' window (its g0)."""
    counts = {}
    for bits in (6, 10):
        dev = tmp_path / f"d{bits}.yaml"
        dev.write_text(f"preset: ideal\nbits: {bits}\nw_max: 1.0\ngmin: 1.0e-6\ngmax: 1.0e-4\n")
        data = _energy_json("--devices", str(dev))
        analog = data["training"]["analog"]
        w = analog["notes"]["writes"]
        assert w["bits"] == bits and w["devices"] == 2 * (64 * 16 + 16 * 16)  # G+ and G-, one copy read both ways
        assert w["pulses_per_step"] == pytest.approx(w["pulses_per_device"] * w["devices"])
        energy = data["constants"]["write_energy"]["value"]
        assert analog["breakdown"]["programming (write pulses)"] == pytest.approx(w["pulses_per_step"] * energy)
        counts[bits] = w["pulses_per_device"]
    # lr 3e-3 per update: about 0.1 of a 6-bit level (1/63 of |W| = 1), about 3 of a 10-bit one (1/1023)
    assert counts[10] > 10 * counts[6] > 0
    ideal = _energy_json()
    assert "writes" not in ideal["training"]["analog"]["notes"]
    assert ideal["training"]["analog"]["notes"]["pulses_per_device"] == ideal["constants"]["pulses_per_update"]["value"]


def test_bad_devices_for_energy_are_one_line(tmp_path):
    res = CliRunner().invoke(main, ["energy", str(ROOT / "examples" / "tiny.yaml"), "--points", "2", "--no-cpu",
                                    "--devices", "nosuchpreset"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nosuchpreset" in lines[0], res.output


def test_energy_says_what_it_simulates_on_stderr_and_json_stays_clean():
    args = ["energy", str(ROOT / "examples" / "tiny.yaml"), "--points", "2", "--samples", "2", "--sample-points", "1", "--no-cpu"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "energy: settling the free phase of 2 training points" in res.stderr
    assert "energy: settling generation step 1 of" in res.stderr
    quiet = CliRunner().invoke(main, [*args, "--json"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
