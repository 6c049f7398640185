"""Relaxation solvers: from a start state to the equilibrium of a layered field plus springs.

Each solver is an object built with its own options; registered by name in
analogep.registry.SOLVERS, and built from the config's relax section by `build_solver`.
"""

from analogep.solvers.base import (
    Equilibrium,
    Solver,
    VisibleSpring,
    free_start,
    sample_max_abs,
    total_grad,
)
from analogep.solvers.euler import EulerSolver
from analogep.solvers.factory import build_solver
from analogep.solvers.fast import FastSolver

__all__ = [
    "Equilibrium", "EulerSolver", "FastSolver", "Solver", "VisibleSpring", "build_solver", "free_start", "sample_max_abs",
    "total_grad",
]
