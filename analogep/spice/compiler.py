"""Compile the energy network into an analog circuit (method.md section 7).

Spec + parameters -> circuit objects (`Netlist`: sections of `Element`s, params,
options, nodesets) -> SPICE text, rendered in one place (`render`). The same builder
makes the reviewed decks of `analogep compile` (one training point, anchors as
`.param`s, an `.op`) and the decks the SPICE backend solves (a phase's training points
batched into one `.dc` sweep over an index source, anchors tabled as pwl functions of
it; the `interleaved` circuit sweeps every phase of each point in turn, the nudge
strength tabled too). Analog EP on SPICE-simulated networks: Kendall et al. 2020, "Training End-to-End
Analog Neural Networks with Equilibrium Propagation".

The circuit, per method.md section 7 (1 V = 1 state unit, g0 = unit conductance):

- each neuron is a library cell (circuits/analogep.lib) chosen by the energy family
  (`EnergyModel.circuit_rules`): leak g0 to ground, drivers a(s) and -a(s) for the
  crossbar rows, a sense line held at 0 V whose current g0*c is injected into the neuron
  (times rho'(s) on hidden neurons);
- spring: conductance lambda*g0 from x<i> to an anchor source at x_t; nudge: a VCCS
  of transconductance beta*(alpha*lambda)^2*g0 (negative for -beta) controlled by and
  driving the same pair (x<i>, a<i>), which is a (possibly negative) conductance;
- bias b (the family's bias parameters): a current source b*g0 into the neuron's sense line;
- each coupling W (the family's couplings, W_l between layers l and l+1): a crossbar of differential pairs, G+ - G- = W*g0 with G+/- in [gmin, gmax],
  read forward (rows: layer-l drivers, columns: layer-(l+1) sense lines) and
  transposed (rows: layer-(l+1) drivers, columns: layer-l sense lines) with the same
  conductance values. A device of conductance 0 (possible when gmin = 0) is an open
  circuit and is left out.
"""

from __future__ import annotations

import numpy as np

from analogep.devices.mapping import Conductances, Copies, ideal_copies
from analogep.devices.programmed import Programmed
from analogep.spice.library import DRIVER_CELL_SUFFIX, DRIVERS, LIBRARY
from analogep.spice.netlist import Element, Netlist, fmt
from analogep.config.spec import Spec
from analogep.errors import CircuitError
from analogep.model.energy import CircuitRules, EnergyModel, Params, State
from analogep.model.network import Network

PHASES = ("free", "nudge_plus", "nudge_minus", "generate")
# The SPICE backend's one-sweep circuit: every GradEP phase of each training point in turn.
INTERLEAVED = "interleaved"


PHASE_TITLES = {
    "free": "GradEP free phase: spring lambda to the training point x_t, all units relax",
    "nudge_plus": "GradEP +beta phase: spring to x_t plus nudge +beta to the target anchor a",
    "nudge_minus": "GradEP -beta phase: spring to x_t plus nudge -beta (negative conductance) to a",
    "generate": "inference: visible nodes clamped at x, hidden units relax; clamp currents give v(x)",
    INTERLEAVED: "GradEP phases in one sweep: each training point free, +beta, -beta in turn (nudge strength tabled by the sweep index)",
}


# Anchor sources per phase: (node/param prefix, what it is).
_ANCHORS = {
    "free": ("xt",),
    "nudge_plus": ("xt", "a"),
    "nudge_minus": ("xt", "a"),
    "generate": ("xc",),
    INTERLEAVED: ("xt", "a"),
}


def node(layer: int, i: int) -> str:
    """Neuron node name: x<i> (visible) or h<l>_<j> (hidden layer l)."""
    return f"x{i}" if layer == 0 else f"h{layer}_{i}"


def state_nodes(sizes: tuple[int, ...]) -> list[list[str]]:
    return [[node(l, i) for i in range(n)] for l, n in enumerate(sizes)]


def _pwl(values: np.ndarray) -> str:
    """V=pwl(V(idx), 0,v0, 1,v1, ...): an anchor as a function of the sweep index."""
    if values.size == 1:
        values = np.repeat(values, 2)
    pairs = [f"{k},{fmt(v)}" for k, v in enumerate(values)]
    body = ",\n+ ".join(", ".join(pairs[k : k + 6]) for k in range(0, len(pairs), 6))
    return f"V=pwl(V(idx),\n+ {body})"


def build_netlist(
    spec: Spec,
    model: EnergyModel,
    params: Params,
    phase: str,
    anchors: dict[str, np.ndarray],
    *,
    sweep: bool,
    nodeset: State | None = None,
    beta: float | None = None,
    header: list[str] | None = None,
    crossbar: list[tuple[str, list[Element]]] | None = None,
    betas: np.ndarray | None = None,
    drivers: tuple[tuple[np.ndarray | None, np.ndarray | None], ...] | None = None,
) -> Netlist:
    """The circuit of one phase.

    anchors: "xt" (spring anchors x_t), "a" (nudge anchors), "xc" (clamped visible
    values, generate), each (points, n_visible). With sweep=False there is one point:
    anchors are .params and the analysis is .op; with sweep=True the points are swept
    by `.dc Vidx 0 N-1 1` with the anchors as pwl functions of V(idx).
    `nodeset`: a state (first point used) given to ngspice as its initial guess.
    `beta`: signed nudge strength of the nudged phases (default: +-gradep.beta).
    `crossbar`: the crossbar sections from `crossbar_sections` (reused across phases).
    `betas`: phase "interleaved" only (a sweep): the signed nudge strength of each sweep
    point, 0 for a free-phase point.
    `drivers`: per layer, the activation drivers' (gain, offset) per neuron, or None
    (exact); a layer with either takes the drivers.lib variant of its cell.
    """
    if phase not in PHASES + (INTERLEAVED,):
        raise ValueError(f"unknown phase {phase!r}; allowed: {', '.join(PHASES + (INTERLEAVED,))}")
    wanted = _ANCHORS[phase]
    if set(anchors) != set(wanted):
        raise ValueError(f"phase {phase} needs anchors {wanted}, got {tuple(anchors)}")
    points = next(iter(anchors.values())).shape[0]
    if not sweep and points != 1:
        raise ValueError("a deck without a sweep holds exactly one training point")
    if (phase == INTERLEAVED) != (betas is not None) or (betas is not None and (not sweep or len(betas) != points)):
        raise ValueError("the interleaved phase is a sweep with one nudge strength per point (betas), and only it has betas")
    c = spec.circuit
    rules = model.circuit_rules()
    net_params: dict[str, float] = {}
    sections = [
        _neurons(model.sizes, rules, c.g0, drivers),
        _anchor_sources(anchors, wanted, model.sizes[0], sweep, net_params),
        _visible_terminations(spec, model.sizes[0], phase, beta, betas),
        _biases(model.sizes, rules, params, c.g0),
    ]
    sections += crossbar if crossbar is not None else crossbar_sections(spec, model, params)[0]
    if rules.supplies:
        rails = [Element(f"V{name}", (name, "0"), fmt(volts)) for name, volts in rules.supplies]
        sections.append((f"supply rails of the cells ({rules.library}): " + ", ".join(f"{n} {v:g} V" for n, v in rules.supplies), rails))
    if c.capacitance > 0:
        caps = [Element(f"C{n}", (n, "0"), fmt(c.capacitance)) for layer in state_nodes(model.sizes) for n in layer]
        sections.append((f"node capacitors {c.capacitance:g} F (time constant C/g0 = {c.capacitance / c.g0:g} s)", caps))
    abstol = c.abstol
    if rules.sense_abstol is not None and _has_sense_amplifiers(sections):
        abstol = max(abstol, rules.sense_abstol)
    options = {"reltol": fmt(c.reltol), "vntol": fmt(c.vntol), "abstol": fmt(abstol)}
    analysis = f".dc Vidx 0 {points - 1} 1" if sweep else ".op"
    skip = f" + skip rank {spec.model.skip_rank}" if spec.model.skip_rank else ""
    title = f"analogep {spec.name} {'-'.join(map(str, spec.model.sizes))}{skip}: {phase}"
    guess = _nodeset(model, params, phase, nodeset)
    if rules.swing is not None and guess:
        _check_swing(guess, rules.swing)
    net = Netlist(title, header or [], net_params, sections, analysis, options, guess, library=rules.library)
    if drivers is not None and any(g is not None or o is not None for g, o in drivers) and rules.library == LIBRARY:
        net.extra_libraries = (DRIVERS,)  # analogep.lib's driver variants; a family's own library holds its own
    return net


Section = tuple[str, list[Element]]


def _neurons(sizes: tuple[int, ...], rules: CircuitRules, g0: float, drivers=None) -> Section:
    """One library cell per neuron, the family's cell for its layer (its drivers.lib
    variant, with the neuron's driver gain and offset, where `drivers` has them)."""
    cells = []
    drivers = drivers or [(None, None)] * len(sizes)
    for layer_nodes, (cell, extra), (gain, offset) in zip(state_nodes(sizes), rules.cells, drivers):
        value = f"{cell} g0={fmt(g0)}" + "".join(f" {k}={fmt(v)}" for k, v in extra.items())
        if gain is None and offset is None:
            cells += [Element(f"X{n}", (n, f"{n}_p", f"{n}_m", f"{n}_s"), value) for n in layer_nodes]
            continue
        value = value.replace(cell, cell + DRIVER_CELL_SUFFIX, 1)
        for i, n in enumerate(layer_nodes):
            g = 1.0 if gain is None else float(gain[i])
            o = 0.0 if offset is None else float(offset[i])
            cells.append(Element(f"X{n}", (n, f"{n}_p", f"{n}_m", f"{n}_s"), f"{value} gain={fmt(g)} offset={fmt(o)}"))
    mismatch = " (drivers with per-neuron gain and offset: drivers.lib)" if any(g is not None or o is not None for g, o in drivers) else ""
    return (f"neurons: {' + '.join(map(str, sizes))} library cells (leak, drivers, sense, injection){mismatch}", cells)


def _anchor_sources(anchors: dict[str, np.ndarray], wanted: tuple[str, ...], n_vis: int, sweep: bool, net_params: dict) -> Section:
    """Sources at x_t (spring), a (nudge) or the clamped x (generate): .params of one
    point, or pwl tables of the sweep index (adds the index source)."""
    src: list[Element] = [Element("Vidx", ("idx", "0"), "0")] if sweep else []
    for kind in wanted:
        values = np.asarray(anchors[kind], dtype=np.float64)
        for i in range(n_vis):
            anchor_node = f"{kind}{i}"
            if sweep:
                src.append(Element(f"B{kind}{i}", (anchor_node, "0"), _pwl(values[:, i])))
            else:
                net_params[f"{kind}_{i}"] = float(values[0, i])
                src.append(Element(f"V{kind}{i}", (anchor_node, "0"), f"{{{kind}_{i}}}"))
    how = ": pwl tables of the sweep index V(idx)" if sweep else ": .params above"
    return ("anchor sources (" + ", ".join(wanted) + ")" + how, src)


def _visible_terminations(spec: Spec, n_vis: int, phase: str, beta: float | None, betas: np.ndarray | None = None) -> Section:
    """Springs and nudges on the visible nodes, or the clamps of the inference circuit.
    Interleaved phases: V(nudge) = beta/gradep.beta, a pwl table of the sweep index, and
    each nudge is a B-source conductance gradep.beta (alpha lambda)^2 g0 V(nudge)."""
    c, g = spec.circuit, spec.gradep
    visible = [node(0, i) for i in range(n_vis)]
    if phase == "generate":
        clamps = [Element(f"Vclamp{i}", (visible[i], f"xc{i}"), "0") for i in range(n_vis)]
        return ("clamps: 0 V ammeters from x<i> to its clamp source; I(Vclamp<i>) = -g0 dE/dx_i", clamps)
    r = fmt(1.0 / (g.lam * c.g0))
    elements = [Element(f"Rspring{i}", (visible[i], f"xt{i}"), r) for i in range(n_vis)]
    title = f"springs: lambda*g0 = {g.lam * c.g0:g} S from x<i> to xt<i>"
    if phase == INTERLEAVED:
        gm = fmt(g.beta * (g.alpha * g.lam) ** 2 * c.g0)
        elements.append(Element("Bnudge", ("nudge", "0"), _pwl(np.asarray(betas, dtype=np.float64) / g.beta)))
        elements += [
            Element(f"Bnudge{i}", (visible[i], f"a{i}"), f"I={gm}*V(nudge)*(V({visible[i]})-V(a{i}))") for i in range(n_vis)
        ]
        title += f"; nudges: conductance {gm} S * V(nudge) from x<i> to a<i>, V(nudge) = beta/{g.beta:g} of the sweep point"
    elif phase != "free":
        if beta is None:
            beta = g.beta if phase == "nudge_plus" else -g.beta
        gm = fmt(beta * (g.alpha * g.lam) ** 2 * c.g0)
        elements += [Element(f"Gnudge{i}", (visible[i], f"a{i}", visible[i], f"a{i}"), gm) for i in range(n_vis)]
        title += f"; nudges: VCCS (= conductance) beta*(alpha*lambda)^2*g0 = {gm} S from x<i> to a<i>"
    return (title, elements)


def _biases(sizes: tuple[int, ...], rules: CircuitRules, params: Params, g0: float) -> Section:
    """A current source b*g0 into each neuron's sense line (zero biases are left out)."""
    names = state_nodes(sizes)
    bias: list[Element] = []
    for name, layer in rules.biases:
        for i, b in enumerate(np.asarray(params[name], dtype=np.float64)):
            if b != 0.0:
                bias.append(Element(f"I{name.replace('_', '')}_{i}", ("0", f"{names[layer][i]}_s"), fmt(b * g0)))
    for name, layer, current in rules.level_biases:  # the noise level's biases (c^T B at the level applied)
        for i, b in enumerate(np.asarray(current(params), dtype=np.float64)):
            if b != 0.0:
                bias.append(Element(f"I{name.replace('_', '')}_{i}", ("0", f"{names[layer][i]}_s"), fmt(b * g0)))
    return (f"biases: current b*g0 into each neuron's sense line ({len(bias)} non-zero)", bias)


def _check_swing(guess: dict[str, float], swing: float) -> None:
    """Refuse a circuit whose equilibrium (numpy's, the .nodeset) needs an amplifier output
    beyond what its rails let it hold."""
    node, volts = max(guess.items(), key=lambda kv: abs(kv[1]))
    if abs(volts) > swing:
        over = sum(1 for v in guess.values() if abs(v) > swing)
        raise CircuitError(
            f"the amplifiers cannot reach the needed swing: node {node} needs {volts:.4g} V at the equilibrium, beyond "
            f"the +-{swing:g} V the op-amps hold within their rails ({over} nodes over)"
        )


def _nodeset(model: EnergyModel, params: Params, phase: str, nodeset: State | None) -> dict[str, float]:
    """ngspice's initial guess from the first point of a state (hidden layers only when
    the visible nodes are clamped), and the cells' internal nodes where a family's layers
    name them (`Layer.cell_nodeset`, from the state and its drives)."""
    if nodeset is None:
        return {}
    names = state_nodes(model.sizes)
    first = [np.asarray(values, dtype=np.float64)[:1] for values in nodeset]
    start = 1 if phase == "generate" else 0
    ns: dict[str, float] = {}
    for lnames, values in zip(names[start:], first[start:]):
        ns.update({n: float(v) for n, v in zip(lnames, values[0])})
    layers = model.layers if isinstance(model, Network) else ()
    internal = [layer.cell_nodeset(first[l], np.zeros_like(first[l])) for l, layer in enumerate(layers)]
    if any(internal):
        p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        for l, layer in enumerate(layers):
            if not internal[l]:
                continue
            drive = model.layer_drive(p64, first, l)
            for inner, values in layer.cell_nodeset(first[l], drive).items():
                ns.update({f"x{n}.{inner}": float(v) for n, v in zip(names[l], np.asarray(values)[0])})
    return ns


def crossbar_sections(
    spec: Spec, model: EnergyModel, params: Params, copies: Copies | None = None, wire_resistance: float = 0.0
) -> tuple[list[Section], dict[str, int]]:
    """The crossbars of the family's couplings, forward and transposed reads, and clip counts.

    `copies`: per coupling, the (forward, transposed) conductances, each (n_post, n_pre)
    (default `ideal_copies`: one pair read both ways); a realised circuit gives each copy
    its own device draw. `wire_resistance` > 0 (ohm per segment) draws every row and column
    line as a ladder of segments between adjacent device taps (`_wired`)."""
    if wire_resistance < 0 or not np.isfinite(wire_resistance):
        raise ValueError(f"wire_resistance must be finite and >= 0, got {wire_resistance!r}")
    copies = ideal_copies(spec, model, params) if copies is None else copies
    names = state_nodes(model.sizes)
    sections, clipped = [], {}
    rules = model.circuit_rules()
    for wname, pre_layer, post_layer in rules.couplings:
        fwd_g, bwd_g = copies[wname]
        clipped[wname] = fwd_g.clipped
        pre, post = names[pre_layer], names[post_layer]
        same = bwd_g is fwd_g or (np.array_equal(bwd_g.plus, fwd_g.plus) and np.array_equal(bwd_g.minus, fwd_g.minus))
        if fwd_g.gain != 1.0 or bwd_g.gain != 1.0:
            sections += _sense_amplifiers(wname, pre, post, fwd_g.gain, bwd_g.gain)
        fsense = _sense_lines(wname, "f", post, fwd_g.gain)
        tsense = _sense_lines(wname, "t", pre, bwd_g.gain)
        if wire_resistance > 0:
            sections += _wired(wname, pre, post, fwd_g, bwd_g, same, wire_resistance, fsense, tsense)
            continue
        fwd: list[Element] = []
        bwd: list[Element] = []
        for sign, gf, gb in (("p", fwd_g.plus, bwd_g.plus), ("m", fwd_g.minus, bwd_g.minus)):
            for j, i in zip(*(a.tolist() for a in np.nonzero(gf > 0))):
                fwd.append(Element(f"R{wname}{sign}_{j}_{i}", (f"{pre[i]}_{sign}", fsense[j]), fmt(1.0 / gf[j, i])))
            for j, i in zip(*(a.tolist() for a in np.nonzero(gb > 0))):
                bwd.append(Element(f"R{wname}{sign}T_{j}_{i}", (f"{post[j]}_{sign}", tsense[i]), fmt(1.0 / gb[j, i])))
        sections.append(
            (
                f"crossbar {wname} ({len(post)} x {len(pre)}) forward read: rows {pre[0]}.. drivers, columns {post[0]}.. sense lines; "
                f"{len(fwd)} devices, {fwd_g.clipped} clipped",
                fwd,
            )
        )
        copy = "same conductances" if same else f"its own device draw, {len(bwd)} devices"
        sections.append((f"crossbar {wname} transposed read: rows {post[0]}.. drivers, columns {pre[0]}.. sense lines; {copy}", bwd))
    return sections, clipped


def _sense_lines(wname: str, tag: str, neurons: list[str], gain: float) -> list[str]:
    """The nodes one read's columns end on: the neurons' sense lines, or (a read gain other
    than 1) the inputs of that read's own sense amplifiers (`_sense_amplifiers`)."""
    return [f"{n}_s" if gain == 1.0 else f"{n}_{wname}{tag}s" for n in neurons]


def _sense_amplifiers(wname: str, pre: list[str], post: list[str], fgain: float, tgain: float) -> list[Section]:
    """Weight scaling (devices.scale_fraction): each column of a scaled read ends on its own
    virtual ground (a 0 V source that senses its current I) and a current amplifier of gain
    k (a CCCS) injects k I into the neuron's sense line, so the read realises
    W = k (G+ - G-) / g0 (aihwkit's weight_scaling_omega, undone at the output)."""
    out: list[Section] = []
    for tag, neurons, gain, read in (("f", post, fgain, "forward"), ("t", pre, tgain, "transposed")):
        if gain == 1.0:
            continue
        elements: list[Element] = []
        for n in neurons:
            node = f"{n}_{wname}{tag}s"
            elements.append(Element(f"V{wname}{tag}s_{n}", (node, "0"), "0"))
            elements.append(Element(f"F{wname}{tag}s_{n}", ("0", f"{n}_s"), f"V{wname}{tag}s_{n} {fmt(gain)}"))
        out.append((f"crossbar {wname} {read} read: sense amplifiers of read gain {gain:g} (weight scaling): "
                    f"0 V source per column, CCCS into the neuron's sense line", elements))
    return out


def _has_sense_amplifiers(sections: list[Section]) -> bool:
    """Whether a deck's crossbars read through sense amplifiers (a read gain: its CCCS)."""
    return any(e.name.startswith("F") for _, elements in sections for e in elements)


def programmed_crossbar(drawn: Programmed, model: EnergyModel) -> list[Section]:
    """The crossbar sections of one programming (forward and transposed reads, line resistance)."""
    return crossbar_sections(drawn.spec, model, drawn.params, drawn.copies, drawn.wire_resistance)[0]


def _wired(
    wname: str, pre: list[str], post: list[str], fwd_g: Conductances, bwd_g: Conductances, same: bool, r_wire: float,
    fsense: list[str] | None = None, tsense: list[str] | None = None,
) -> list[Section]:
    """Both reads of one coupling with line resistance (IR drop; Chen et al. 2018, NeuroSim).

    Each read is a physical array: rows 2i and 2i+1 carry driver <in_i>_p (the G+
    devices) and <in_i>_m (the G- devices) of input neuron i; column j collects the
    devices of output neuron j. A row is driven at its left end and runs past every
    column; a column runs down past every row to its sense amplifier at the bottom end
    (the virtual ground <out_j>_s). Every line is a ladder: one segment R_wire between
    the driver and the first tap, and between adjacent taps; one segment between the
    last tap and the sense line. A device sits between its row tap <W><f|t>r<k>_<j> and
    its column tap <W><f|t>c<k>_<j>; taps without a device (G = 0) still carry the line.
    """
    out: list[Section] = []
    r = fmt(r_wire)
    fsense = [f"{n}_s" for n in post] if fsense is None else fsense
    tsense = [f"{n}_s" for n in pre] if tsense is None else tsense
    for tag, rows_of, cols, g, dev, sense in (
        ("f", pre, post, fwd_g, lambda s, j, i: f"R{wname}{s}_{j}_{i}", fsense),
        ("t", post, pre, bwd_g, lambda s, j, i: f"R{wname}{s}T_{j}_{i}", tsense),
    ):
        # Forward: G[j, i] couples input i (row pair) to output j (column); transposed: G[j, i]
        # couples input j to output i.
        devices: list[Element] = []
        wires: list[Element] = []
        n_rows, n_cols = 2 * len(rows_of), len(cols)
        for k in range(n_rows):
            i, sign = k // 2, "pm"[k % 2]
            gmat = g.plus if sign == "p" else g.minus
            driver = f"{rows_of[i]}_{sign}"
            for col in range(n_cols):
                prev = driver if col == 0 else f"{wname}{tag}r{k}_{col - 1}"
                wires.append(Element(f"RL{wname}{tag}r_{k}_{col}", (prev, f"{wname}{tag}r{k}_{col}"), r))
                gv = gmat[col, i] if tag == "f" else gmat[i, col]
                if gv > 0:
                    name = dev(sign, col, i) if tag == "f" else dev(sign, i, col)
                    devices.append(Element(name, (f"{wname}{tag}r{k}_{col}", f"{wname}{tag}c{k}_{col}"), fmt(1.0 / gv)))
        for col in range(n_cols):
            for k in range(n_rows):
                nxt = sense[col] if k == n_rows - 1 else f"{wname}{tag}c{k + 1}_{col}"
                wires.append(Element(f"RL{wname}{tag}c_{k}_{col}", (f"{wname}{tag}c{k}_{col}", nxt), r))
        read = "forward" if tag == "f" else "transposed"
        draw = f"{g.clipped} clipped" if tag == "f" else ("same conductances" if same else "its own device draw")
        out.append(
            (
                f"crossbar {wname} {read} read ({n_rows} rows: {rows_of[0]}_p, {rows_of[0]}_m, .. drivers; {n_cols} columns: "
                f"{cols[0]}_s.. sense lines): {len(devices)} devices between row and column taps; {draw}",
                devices,
            )
        )
        out.append(
            (
                f"crossbar {wname} {read} read: line resistance {r_wire:g} ohm per segment; rows driven at the left end "
                f"(RL{wname}{tag}r_<row>_<col>: the segment into tap <col>), columns sensed at the bottom end "
                f"(RL{wname}{tag}c_<row>_<col>: the segment below tap <row>); {len(wires)} segments",
                wires,
            )
        )
    return out
