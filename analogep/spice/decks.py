"""The reviewed decks of `analogep compile`: free, +beta, -beta and inference circuits.

One training point per deck, anchors as `.param`s a user can edit, the numpy
equilibrium (computed by the caller) as `.nodeset`, and a `.control` block that runs `op` and prints the node
voltages, so each file runs as it is with `ngspice -b FILE`. With `transient`, each phase
also gets a transient deck (`<phase>_tran.cir`, spice/transient.py) that relaxes in time
from where the phase starts, with no `.nodeset`, and prints where it ended. The circuit
mapping is compiler.py's (method.md section 7); this module adds the header a reviewer reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from analogep.spice.compiler import PHASE_TITLES, PHASES, build_netlist, programmed_crossbar, state_nodes
from analogep.spice.graph import check_graph, flatten
from analogep.spice.library import DRIVER_CELL_SUFFIX, DRIVERS, LIBRARY, library_text
from analogep.spice.netlist import Netlist, render
from analogep.devices.programmed import Programmed, ideal
from analogep.spice.transient import (
    SPAN_TAUS,
    predicted_tau,
    start_state,
    tran_window,
    transient_netlist,
)
from analogep.config.spec import Spec
from analogep.errors import CircuitError
from analogep.model.energy import Params, State
from analogep.model.factory import build_energy

DECK_NAMES = {"free": "free.cir", "nudge_plus": "nudge_plus.cir", "nudge_minus": "nudge_minus.cir", "generate": "generate.cir"}
TRANSIENT_NAMES = {phase: name.replace(".cir", "_tran.cir") for phase, name in DECK_NAMES.items()}
TRANSIENT_STARTS = {
    "free": "x = x_t, h = 0, the paper's start of the free phase",
    "nudge_plus": "the free equilibrium of the same point (numpy's)",
    "nudge_minus": "the free equilibrium of the same point (numpy's)",
    "generate": "h = 0, the visible nodes clamped at x",
}


def network(spec: Spec) -> str:
    """The network as a header names it: the layer sizes, and the skip coupling's rank."""
    sizes = "-".join(map(str, spec.model.sizes))
    return sizes + (f" + skip rank {spec.model.skip_rank}" if spec.model.skip_rank else "")


def _skip_lines(spec: Spec, net: Netlist) -> list[str]:
    """What the skip coupling adds (model.skip_rank; nothing without one): its neurons,
    crossbars and device count against a full visible-to-top skip matrix."""
    k = spec.model.skip_rank
    if not k:
        return []
    sizes = spec.model.sizes
    n_vis, n_top, z = sizes[0], sizes[-1], len(sizes)
    devices = sum(1 for e in net.elements if e.name.startswith(("RU", "RV")))
    return [
        f"Skip coupling (model.skip_rank = {k}, method.md section 1): bottleneck neurons h{z}_<m>, m < {k}, coupled to",
        f"  the visible layer by crossbar U ({k} x {n_vis}, RU..) and to the top hidden layer h{z - 1} by V ({k} x {n_top}, RV..):",
        f"  ({n_vis} + {n_top}) * {k} = {(n_vis + n_top) * k} weights, {devices} devices in both reads, where a full skip",
        f"  matrix would be {n_vis} * {n_top} = {n_vis * n_top} weights.",
    ]


def _header(
    spec: Spec, phase: str, origin: str, point: str, counts: dict, flat: int, clipped: dict[str, int], net: Netlist
) -> list[str]:
    c, g = spec.circuit, spec.gradep
    sizes = network(spec)
    kinds = ", ".join(f"{n} {k}" for k, n in counts.items())
    read = {
        "generate": [
            "Result: V(h<l>_<j>) = hidden equilibrium h*; the velocity at the clamped x is",
            f"  v_i = alpha * I(Vclamp<i>) / g0 = {g.alpha:g} * I(Vclamp<i>) / {c.g0:g}  (= -alpha dE/dx_i, method.md 2).",
        ],
    }.get(
        phase,
        [
            "Result: V(x<i>) = x*_i and V(h<l>_<j>) = h*_j, the equilibrium (state units).",
            "  Velocity read-out (free phase): v_i = alpha*lambda*(V(x<i>) - xt_<i>) = alpha * I(Rspring<i>) / g0.",
            "  EP update of W_l[j,i] from the +beta and -beta decks: -(a_j a_i)(+beta) + (a_j a_i)(-beta), over 2 beta.",
        ],
    )
    return [
        f"{PHASE_TITLES[phase]}.",
        f"Compiled by analogep from config {spec.name!r} ({sizes}, {spec.model.activation}); weights: {origin}.",
        f"Training point: {point}.",
        "",
        "Mapping (method.md section 7; Kendall et al. 2020): 1 V = 1 state unit, unit conductance",
        f"  g0 = {c.g0:g} S. Leak g0 per neuron; spring lambda*g0 = {g.lam * c.g0:g} S to the anchor xt<i>;",
        f"  nudge beta*(alpha*lambda)^2*g0 = {g.nudge_stiffness * c.g0:g} S as a VCCS (G element) between x<i> and a<i>",
        "  (negative transconductance for -beta, i.e. a negative conductance); bias b: current source b*g0",
        "  into the neuron's sense line; W_l[j,i]: differential pair G+ - G- = W*g0, G+/- in",
        f"  [gmin, gmax] = [{c.gmin:g}, {c.gmax:g}] S (|W| <= {(c.gmax - c.gmin) / c.g0:g}); zero-conductance devices are",
        "  left out; each crossbar is read forward (RW<l>p/m_<j>_<i>) and transposed (RW<l>pT/mT_<j>_<i>).",
        f"  Clipped weights: {', '.join(f'{k} {v}' for k, v in clipped.items())}. Node capacitance: {c.capacitance:g} F.",
        f"Elements: {kinds} (X = neuron cells of {net.library}); {flat} after expanding the cells.",
        *_skip_lines(spec, net),
        *read,
        "Run: ngspice -b THIS_FILE. On ngspice >= 42 built with KLU, add 'klu' to .options for a faster solve.",
        "The .nodeset holds the numpy equilibrium of these anchors, and it decides which fixed point .op",
        "  finds: a DC operating point is a root finder, so with the .nodeset removed, or the .param anchors",
        "  moved far from it, .op can converge to another fixed point of the circuit, a saddle of the energy",
        "  included, without a warning. The physical circuit descends the energy instead: the transient deck",
        "  (analogep compile --transient, with circuit.capacitance > 0) relaxes in time from where the phase",
        "  starts and ends in a minimum with no .nodeset.",
    ]


@dataclass(frozen=True)
class DeckPoint:
    """What one reviewed deck solves: its anchors, the equilibrium given to ngspice as
    `.nodeset`, and a line that says which point it is."""

    anchors: dict[str, np.ndarray]
    nodeset: State
    description: str


def compile_decks(
    spec: Spec, params: Params, origin: str, points: dict[str, DeckPoint], transient: bool = False,
    drawn: Programmed | None = None, level_code: np.ndarray | None = None,
) -> tuple[dict[str, str], dict[str, int]]:
    """File name -> text of the four decks and the library copy (with `transient`, the four
    transient decks too), and the clip counts.

    `points` holds each phase's point (analogep.api.compile_circuit computes them).
    `level_code`: with a level-dependent energy (dsm.conditioning: level-bias), the noise
    level's code the decks carry as the level biases' current sources (api.deck_level).
    `drawn`: the programmed circuit (default: the ideal one of `params`); on devices, the
    decks are of the realised circuit (devices/programmed.py).
    Nothing is written here: a weight that does not fit, or a transient asked of a circuit
    without capacitance, raises before any file exists.
    """
    amplified = build_energy(spec.model).circuit_rules().amplifier is not None  # op-amps set the dynamics
    if transient and spec.circuit.capacitance <= 0 and not amplified:
        raise CircuitError("compile --transient: circuit.capacitance is 0; set it > 0 (e.g. 1e-12 F) in the config")
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    model.condition(level_code)  # a level-dependent energy is drawn at one level (the points' own)
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    drawn = ideal(spec, model, p64) if drawn is None else drawn
    on_devices = not spec.devices.ideal
    if transient and on_devices:
        raise CircuitError("compile --transient: transient decks are of the ideal circuit; drop --devices (or the devices section)")
    clipped = dict(drawn.clipped)
    crossbar = programmed_crossbar(drawn, model)
    names = [n for layer in state_nodes(model.sizes) for n in layer]
    files: dict[str, str] = {}
    tran: dict[str, str] = {}
    for phase in PHASES:
        point = points[phase]
        net = build_netlist(drawn.spec, model, drawn.params if on_devices else p64, phase, point.anchors, sweep=False,
                            nodeset=point.nodeset, crossbar=crossbar, drivers=drawn.drivers)
        prints = [f"v({n})" for n in names]
        if phase == "generate":
            prints += [f"i(vclamp{i})" for i in range(model.sizes[0])]
        net.analysis = "* analysis: op, run by the .control block"
        net.control = (
            ["set numdgt=10", "op"]
            + ["print " + " ".join(prints[k : k + 8]) for k in range(0, len(prints), 8)]
            + ["quit"]  # exit 0 in batch mode (without it ngspice -b ends with 1: no analysis line)
        )
        text = render(net)
        flat = len(flatten(text))
        net.header = _header(drawn.spec, phase, origin, point.description, net.counts(), flat, clipped, net)
        if on_devices:
            net.header += _devices_header(spec, drawn, net.library)
        if not model.circuit_rules().klu:
            net.header = [ln.replace("add 'klu' to .options for a faster solve", "leave KLU off: with a .nodeset it "
                                     "failed on these cells (docs/results/physical.md)") for ln in net.header]
        text = render(net)
        check_graph(text, f"{DECK_NAMES[phase]}")
        files[DECK_NAMES[phase]] = text
        if transient:
            tran[TRANSIENT_NAMES[phase]] = _transient_deck(spec, model, p64, phase, point, points["free"], origin)
    files.update(tran)
    files[net.library] = library_text(net.library)
    if drawn.drivers is not None and DRIVERS in net.extra_libraries:
        files[DRIVERS] = library_text(DRIVERS)
    return files, clipped


def _devices_header(spec: Spec, drawn: Programmed, library: str) -> list[str]:
    """What a deck realised on devices adds to the ideal mapping (method.md section 7, 'Devices')."""
    d = spec.devices
    both = "one device per weight read both ways" if d.copies == "bidirectional" else "two independently drawn copies"
    lines = [
        f"Devices: preset {d.preset!r} (seed {d.seed}); the crossbar holds the realised conductances: {both},",
        f"  levels {'continuous' if d.bits is None else 2 ** d.bits}, variability {d.variability:g}, stuck at gmin/gmax "
        f"{d.stuck_gmin:g}/{d.stuck_gmax:g}, program noise {d.program_noise:g}.",
    ]
    if drawn.drivers is not None:
        lines.append(f"  Activation drivers: a = gain*rho(s) + offset per neuron (cells *{DRIVER_CELL_SUFFIX} of "
                     f"{DRIVERS if library == LIBRARY else library}; "
                     f"gain spread {d.driver_gain_sigma:g}, offset spread {d.driver_offset_sigma:g} V).")
    if drawn.wire_resistance > 0:
        lines += [
            f"  Line resistance {drawn.wire_resistance:g} ohm per segment: each read is an array whose rows 2i, 2i+1 carry",
            "  input i's drivers <n>_p, <n>_m, driven at the left end, and whose column j runs down past every row to",
            "  its sense line <out_j>_s at the bottom; one segment between the driver and the first tap and between",
            "  adjacent taps (RL<W>fr/tr_<row>_<col>), one between adjacent taps and below the last row (RL<W>fc/tc_...);",
            "  a device joins its row tap <W>fr<row>_<col> and column tap <W>fc<row>_<col> (f: forward, t: transposed).",
            "  The .nodeset is numpy's equilibrium of the wired circuit through the arrays' effective conductances",
            "  (devices/wires.py: exact for ideal drivers and virtual grounds).",
        ]
    else:
        lines.append("  The .nodeset holds numpy's equilibrium of this realised circuit.")
    return lines


def _dynamics_lines(spec: Spec, model, phase: str) -> list[str]:
    """What a transient deck of analogep.lib's cells is: the gradient flow on node capacitors."""
    return [
        f"The same circuit as {DECK_NAMES[phase]} (its header gives the mapping) with C = {spec.circuit.capacitance:g} F from every neuron",
        "  node to ground, so it is the gradient flow C ds/dt = -g0 dE/ds (method.md section 7). It starts at",
        f"  {TRANSIENT_STARTS[phase]}",
        "  (.ic: ngspice holds the nodes there for its initial operating point, then lets go) and relaxes",
        "  in time; with no .nodeset, where it",
        "  ends is where the energy's descent leads: a minimum, not whatever fixed point a root finder meets.",
    ]


def _amplifier_lines(amp, phase: str) -> list[str]:
    """What a transient deck of a family's op-amp cells is: no node capacitor, the op-amps' poles."""
    return [
        f"The same circuit as {DECK_NAMES[phase]} (its header gives the mapping). Its state nodes are op-amp outputs: no",
        f"  node capacitor sets its dynamics, the {amp.part} macromodels' dominant poles (GBW {amp.gbw_hz:g} Hz) do; each neuron",
        "  lags its drive by its stages' noise gains over 2 pi GBW (Hopfield 1984's dynamics, analogep/spice/transient.py).",
        f"  It starts at {TRANSIENT_STARTS[phase]}",
        "  (.ic on the neuron nodes and on every op-amp's gain node, where the amplifiers hold that start;",
        "  ngspice holds them there for its initial operating point, then lets go) and relaxes in time; with no",
        "  .nodeset, where it ends is where the circuit's own dynamics lead, not whatever fixed point a root finder meets.",
        f"  The macromodel's gain stage is linear: it does not slew (the {amp.part}'s {amp.slew_v_per_s:g} V/s is not modelled).",
    ]


def _transient_deck(spec: Spec, model, params: Params, phase: str, point: DeckPoint, free: DeckPoint, origin: str) -> str:
    """A phase's transient deck: `.ic` at the phase's start, `.tran` over SPAN_TAUS
    predicted time constants, the final node voltages printed."""
    start = start_state(phase, point.anchors, free.nodeset, model.sizes)
    lam, tau = predicted_tau(spec, model, params, phase, point.nodeset)
    net = transient_netlist(spec, model, params, phase, point.anchors, start, float(tau[0]))
    names = [n for layer in state_nodes(model.sizes) for n in layer]
    prints = [f"v({n})[last]" for n in names]
    if phase == "generate":
        prints += [f"i(vclamp{i})[last]" for i in range(model.sizes[0])]
    net.control = (
        ["set numdgt=10", "run", "let last = length(time) - 1", "print time[last]"]
        + ["print " + " ".join(prints[k : k + 8]) for k in range(0, len(prints), 8)]
        + ["quit"]
    )
    amp = model.circuit_rules().amplifier
    _, stop, tmax = tran_window(float(tau[0]))
    counts = net.counts()
    text = render(net)
    net.header = [
        f"{PHASE_TITLES[phase]}: transient relaxation.",
        f"Compiled by analogep from config {spec.name!r} ({network(spec)}, {spec.model.activation}); weights: {origin}.",
        f"Training point: {point.description}.",
        "",
        *(_dynamics_lines(spec, model, phase) if amp is None else _amplifier_lines(amp, phase)),
        f"Linearised at the numpy equilibrium: smallest Hessian eigenvalue lambda_min = {lam[0]:.6g}, so the",
        f"  slowest mode decays with tau = {'C / (g0 lambda_min)' if amp is None else 'that of the lagged circuit'} = "
        f"{tau[0]:.6g} s; the run lasts {SPAN_TAUS:g} tau = {stop:.6g} s",
        f"  (Gear integration, largest step {tmax:.6g} s), after which every node is settled to about exp(-{SPAN_TAUS:g}).",
        f"Elements: {', '.join(f'{n} {k}' for k, n in counts.items())} (X = neuron cells of {net.library}); {len(flatten(text))} after expanding the cells.",
        "Result: the final node voltages V(node)[last], the equilibrium (state units)"
        + ("; I(Vclamp<i>)[last] = -g0 dE/dx_i." if phase == "generate" else "."),
        "Run: ngspice -b THIS_FILE. The waveform is the circuit's relaxation: settling time to a tolerance",
        "  and power over time are measured from it by analogep energy (analogep/spice/transient.py).",
    ]
    text = render(net)
    check_graph(text, TRANSIENT_NAMES[phase])
    return text
