"""Relaxation solvers: from a start state to the equilibrium of the energy plus springs.

Registered in analogep.registry.SOLVERS; `relax` dispatches by name.
"""

from analogep.solvers.base import (
    Equilibrium,
    VisibleSpring,
    free_start,
    sample_max_abs,
    total_grad,
)
from analogep.solvers.factory import relax

__all__ = ["Equilibrium", "VisibleSpring", "free_start", "relax", "sample_max_abs", "total_grad"]
