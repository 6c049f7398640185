"""Equilibrium backends behind one contract (base.py, a base class): numpy relaxation and ngspice."""

from analogep.backends.base import EquilibriumBackend
from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.spring import Nudge, phase_spring, velocity
from analogep.backends.factory import make_backend

__all__ = ["EquilibriumBackend", "NumpyBackend", "Nudge", "make_backend", "phase_spring", "velocity"]
