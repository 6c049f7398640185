"""How much arithmetic the digital ways do (method.md section 8): the FLOPs and memory
traffic of one relaxation step, the kernels it launches, the FLOPs of the EP update and
Adam, and the sweeps the fast solver needs, counted on the same phases the circuit settles.
`baselines` prices these counts."""

from __future__ import annotations

import dataclasses

import numpy as np

from analogep.backends.spring import Nudge
from analogep.backends.spring import phase_spring
from analogep.config.spec import GradEPSpec, RelaxSpec
from analogep.model.energy import EnergyModel, Params, State
from analogep.solvers.base import VisibleSpring, free_start
from analogep.solvers.fast import FastSolver

# FLOP counts per unit that are not matrix products (each elementary operation, the
# exponential and tanh included, counted as one FLOP: an assumption of the count). The soft
# clamp rho(s) = 10 tanh(silu(s)/10) with rho' : about 20; an Euler or block update of a
# unit: 4; the spring and nudge pull on a visible unit: 4.
ACTIVATION_FLOPS = 20
UPDATE_FLOPS = 4
SPRING_FLOPS = 4
# Adam and the norm clip per parameter: moments, bias correction, square root, division.
OPTIMIZER_FLOPS = 15
# Bytes a relaxation step moves per unit and point, when no array stays on chip: float32
# reads and writes of the state (2), the activity and its derivative (2), the activity read
# again by the forward and transposed products (2), the drive written and read (2).
BYTES_PER_UNIT_STEP = 4 * 8
# Backpropagation through a feed-forward network: 6 FLOP per parameter per example
# (forward 2, backward 4; Kaplan et al. 2020, "Scaling Laws for Neural Language Models").
BACKPROP_FLOPS_PER_PARAM = 6


def relax_step_flops(sizes: tuple[int, ...], n_weights: int) -> int:
    """FLOPs of one relaxation step (Euler step or block sweep) of one point: every coupling
    read forward and transposed (2 FLOP per multiply-add), rho and rho' of the hidden units,
    the update of every unit, the springs on the visible ones."""
    return 4 * n_weights + ACTIVATION_FLOPS * sum(sizes[1:]) + UPDATE_FLOPS * sum(sizes) + SPRING_FLOPS * sizes[0]


def kernels_per_relax_step(model: EnergyModel) -> int:
    """Kernels one relaxation step launches: a forward and a transposed product per
    coupling, and one update per layer."""
    return 2 * len(model.circuit_rules().couplings) + len(model.sizes)


def update_flops(batch: int, n_params: int, n_visible: int) -> int:
    """FLOPs of the step's update: per point the two nudged param_terms and the velocity
    read-out, accumulated over the batch; then Adam and the norm clip once."""
    per_point = 2 * 2 * n_params + 3 * n_visible
    return batch * per_point + OPTIMIZER_FLOPS * n_params


def _mean_sweeps(model: EnergyModel, params: Params, start: State, spring: VisibleSpring | None, relax_spec: RelaxSpec,
                 clamp_visible: bool = False) -> tuple[float, int]:
    """(mean, max) sweeps of the block solver per point, counted one sweep at a time."""
    state = [s.copy() for s in start]
    done_at = np.full(state[0].shape[0], relax_spec.free_steps, dtype=float)
    sweep = FastSolver(1, tol=relax_spec.tol, omega=relax_spec.omega)
    for k in range(1, relax_spec.free_steps + 1):
        eq = sweep.relax(model, params, state, spring, clamp_visible=clamp_visible)
        state = eq.state
        newly = (eq.sample_residual < relax_spec.tol) & (done_at == relax_spec.free_steps)
        done_at[newly] = k
        if (eq.sample_residual < relax_spec.tol).all():
            break
    return float(done_at.mean()), int(done_at.max())


def fast_sweeps(
    model: EnergyModel,
    params: Params,
    relax_spec: RelaxSpec,
    gradep: GradEPSpec,
    phases: list[tuple[str, float | None]],
    x_t: np.ndarray,
    anchor: np.ndarray,
    free_end: State,
) -> tuple[float, int]:
    """Sweeps of the fast solver per training point over the step's phases, summed (mean,
    max): the free phase from the paper's start, each nudged phase from `free_end`, the
    free equilibrium, as the training step starts it."""
    fast = dataclasses.replace(relax_spec, solver="fast", free_steps=max(relax_spec.free_steps, 2000))
    sweeps_mean, sweeps_max = 0.0, 0
    for _, beta in phases:
        nudge = None if beta is None else Nudge(beta, anchor)
        start = free_start(model, x_t) if beta is None else free_end
        m, mx = _mean_sweeps(model, params, start, phase_spring(gradep, x_t, nudge), fast)
        sweeps_mean += m
        sweeps_max += mx
    return sweeps_mean, sweeps_max
