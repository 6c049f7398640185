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

from analogep.circuit.devices import conductance_pairs
from analogep.circuit.netlist import Element, Netlist, fmt
from analogep.config.spec import Spec
from analogep.model.energy import CircuitRules, EnergyModel, Params, State

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
        _neurons(model.sizes, rules, c.g0),
        _anchor_sources(anchors, wanted, model.sizes[0], sweep, net_params),
        _visible_terminations(spec, model.sizes[0], phase, beta, betas),
        _biases(model.sizes, rules, params, c.g0),
    ]
    sections += crossbar if crossbar is not None else crossbar_sections(spec, model, params)[0]
    if c.capacitance > 0:
        caps = [Element(f"C{n}", (n, "0"), fmt(c.capacitance)) for layer in state_nodes(model.sizes) for n in layer]
        sections.append((f"node capacitors {c.capacitance:g} F (time constant C/g0 = {c.capacitance / c.g0:g} s)", caps))
    options = {"reltol": fmt(c.reltol), "vntol": fmt(c.vntol), "abstol": fmt(c.abstol)}
    analysis = f".dc Vidx 0 {points - 1} 1" if sweep else ".op"
    skip = f" + skip rank {spec.model.skip_rank}" if spec.model.skip_rank else ""
    title = f"analogep {spec.name} {'-'.join(map(str, spec.model.sizes))}{skip}: {phase}"
    return Netlist(title, header or [], net_params, sections, analysis, options, _nodeset(model.sizes, phase, nodeset))


Section = tuple[str, list[Element]]


def _neurons(sizes: tuple[int, ...], rules: CircuitRules, g0: float) -> Section:
    """One library cell per neuron, the family's cell for its layer."""
    cells = []
    for layer_nodes, (cell, extra) in zip(state_nodes(sizes), rules.cells):
        value = f"{cell} g0={fmt(g0)}" + "".join(f" {k}={fmt(v)}" for k, v in extra.items())
        cells += [Element(f"X{n}", (n, f"{n}_p", f"{n}_m", f"{n}_s"), value) for n in layer_nodes]
    return (f"neurons: {' + '.join(map(str, sizes))} library cells (leak, drivers, sense, injection)", cells)


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
    return (f"biases: current b*g0 into each neuron's sense line ({len(bias)} non-zero)", bias)


def _nodeset(sizes: tuple[int, ...], phase: str, nodeset: State | None) -> dict[str, float]:
    """ngspice's initial guess from the first point of a state (hidden layers only when
    the visible nodes are clamped)."""
    if nodeset is None:
        return {}
    names = state_nodes(sizes)
    layers, layer_names = (nodeset[1:], names[1:]) if phase == "generate" else (nodeset, names)
    ns: dict[str, float] = {}
    for lnames, values in zip(layer_names, layers):
        ns.update({n: float(v) for n, v in zip(lnames, np.asarray(values)[0])})
    return ns


def crossbar_sections(spec: Spec, model: EnergyModel, params: Params) -> tuple[list[Section], dict[str, int]]:
    """The crossbars of the family's couplings, forward and transposed reads, and clip counts."""
    names = state_nodes(model.sizes)
    sections, clipped = [], {}
    for wname, pre_layer, post_layer in model.circuit_rules().couplings:
        pairs = conductance_pairs(wname, params[wname], spec)
        clipped[wname] = pairs.clipped
        pre, post = names[pre_layer], names[post_layer]
        fwd: list[Element] = []
        bwd: list[Element] = []
        for sign, gmat in (("p", pairs.plus), ("m", pairs.minus)):
            rows, cols = np.nonzero(gmat > 0)
            for j, i in zip(rows.tolist(), cols.tolist()):
                r = fmt(1.0 / gmat[j, i])
                fwd.append(Element(f"R{wname}{sign}_{j}_{i}", (f"{pre[i]}_{sign}", f"{post[j]}_s"), r))
                bwd.append(Element(f"R{wname}{sign}T_{j}_{i}", (f"{post[j]}_{sign}", f"{pre[i]}_s"), r))
        sections.append(
            (
                f"crossbar {wname} ({len(post)} x {len(pre)}) forward read: rows {pre[0]}.. drivers, columns {post[0]}.. sense lines; "
                f"{len(fwd)} devices, {pairs.clipped} clipped",
                fwd,
            )
        )
        sections.append(
            (f"crossbar {wname} transposed read: rows {post[0]}.. drivers, columns {pre[0]}.. sense lines; same conductances", bwd)
        )
    return sections, clipped
