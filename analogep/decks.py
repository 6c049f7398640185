"""The reviewed decks of `analogep compile`: free, +beta, -beta and inference circuits.

One training point per deck, anchors as `.param`s a user can edit, the numpy
equilibrium as `.nodeset`, and a `.control` block that runs `op` and prints the node
voltages, so each file runs as it is with `ngspice -b FILE`. The circuit mapping is
netlist.py's (method.md section 7); this module adds the header a reviewer reads.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .data import load_dataset
from .energy import Params
from .flow import sample_flow_batch
from .graphcheck import check_graph, flatten
from .hopfield import build_energy
from .netlist import LIBRARY, PHASE_TITLES, PHASES, build_netlist, library_text, render, state_nodes
from .phases import NumpyBackend, Nudge, nudge_anchor
from .relax import relax
from .spec import RelaxSpec, Spec

TIGHT = RelaxSpec(solver="fast", free_steps=5000, nudge_steps=5000, tol=1e-12)
_DECK_NAMES = {"free": "free.cir", "nudge_plus": "nudge_plus.cir", "nudge_minus": "nudge_minus.cir", "generate": "generate.cir"}


def _header(spec: Spec, phase: str, origin: str, point: str, counts: dict, flat: int, clipped: dict[str, int]) -> list[str]:
    c, g = spec.circuit, spec.gradep
    sizes = "-".join(map(str, spec.model.sizes))
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
        f"Elements: {kinds} (X = neuron cells of {LIBRARY}); {flat} after expanding the cells.",
        *read,
        "Run: ngspice -b THIS_FILE. Edit the .param anchors to move the training point. On ngspice >= 42",
        "  built with KLU, add 'klu' to .options for a faster solve.",
    ]


def compile_decks(spec: Spec, params: Params, origin: str) -> tuple[dict[str, str], dict[str, int]]:
    """File name -> text of the four decks and the library copy, and the clip counts.

    Nothing is written here: a weight that does not fit raises before any file exists.
    """
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    from .netlist import effective_params

    eff, clipped = effective_params(model, p64, spec)
    data = load_dataset(spec.train.dataset, dtype=np.float64)
    batch = sample_flow_batch(data, 1, np.random.default_rng(spec.train.seed), ot=False)
    numpy = NumpyBackend(model, spec.gradep, TIGHT)
    free = numpy.equilibrium(eff, batch.x_t, None, None)
    anchor = nudge_anchor(batch.x_t, batch.u, spec.gradep)
    x_gen = np.random.default_rng(spec.generate.seed).standard_normal((1, model.sizes[0]))
    gen = relax(model, eff, [x_gen] + model.zeros_state(1)[1:], None, solver="fast", max_steps=5000, tol=1e-12, clamp_visible=True)
    point = f"x_t and target u of flow-matching draw 0 (seed train.seed = {spec.train.seed}, t = {float(batch.t[0, 0]):.4f})"
    setups = {
        "free": ({"xt": batch.x_t}, free.state, point),
        "nudge_plus": ({"xt": batch.x_t, "a": anchor}, numpy.equilibrium(eff, batch.x_t, Nudge(spec.gradep.beta, anchor), free.state).state, point),
        "nudge_minus": ({"xt": batch.x_t, "a": anchor}, numpy.equilibrium(eff, batch.x_t, Nudge(-spec.gradep.beta, anchor), free.state).state, point),
        "generate": ({"xc": x_gen}, gen.state, f"x ~ N(0, I), first noise sample of generate.seed = {spec.generate.seed}"),
    }
    names = [n for layer in state_nodes(model.sizes) for n in layer]
    files: dict[str, str] = {}
    for phase in PHASES:
        anchors, nodeset, where = setups[phase]
        net = build_netlist(spec, model, p64, phase, anchors, sweep=False, nodeset=nodeset)
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
        net.header = _header(spec, phase, origin, where, net.counts(), flat, clipped)
        text = render(net)
        check_graph(text, f"{_DECK_NAMES[phase]}")
        files[_DECK_NAMES[phase]] = text
    files[LIBRARY] = library_text()
    return files, clipped
