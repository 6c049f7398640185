"""How weights become conductances: the ideal mapping of a weight onto a differential pair
of devices (method.md section 7, 'Devices').

G+ - G- = W g0 with G+/- in [gmin, gmax] (`conductance_pairs`); what the ideal circuit
realises of the parameters (`effective_params`: weights clipped to the window, counted);
and each coupling's forward and transposed copies of the ideal circuit (`ideal_copies`:
one pair read both ways).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogep.config.spec import Spec
from analogep.errors import CircuitError
from analogep.model.energy import EnergyModel, Params


@dataclass(frozen=True)
class Conductances:
    """G+ and G- of one weight matrix, how many weights were clipped to fit, and the read
    gain of the sense amplifiers of its columns: the read realises W = gain (G+ - G-) / g0
    (1: the plain mapping; devices.scale_fraction sets it, devices/crossbar.py)."""

    plus: np.ndarray
    minus: np.ndarray
    clipped: int
    gain: float = 1.0


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
    """The parameters the ideal circuit realises (weights clipped to the range) and clip counts."""
    out, clipped = dict(params), {}
    for name, _, _ in model.circuit_rules().couplings:
        g = conductance_pairs(name, params[name], spec)
        clipped[name] = g.clipped
        if g.clipped:
            out[name] = ((g.plus - g.minus) / spec.circuit.g0).astype(params[name].dtype)
    return out, clipped


Copies = dict[str, tuple[Conductances, Conductances]]


def ideal_copies(spec: Spec, model: EnergyModel, params: Params) -> Copies:
    """Each coupling's (forward, transposed) conductances of the ideal circuit: one
    differential pair per weight, read both ways (the same arrays for both copies)."""
    out: Copies = {}
    for wname, _, _ in model.circuit_rules().couplings:
        pairs = conductance_pairs(wname, params[wname], spec)
        out[wname] = (pairs, pairs)
    return out


def row_loads(spec: Spec, model: EnergyModel, params: Params) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, the total conductance each neuron's +a driver (G+) and -a driver (G-)
    drives, over both crossbars it feeds (forward as pre, transposed as post; with one pair
    read both ways, also what its sense line collects)."""
    plus = [np.zeros(n) for n in model.sizes]
    minus = [np.zeros(n) for n in model.sizes]
    for name, pre, post in model.circuit_rules().couplings:
        g = conductance_pairs(name, params[name], spec)  # (n_post, n_pre)
        plus[pre] += g.plus.sum(axis=0)
        minus[pre] += g.minus.sum(axis=0)
        plus[post] += g.plus.sum(axis=1)
        minus[post] += g.minus.sum(axis=1)
    return plus, minus
