"""Build the relaxation solver a RelaxSpec names (analogep.registry.SOLVERS: euler, the
paper's dynamics; fast, block coordinate descent), from its own options."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analogep.registry import resolve
from analogep.solvers.base import Solver

if TYPE_CHECKING:
    from analogep.config import RelaxSpec


def build_solver(relax: RelaxSpec, steps: int) -> Solver:
    """The solver `relax.solver`, with at most `steps` iterations (a phase's budget:
    relax.free_steps or relax.nudge_steps) and the options of its own it reads from
    `relax` (its `from_spec`)."""
    return resolve("solver", relax.solver).from_spec(relax, steps)
