"""What every relaxation solver shares: the springs on the visible units, the equilibrium
it returns, the total gradient it descends, the start of a free phase (method.md
section 3), and the interface a solver offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from analogep.model.field import LayeredField, Params, State

if TYPE_CHECKING:
    from analogep.config import RelaxSpec


def sample_max_abs(state: State) -> np.ndarray:
    """Per batch element, the largest absolute entry over all layers (max |dE/ds| of a
    gradient; NaN where a layer holds NaN, e.g. a node ngspice gave no voltage for)."""
    return np.max(np.stack([np.max(np.abs(layer), axis=1) for layer in state]), axis=0)


@dataclass(frozen=True)
class VisibleSpring:
    """External quadratic k/2 |x - target|^2 on the visible units (springs and nudges summed).

    Up to a constant it is k/2 |x|^2 - pull . x with pull = k target, and springs add as
    (sum k_i, sum k_i a_i). Solvers use only (stiffness, pull), so a sum whose stiffnesses
    cancel (a -beta nudge with beta (alpha lambda)^2 = lambda: a constant force) still works;
    its `target` is then None.
    """

    stiffness: float
    target: np.ndarray | None
    pull: np.ndarray | None = None  # stiffness * target; derived when not given

    def __post_init__(self) -> None:
        if self.pull is None:
            object.__setattr__(self, "pull", self.stiffness * self.target)

    @staticmethod
    def combine(*springs: "VisibleSpring") -> "VisibleSpring":
        k = sum(s.stiffness for s in springs)
        dtype = springs[0].pull.dtype
        pull = sum(s.pull for s in springs).astype(dtype, copy=False)
        target = (pull / k).astype(dtype, copy=False) if k != 0 else None
        return VisibleSpring(k, target, pull)

    def rows(self, index: np.ndarray) -> "VisibleSpring":
        """The spring on a subset of the batch."""
        return VisibleSpring(self.stiffness, None if self.target is None else self.target[index], self.pull[index])


@dataclass
class Equilibrium:
    """A relaxed state with the evidence of convergence."""

    state: State
    sample_residual: np.ndarray  # (batch,) max |dE_total/ds| over each point's relaxed units
    iterations: int  # solver iterations (Euler steps or block sweeps)

    @property
    def residual(self) -> float:
        """max |dE_total/ds| over the whole batch."""
        return float(np.max(self.sample_residual)) if self.sample_residual.size else 0.0


class Solver(Protocol):
    """A relaxation solver, built with its own options (`from_spec` reads them from the
    relax section of the config; solvers/factory.py `build_solver`)."""

    @classmethod
    def from_spec(cls, relax: RelaxSpec, steps: int) -> "Solver":
        """The solver with at most `steps` iterations and its options from `relax`."""

    def relax(
        self, field: LayeredField, params: Params, start: State, spring: VisibleSpring | None, *, clamp_visible: bool = False
    ) -> Equilibrium:
        """Relax from `start` (not modified) to the equilibrium of the field plus `spring`;
        `clamp_visible` holds the visible layer fixed (the inference circuit)."""


def total_grad(
    model: LayeredField, params: Params, state: State, spring: VisibleSpring | None, clamp_visible: bool = False
) -> State:
    """dE/ds plus the spring's pull; zero on the visible layer when it is clamped."""
    grads = model.state_grad(params, state)
    if clamp_visible:
        grads[0] = np.zeros_like(grads[0])
    elif spring is not None:
        grads[0] = grads[0] + (spring.stiffness * state[0] - spring.pull)
    return grads


def free_start(model: LayeredField, x_t: np.ndarray) -> State:
    """The paper's starting point of a free phase: x = x_t, every hidden unit at 0."""
    state = model.zeros_state(x_t.shape[0])
    state[0][...] = x_t
    return state
