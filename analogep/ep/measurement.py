"""Local measurements: velocity read-out and the EP update (method.md sections 3 and 7).

Shared by every backend: from equilibria (numpy states or ngspice node voltages) to the
velocity and the parameter gradient, with nothing but quantities a circuit can measure
locally: the spring displacement (spring current / (lambda g0)) and each weight's
pre- and post-synaptic activities at the nudged equilibria.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from analogep.devices.periphery import MeasurementChain
from analogep.config.sections import GradEPSpec
from analogep.ep.phases import PhaseResult
from analogep.model.energy import EnergyModel, Params
from analogep.model.tensors import params_map


def read_phases(phases: PhaseResult, x_t: np.ndarray, readout: MeasurementChain | None) -> tuple[PhaseResult, np.ndarray]:
    """What the measurement reads of the phases' equilibria: every node voltage once per
    equilibrium, through read noise and the ADC, and the anchor x_t as its DAC applied it
    (the spring current measures x* - x_t). Exact (the phases themselves) without a chain."""
    if readout is None:
        return phases, x_t

    def read(eq):
        return None if eq is None else dataclasses.replace(eq, state=[readout.read(s) for s in eq.state])

    seen = PhaseResult(read(phases.free), read(phases.plus), read(phases.minus), phases.beta)
    return seen, readout.dac(x_t, count=False)


def velocity(x_star: np.ndarray, x_t: np.ndarray, gradep: GradEPSpec) -> np.ndarray:
    """v = alpha lambda (x* - x_t): the spring's pull at equilibrium equals -dE/dx."""
    return gradep.alpha * gradep.lam * (x_star - x_t)


def ep_gradient(
    model: EnergyModel,
    params: Params,
    phases: PhaseResult,
    keep: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> Params:
    """[dE/dtheta(+beta) - dE/dtheta(-beta)] / (2 beta), or the one-sided (+beta, free) form,
    averaged over the training points in `keep` (a boolean mask; default all), each point
    scaled by its objective weight when `weights` is given (the gradient of the weighted loss).

    Symmetric nudging has O(beta^2) bias, one-sided O(beta) (Laborieux et al. 2020).
    """
    if weights is not None and keep is not None:
        weights = weights[keep]

    def terms(state):
        return model.param_terms(params, state if keep is None else [s[keep] for s in state], weights)

    plus = terms(phases.plus.state)
    if phases.minus is not None:
        other, span = terms(phases.minus.state), 2.0 * phases.beta
    else:
        other, span = terms(phases.free.state), phases.beta
    return params_map(lambda a, b: (a - b) / span, plus, other)


def nudge_asymmetry(phases: PhaseResult) -> np.ndarray:
    """Per training point, |d+ + d-| / (|d+| + |d-|) with d = nudged state - free state.

    In the linear-response regime d- = -d+ up to O(beta); a value near 1 means a nudged
    phase jumped to another basin (the point sits near a bifurcation of the energy) and
    its EP estimate is garbage. Zero for two-phase EP, which has no second nudge to compare.
    """
    free = phases.free.state
    if phases.minus is None:
        return np.zeros(free[0].shape[0])
    num = np.zeros(free[0].shape[0])
    den = np.zeros(free[0].shape[0])
    for f, p, m in zip(free, phases.plus.state, phases.minus.state):
        d_plus, d_minus = (p - f).astype(np.float64), (m - f).astype(np.float64)
        num += np.sum((d_plus + d_minus) ** 2, axis=1)
        den += np.sum(d_plus**2, axis=1) + np.sum(d_minus**2, axis=1)
    return np.sqrt(num) / (np.sqrt(2 * den) + 1e-30)
