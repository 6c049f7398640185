"""Energy models: the layered field the solvers relax, the energy-family interface, the
parts a family is built from (layers, interactions, the network of both), activations,
and the registered families."""

from analogep.model.activations import Activation
from analogep.model.energy import CircuitRules, EnergyModel, Params, State
from analogep.model.factory import build_energy
from analogep.model.field import LayeredField
from analogep.model.interactions import Bias, Coupling, Interaction
from analogep.model.layers import ActivationUnits, Layer, LinearUnits
from analogep.model.network import Network

__all__ = [
    "Activation", "ActivationUnits", "Bias", "CircuitRules", "Coupling", "EnergyModel", "Interaction", "Layer",
    "LayeredField", "LinearUnits", "Network", "Params", "State", "build_energy",
]
