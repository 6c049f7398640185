"""Equilibrium backends behind one protocol: numpy relaxation and ngspice."""

from analogep.backends.base import EquilibriumBackend, Nudge
from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.spring import phase_spring, velocity
from analogep.backends.factory import make_backend

__all__ = ["EquilibriumBackend", "NumpyBackend", "Nudge", "make_backend", "phase_spring", "velocity"]
