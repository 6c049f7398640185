"""Local measurements: velocity read-out and the EP update (method.md sections 3 and 7).

Shared by every backend: from equilibria (numpy states or ngspice node voltages) to the
velocity and the parameter gradient, with nothing but quantities a circuit can measure
locally: the spring displacement (spring current / (lambda g0)) and each weight's
pre- and post-synaptic activities at the nudged equilibria.
"""

from __future__ import annotations

import numpy as np

from .energy import EnergyModel, Params, params_map
from .phases import PhaseResult
from .spec import GradEPSpec


def velocity(x_star: np.ndarray, x_t: np.ndarray, gradep: GradEPSpec) -> np.ndarray:
    """v = alpha lambda (x* - x_t): the spring's pull at equilibrium equals -dE/dx."""
    return gradep.alpha * gradep.lam * (x_star - x_t)


def ep_gradient(model: EnergyModel, params: Params, phases: PhaseResult) -> Params:
    """[dE/dtheta(+beta) - dE/dtheta(-beta)] / (2 beta), or the one-sided (+beta, free) form.

    Symmetric nudging has O(beta^2) bias, one-sided O(beta) (Laborieux et al. 2020).
    """
    plus = model.param_terms(params, phases.plus.state)
    if phases.minus is not None:
        other, span = model.param_terms(params, phases.minus.state), 2.0 * phases.beta
    else:
        other, span = model.param_terms(params, phases.free.state), phases.beta
    return params_map(lambda a, b: (a - b) / span, plus, other)


def flow_loss(v: np.ndarray, u: np.ndarray) -> float:
    """Mean over batch and pixels of (v - u)^2 (the gradient is of 1/2 sum over pixels)."""
    return float(np.mean(np.square(v - u, dtype=np.float64)))


def nudge_asymmetry(phases: PhaseResult) -> float:
    """max over the batch of |d+ + d-| / (|d+| + |d-|), d = nudged x - free x.

    In the linear-response regime d- = -d+ up to O(beta); a value near 1 means a nudged
    phase jumped to another basin and the EP estimate is garbage.
    """
    if phases.minus is None:
        return 0.0
    x = phases.free.state[0]
    d_plus, d_minus = phases.plus.state[0] - x, phases.minus.state[0] - x
    num = np.linalg.norm(d_plus + d_minus, axis=1)
    den = np.linalg.norm(d_plus, axis=1) + np.linalg.norm(d_minus, axis=1) + 1e-30
    return float(np.max(num / den))
