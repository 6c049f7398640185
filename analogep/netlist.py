"""Compile the energy network into an analog circuit (method.md section 7).

Spec + parameters -> circuit objects (`Netlist`: sections of `Element`s, params,
options, nodesets) -> SPICE text, rendered in one place (`render`). The same builder
makes the reviewed decks of `analogep compile` (one training point, anchors as
`.param`s, an `.op`) and the decks the SPICE backend solves (a phase's training points
batched into one `.dc` sweep over an index source, anchors tabled as pwl functions of
it). Analog EP on SPICE-simulated networks: Kendall et al. 2020, "Training End-to-End
Analog Neural Networks with Equilibrium Propagation".

The circuit, per method.md section 7 (1 V = 1 state unit, g0 = unit conductance):

- each neuron is a library cell (circuits/analogep.lib): leak g0 to ground, drivers
  a(s) and -a(s) for the crossbar rows, a sense line held at 0 V whose current g0*c is
  injected into the neuron (times rho'(s) on hidden neurons);
- spring: conductance lambda*g0 from x<i> to an anchor source at x_t; nudge: a VCCS
  of transconductance beta*(alpha*lambda)^2*g0 (negative for -beta) controlled by and
  driving the same pair (x<i>, a<i>), which is a (possibly negative) conductance;
- bias b: a current source b*g0 into the neuron's sense line;
- W_l: a crossbar of differential pairs, G+ - G- = W*g0 with G+/- in [gmin, gmax],
  read forward (rows: layer-l drivers, columns: layer-(l+1) sense lines) and
  transposed (rows: layer-(l+1) drivers, columns: layer-l sense lines) with the same
  conductance values. A device of conductance 0 (possible when gmin = 0) is an open
  circuit and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .energy import EnergyModel, Params, State
from .errors import AnalogepError
from .spec import Spec

LIBRARY = "analogep.lib"
PHASES = ("free", "nudge_plus", "nudge_minus", "generate")
PHASE_TITLES = {
    "free": "GradEP free phase: spring lambda to the training point x_t, all units relax",
    "nudge_plus": "GradEP +beta phase: spring to x_t plus nudge +beta to the target anchor a",
    "nudge_minus": "GradEP -beta phase: spring to x_t plus nudge -beta (negative conductance) to a",
    "generate": "inference: visible nodes clamped at x, hidden units relax; clamp currents give v(x)",
}
# Anchor sources per phase: (node/param prefix, what it is).
_ANCHORS = {
    "free": ("xt",),
    "nudge_plus": ("xt", "a"),
    "nudge_minus": ("xt", "a"),
    "generate": ("xc",),
}


class CircuitError(AnalogepError):
    """A circuit that cannot be built or solved; the message names what and where."""


def library_text() -> str:
    """The subcircuit library shipped with the package (circuits/analogep.lib)."""
    return resources.files("analogep.circuits").joinpath(LIBRARY).read_text()


def fmt(v: float) -> str:
    """A number as SPICE reads it, exact to 12 significant digits."""
    return f"{float(v):.12g}"


def node(layer: int, i: int) -> str:
    """Neuron node name: x<i> (visible) or h<l>_<j> (hidden layer l)."""
    return f"x{i}" if layer == 0 else f"h{layer}_{i}"


def state_nodes(sizes: tuple[int, ...]) -> list[list[str]]:
    return [[node(l, i) for i in range(n)] for l, n in enumerate(sizes)]


# --- weights to conductances ---------------------------------------------------------------------


@dataclass(frozen=True)
class Conductances:
    """G+ and G- of one weight matrix, and how many weights were clipped to fit."""

    plus: np.ndarray
    minus: np.ndarray
    clipped: int


def conductance_pairs(name: str, w: np.ndarray, spec: Spec) -> Conductances:
    """G+ - G- = W g0 with G+/- in [gmin, gmax]; error (or clip, counted) when |W| g0 > gmax - gmin."""
    c = spec.circuit
    span = c.gmax - c.gmin
    g = np.asarray(w, dtype=np.float64) * c.g0
    over = np.abs(g) > span * (1 + 1e-12)
    n_over = int(over.sum())
    if n_over and not c.clip:
        raise CircuitError(
            f"{name}: {n_over} of {g.size} weights do not fit the conductance range: |W| g0 must be <= "
            f"gmax - gmin = {span:g} S (|W| <= {span / c.g0:g}; largest |W| = {np.abs(w).max():.4g}); "
            f"set circuit.clip: true to clip them, or raise circuit.gmax / lower circuit.g0"
        )
    g = np.clip(g, -span, span)
    return Conductances(c.gmin + np.maximum(g, 0.0), c.gmin + np.maximum(-g, 0.0), n_over)


def effective_params(model: EnergyModel, params: Params, spec: Spec) -> tuple[Params, dict[str, int]]:
    """The parameters the circuit realises (weights clipped to the range) and clip counts."""
    out, clipped = dict(params), {}
    for l in range(len(model.sizes) - 1):
        name = f"W{l}"
        g = conductance_pairs(name, params[name], spec)
        clipped[name] = g.clipped
        if g.clipped:
            out[name] = ((g.plus - g.minus) / spec.circuit.g0).astype(params[name].dtype)
    return out, clipped


# --- circuit objects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One SPICE element line: name (its first letter is its kind), nodes, value or model."""

    name: str
    nodes: tuple[str, ...]
    value: str

    def line(self) -> str:
        return f"{self.name} {' '.join(self.nodes)} {self.value}"


@dataclass
class Netlist:
    """A deck as objects; `render` is the only place that turns it into text."""

    title: str
    header: list[str]
    params: dict[str, float]
    sections: list[tuple[str, list[Element]]]
    analysis: str
    options: dict[str, str | None] = field(default_factory=dict)
    nodeset: dict[str, float] = field(default_factory=dict)
    saves: list[str] = field(default_factory=list)
    control: list[str] = field(default_factory=list)
    clipped: dict[str, int] = field(default_factory=dict)

    @property
    def elements(self) -> list[Element]:
        return [e for _, elements in self.sections for e in elements]

    def counts(self) -> dict[str, int]:
        """Top-level elements by kind (X = library neuron cells)."""
        out: dict[str, int] = {}
        for e in self.elements:
            out[e.name[0].upper()] = out.get(e.name[0].upper(), 0) + 1
        return dict(sorted(out.items()))


def _wrap(prefix: str, items: list[str], per_line: int = 8) -> list[str]:
    """prefix item item ... with + continuation lines."""
    lines = []
    for k in range(0, len(items), per_line):
        lines.append(("+ " if k else prefix + " ") + " ".join(items[k : k + per_line]))
    return lines


def render(net: Netlist, include: str = LIBRARY) -> str:
    """SPICE text of a Netlist: header, include, params, options, elements, analysis, control.

    `include`: path of the subcircuit library as the deck names it (the compiled decks
    sit beside a copy of it; the backend's decks name the packaged file).
    """
    out = [net.title]
    out += [f"* {h}" if h else "*" for h in net.header]
    out.append(f".include {include}")
    if net.params:
        out.append("")
        out += _wrap(".param", [f"{k}={fmt(v)}" for k, v in net.params.items()], per_line=4)
    opts = [k if v is None else f"{k}={v}" for k, v in net.options.items()]
    if opts:
        out.append(".options " + " ".join(opts))
    for title, elements in net.sections:
        out.append("")
        out.append(f"* --- {title}")
        out += [e.line() for e in elements]
    if net.nodeset:
        out.append("")
        out += _wrap(".nodeset", [f"v({k})={v:.6g}" for k, v in net.nodeset.items()], per_line=6)
    out.append("")
    if net.saves:
        out += _wrap(".save", net.saves, per_line=10)
    out.append(net.analysis)
    if net.control:
        out += [".control", *net.control, ".endc"]
    out.append(".end")
    return "\n".join(out) + "\n"


# --- the builder ---------------------------------------------------------------------------------


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
) -> Netlist:
    """The circuit of one phase.

    anchors: "xt" (spring anchors x_t), "a" (nudge anchors), "xc" (clamped visible
    values, generate), each (points, n_visible). With sweep=False there is one point:
    anchors are .params and the analysis is .op; with sweep=True the points are swept
    by `.dc Vidx 0 N-1 1` with the anchors as pwl functions of V(idx).
    `nodeset`: a state (first point used) given to ngspice as its initial guess.
    `beta`: signed nudge strength of the nudged phases (default: +-gradep.beta).
    `crossbar`: the crossbar sections from `crossbar_sections` (reused across phases).
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; allowed: {', '.join(PHASES)}")
    c, g = spec.circuit, spec.gradep
    sizes = model.sizes
    n_vis = sizes[0]
    points = next(iter(anchors.values())).shape[0]
    if not sweep and points != 1:
        raise ValueError("a deck without a sweep holds exactly one training point")
    names = state_nodes(sizes)
    net_params: dict[str, float] = {}
    sections: list[tuple[str, list[Element]]] = []

    # Neuron cells.
    cells = [Element(f"X{n}", (n, f"{n}_p", f"{n}_m", f"{n}_s"), f"visible g0={fmt(c.g0)}") for n in names[0]]
    cell = "hidden_soft_silu" if model.rho.name == "soft_silu" else "hidden_silu"
    extra = f" clamp={fmt(model.rho.clamp)}" if model.rho.name == "soft_silu" else ""
    for layer in names[1:]:
        cells += [Element(f"X{n}", (n, f"{n}_p", f"{n}_m", f"{n}_s"), f"{cell} g0={fmt(c.g0)}{extra}") for n in layer]
    sections.append((f"neurons: {' + '.join(map(str, sizes))} library cells (leak, drivers, sense, injection)", cells))

    # Anchors: sources at x_t (spring), a (nudge) or the clamped x (generate).
    wanted = _ANCHORS[phase]
    if set(anchors) != set(wanted):
        raise ValueError(f"phase {phase} needs anchors {wanted}, got {tuple(anchors)}")
    src: list[Element] = []
    if sweep:
        src.append(Element("Vidx", ("idx", "0"), "0"))
    for kind in wanted:
        values = np.asarray(anchors[kind], dtype=np.float64)
        for i in range(n_vis):
            anchor_node = f"{kind}{i}"
            if sweep:
                src.append(Element(f"B{kind}{i}", (anchor_node, "0"), _pwl(values[:, i])))
            else:
                net_params[f"{kind}_{i}"] = float(values[0, i])
                src.append(Element(f"V{kind}{i}", (anchor_node, "0"), f"{{{kind}_{i}}}"))
    sections.append(("anchor sources (" + ", ".join(wanted) + ")" + (": pwl tables of the sweep index V(idx)" if sweep else ": .params above"), src))

    # Springs, nudges or clamps on the visible nodes.
    vis: list[Element] = []
    if phase == "generate":
        vis += [Element(f"Vclamp{i}", (names[0][i], f"xc{i}"), "0") for i in range(n_vis)]
        title = "clamps: 0 V ammeters from x<i> to its clamp source; I(Vclamp<i>) = -g0 dE/dx_i"
    else:
        r = fmt(1.0 / (g.lam * c.g0))
        vis += [Element(f"Rspring{i}", (names[0][i], f"xt{i}"), r) for i in range(n_vis)]
        title = f"springs: lambda*g0 = {g.lam * c.g0:g} S from x<i> to xt<i>"
        if phase != "free":
            if beta is None:
                beta = g.beta if phase == "nudge_plus" else -g.beta
            gm = fmt(beta * (g.alpha * g.lam) ** 2 * c.g0)
            vis += [Element(f"Gnudge{i}", (names[0][i], f"a{i}", names[0][i], f"a{i}"), gm) for i in range(n_vis)]
            title += f"; nudges: VCCS (= conductance) beta*(alpha*lambda)^2*g0 = {gm} S from x<i> to a<i>"
    sections.append((title, vis))

    # Biases: current sources into the sense lines.
    bias: list[Element] = []
    for layer, name in [(0, "b_x")] + [(l + 1, f"b{l}") for l in range(len(sizes) - 1)]:
        for i, b in enumerate(np.asarray(params[name], dtype=np.float64)):
            if b != 0.0:
                bias.append(Element(f"I{name.replace('_', '')}_{i}", ("0", f"{names[layer][i]}_s"), fmt(b * c.g0)))
    sections.append((f"biases: current b*g0 into each neuron's sense line ({len(bias)} non-zero)", bias))

    clipped: dict[str, int] = {}
    if crossbar is None:
        crossbar, clipped = crossbar_sections(spec, model, params)
    sections += crossbar

    caps: list[Element] = []
    if c.capacitance > 0:
        caps = [Element(f"C{n}", (n, "0"), fmt(c.capacitance)) for layer in names for n in layer]
        sections.append((f"node capacitors {c.capacitance:g} F (time constant C/g0 = {c.capacitance / c.g0:g} s)", caps))

    options = {"reltol": fmt(c.reltol), "vntol": fmt(c.vntol), "abstol": fmt(c.abstol)}
    ns: dict[str, float] = {}
    if nodeset is not None:
        layers = nodeset[1:] if phase == "generate" else nodeset
        layer_names = names[1:] if phase == "generate" else names
        for lnames, values in zip(layer_names, layers):
            ns.update({n: float(v) for n, v in zip(lnames, np.asarray(values)[0])})
    analysis = f".dc Vidx 0 {points - 1} 1" if sweep else ".op"
    title = f"analogep {spec.name} {'-'.join(map(str, sizes))}: {phase}"
    return Netlist(title, header or [], net_params, sections, analysis, options, ns, clipped=clipped)


def crossbar_sections(spec: Spec, model: EnergyModel, params: Params) -> tuple[list[tuple[str, list[Element]]], dict[str, int]]:
    """The crossbars of all weight matrices, forward and transposed reads, and clip counts."""
    names = state_nodes(model.sizes)
    sections, clipped = [], {}
    for l in range(len(model.sizes) - 1):
        wname = f"W{l}"
        pairs = conductance_pairs(wname, params[wname], spec)
        clipped[wname] = pairs.clipped
        pre, post = names[l], names[l + 1]
        fwd: list[Element] = []
        bwd: list[Element] = []
        for sign, gmat in (("p", pairs.plus), ("m", pairs.minus)):
            rows, cols = np.nonzero(gmat > 0)
            for j, i in zip(rows.tolist(), cols.tolist()):
                r = fmt(1.0 / gmat[j, i])
                fwd.append(Element(f"R{wname}{sign}_{j}_{i}", (f"{pre[i]}_{sign}", f"{post[j]}_s"), r))
                bwd.append(Element(f"R{wname}{sign}T_{j}_{i}", (f"{post[j]}_{sign}", f"{pre[i]}_s"), r))
        n_l, n_next = model.sizes[l], model.sizes[l + 1]
        sections.append(
            (
                f"crossbar {wname} ({n_next} x {n_l}) forward read: rows {pre[0]}.. drivers, columns {post[0]}.. sense lines; "
                f"{len(fwd)} devices, {pairs.clipped} clipped",
                fwd,
            )
        )
        sections.append(
            (f"crossbar {wname} transposed read: rows {post[0]}.. drivers, columns {pre[0]}.. sense lines; same conductances", bwd)
        )
    return sections, clipped
