"""Build the energy family a ModelSpec names (analogep.registry.FAMILIES)."""

from __future__ import annotations

from analogep.config.sections import ModelSpec
from analogep.model.energy import EnergyModel
from analogep.registry import resolve


def build_energy(spec: ModelSpec) -> EnergyModel:
    """The energy family named in the spec, built from it."""
    return resolve("family", spec.family)(spec)
