"""A training batch solved level by level (method.md section 6.3).

With a noise-level-dependent energy (dsm.conditioning: level-bias) the circuit is set to
one level code at a time, as a DAC would set it: the points of a batch are grouped by
their noise level, each group is solved with the backend conditioned on its level
(`EquilibriumBackend.condition`), and the groups' equilibria are put back in batch
order, so the trust checks, the read-out and the loss see one batch as before. The EP
gradient is the mean of the per-point local terms, so it is each group's gradient
(measured with its code applied: the level-bias term -c a^T is gated by the code) weighted
by the group's share of the points. A batch without levels (`groups()` None or absent)
takes the one-pass path unchanged.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.sections import GradEPSpec
from analogep.ep.measurement import ep_gradient
from analogep.ep.phases import PhaseResult, run_phases
from analogep.model.energy import EnergyModel, Params
from analogep.model.tensors import params_map
from analogep.solvers.base import Equilibrium

Groups = list[tuple[np.ndarray, np.ndarray]]  # (level code (K,), row indices) per level present


def level_groups(batch) -> Groups | None:
    """The batch's points grouped by noise level (None: the batch has no levels)."""
    groups = getattr(batch, "groups", None)
    return None if groups is None else groups()


def _rows(eq: Equilibrium | None, rows: np.ndarray) -> Equilibrium | None:
    return None if eq is None else Equilibrium([s[rows] for s in eq.state], eq.sample_residual[rows], eq.iterations)


def phase_rows(phases: PhaseResult, rows: np.ndarray) -> PhaseResult:
    """The phases of some of the points."""
    return PhaseResult(_rows(phases.free, rows), _rows(phases.plus, rows), _rows(phases.minus, rows), phases.beta)


def _merge(parts: list[Equilibrium | None], groups: Groups, size: int) -> Equilibrium | None:
    if parts[0] is None:
        return None
    state = [np.empty((size,) + s.shape[1:], dtype=s.dtype) for s in parts[0].state]
    residual = np.empty(size, dtype=parts[0].sample_residual.dtype)
    for eq, (_, rows) in zip(parts, groups):
        for whole, s in zip(state, eq.state):
            whole[rows] = s
        residual[rows] = eq.sample_residual
    return Equilibrium(state, residual, max(eq.iterations for eq in parts))


def phases_by_level(backend: EquilibriumBackend, batch, gradep: GradEPSpec) -> PhaseResult:
    """The GradEP phases of the batch, each level's points solved at that level."""
    groups = level_groups(batch)
    if groups is None:
        return run_phases(backend, batch.x_t, batch.target, gradep)
    parts = []
    for code, rows in groups:
        backend.condition(code)
        parts.append(run_phases(backend, batch.x_t[rows], batch.target[rows], gradep))
    size = batch.x_t.shape[0]
    return PhaseResult(*(_merge([getattr(p, k) for p in parts], groups, size) for k in ("free", "plus", "minus")),
                       parts[0].beta)


def gradient_by_level(
    model: EnergyModel, params: Params, phases: PhaseResult, keep: np.ndarray, batch, weights: np.ndarray | None
) -> Params:
    """ep_gradient over the kept points, each level's points measured with its code applied."""
    groups = level_groups(batch)
    if groups is None:
        return ep_gradient(model, params, phases, keep, weights)
    total = int(keep.sum())
    out: Params | None = None
    for code, rows in groups:
        kept = keep[rows]
        if not kept.any():
            continue
        model.condition(code)
        part = ep_gradient(model, params, phase_rows(phases, rows), kept, None if weights is None else weights[rows])
        share = float(kept.sum() / total)
        out = params_map(lambda g, share=share: g * share, part) if out is None else \
            params_map(lambda a, g, share=share: a + g * share, out, part)
    return out


def mean_by_level(model: EnergyModel, batch, measure: Callable[[object], Params]) -> Params:
    """A batch mean of per-point terms (a gradient) computed level by level: `measure(sub_batch)`
    with the model conditioned on each level, weighted by the level's share of the points."""
    groups = level_groups(batch)
    if groups is None:
        return measure(batch)
    size = batch.x_t.shape[0]
    out: Params | None = None
    for code, rows in groups:
        model.condition(code)
        part = params_map(lambda g, share=float(len(rows) / size): g * share, measure(batch.subset(rows)))
        out = part if out is None else params_map(lambda a, b: a + b, out, part)
    return out
