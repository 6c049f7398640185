"""Continuous generation as an ngspice transient (objectives/continuous.py is the same flow in
numpy; Gower 2026, discussion: generation on hardware with two dynamical timescales).

The deck is the inference circuit of compiler.py without its clamps: the visible nodes are
free, with capacitance C_v = ratio * C_h to ground, the hidden nodes have C_h, and the
transient starts (`.ic`) with the visible nodes at the sample's noise voltages and the
hidden nodes at 0 V. It runs for t1 alpha C_v / g0 seconds (flow time t1); the visible
node voltages at the end are the sample (1 V = 1 state unit). One deck per sample, run as
`ngspice -b` processes on a local pool of threads.

With a precharge of N hidden time constants, each visible node is also wired to a DC source
at its noise voltage (the DAC) through an analog switch, closed for N C_h / g0 seconds and
then opened: the hidden layer relaxes towards its equilibrium at the noise before the
visible nodes are released (objectives/continuous.py). The switch is ngspice's
voltage-controlled switch with 1 mOhm on (1e-7 V across it at the network's 1e-4 A) and
1e15 Ohm off (1e-15 A of leak at 1 V).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from analogep.config.spec import Spec
from analogep.errors import CircuitError
from analogep.model.energy import EnergyModel, Params
from analogep.spice.compiler import build_netlist, state_nodes
from analogep.spice.netlist import Element, Netlist, fmt, render
from analogep.spice.run.ngspice import SubprocessNgspice, ngspice_info

# Time points the transient prints (the sample is its last); the largest internal step is
# the same, so ngspice resolves the visible drift and the hidden layer's fastest modes
# are left to its error control.
PRINT_POINTS = 400
# ngspice's relative tolerance of the generation transient (its default is 1e-3); at 1e-6
# the tiny model's samples agree with the numpy flow to about 1e-5 of full scale
# (docs/results/generation.md).
DEFAULT_RELTOL = 1e-6
TIMEOUT_S = 600.0


# The precharge switch (ngspice's SW element): on resistance, off resistance, and the
# control edge that opens it, a fraction of the precharge: short, so where on the edge the
# switch flips moves the release by under 1e-6 of the hold (at 1e-3 the flow's length
# moved by 1e-4 and the samples by 7e-5 of full scale at ratio 10, hold 10 C_h / g0).
SWITCH_MODEL = "SW(VT=0.5 VH=0.2 RON=1e-3 ROFF=1e15)"
SWITCH_EDGE = 1e-6
# The switch opens where the falling control crosses VT - VH = 0.3 V: 70% down the edge.
SWITCH_OPENS = 0.7


def physical_time(spec: Spec, t1: float, ratio: float, hidden_capacitance: float) -> float:
    """Seconds of the circuit for flow time t1 (objectives/continuous.py): t1 alpha C_v / g0
    with C_v = ratio C_h."""
    return t1 * spec.gradep.alpha * ratio * hidden_capacitance / spec.circuit.g0


def continuous_netlist(
    spec: Spec, model: EnergyModel, params: Params, x0: np.ndarray, *, t1: float, ratio: float, hidden_capacitance: float,
    reltol: float = DEFAULT_RELTOL, precharge: float = 0.0,
) -> Netlist:
    """One sample's generation circuit: free visible nodes at x0 (1, D) by `.ic`, hidden at 0 V;
    with `precharge` N > 0 the visible nodes are held at x0 through switches for N C_h / g0
    seconds first."""
    if ratio < 1:
        raise CircuitError(f"capacitance ratio {ratio:g} is below 1: the visible nodes must be the slow ones")
    net = build_netlist(spec.replace(circuit={"capacitance": 0.0}), model, params, "generate",
                        {"xc": np.asarray(x0, dtype=np.float64).reshape(1, -1)}, sweep=False)
    # No clamp: drop the clamps' ammeters and their sources (and the sources' .params).
    net.sections = [(title, [e for e in elements if not e.name.startswith(("Vclamp", "Vxc"))])
                    for title, elements in net.sections
                    if not title.startswith(("clamps", "anchor sources"))]
    net.params = {}
    names = state_nodes(model.sizes)
    c_v = ratio * hidden_capacitance
    caps = [Element(f"C{n}", (n, "0"), fmt(c_v if layer == 0 else hidden_capacitance))
            for layer, lnames in enumerate(names) for n in lnames]
    net.sections.append((f"node capacitors: visible {c_v:g} F, hidden {hidden_capacitance:g} F (ratio {ratio:g})", caps))
    net.title = net.title.replace(": generate", f": continuous generation (ratio {ratio:g})")
    x = np.asarray(x0, dtype=np.float64).ravel()
    net.ic = {n: float(v) for n, v in zip(names[0], x)} | {n: 0.0 for lnames in names[1:] for n in lnames}
    net.options["method"] = "gear"
    net.options["reltol"] = fmt(reltol)
    if ngspice_info().klu:
        net.options["klu"] = None
    hold = precharge * hidden_capacitance / spec.circuit.g0
    if hold > 0:
        ctl = "precharge_ctl"
        switches = [Element(".model", ("SWPRE",), SWITCH_MODEL),
                    Element("Vprecharge", (ctl, "0"), f"PWL(0 1 {fmt(hold)} 1 {fmt(hold * (1 + SWITCH_EDGE))} 0)")]
        for i, (n, v) in enumerate(zip(names[0], x)):
            switches += [Element(f"Vdac{i}", (f"dac{i}", "0"), f"DC {fmt(v)}"),
                         Element(f"Sprecharge{i}", (n, f"dac{i}", ctl, "0"), "SWPRE")]
        net.sections.append((f"precharge: the visible nodes held at the noise for {hold:g} s, then released", switches))
    stop = hold * (1 + SWITCH_OPENS * SWITCH_EDGE) + physical_time(spec, t1, ratio, hidden_capacitance)
    step = stop / PRINT_POINTS
    net.analysis = f".tran {fmt(step)} {fmt(stop)} 0 {fmt(step)}"
    net.saves = [f"v({n})" for n in names[0]]
    return net


@dataclass
class SpiceGeneration:
    """Samples (n, D) from ngspice transients, the circuit's seconds per sample, and the
    wall-clock seconds of the ngspice runs (summed over samples)."""

    samples: np.ndarray
    circuit_seconds: float
    run_seconds: float


def generate_spice(
    spec: Spec, model: EnergyModel, params: Params, x0: np.ndarray, *, t1: float, ratio: float, hidden_capacitance: float,
    reltol: float = DEFAULT_RELTOL, workers: int | None = None, precharge: float = 0.0,
) -> SpiceGeneration:
    """The samples of continuous generation from noise x0 (n, D), one transient each."""
    names = state_nodes(model.sizes)[0]
    runner = SubprocessNgspice()
    why = runner.unavailable()
    if why:
        raise CircuitError(why)

    def one(i: int) -> tuple[np.ndarray, float]:
        net = continuous_netlist(spec, model, params, x0[i : i + 1], t1=t1, ratio=ratio,
                                 hidden_capacitance=hidden_capacitance, reltol=reltol, precharge=precharge)
        result = runner.run(render(net, include=None), TIMEOUT_S)
        if "time" not in result.vectors or any(n not in result.vectors for n in names):
            raise CircuitError(f"ngspice could not run the generation transient of sample {i}: {result.message or 'no waveform'}")
        return np.array([result.vectors[n][-1] for n in names]), result.seconds

    workers = workers or max(1, (os.cpu_count() or 2) - 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(one, range(x0.shape[0])))
    samples = np.stack([d[0] for d in done])
    circuit_s = physical_time(spec, t1, ratio, hidden_capacitance) + precharge * hidden_capacitance / spec.circuit.g0
    return SpiceGeneration(samples, circuit_s, float(sum(d[1] for d in done)))
