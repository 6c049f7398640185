"""Energy models: the family interface, activations and the registered families."""

from analogep.model.activations import Activation
from analogep.model.energy import CircuitRules, EnergyModel, Params, State
from analogep.model.factory import build_energy

__all__ = ["Activation", "CircuitRules", "EnergyModel", "Params", "State", "build_energy"]
