"""Build the equilibrium backend named on the command line (analogep.registry.BACKENDS)."""

from __future__ import annotations

from analogep.backends.base import EquilibriumBackend
from analogep.config.spec import Spec
from analogep.model.energy import EnergyModel
from analogep.registry import resolve


def make_backend(spec: Spec, model: EnergyModel, name: str = "numpy", **options) -> EquilibriumBackend:
    """The backend `name`, built from the spec; `options` go to its `from_spec` (the SPICE
    backend: runner, workers)."""
    return resolve("backend", name).from_spec(spec, model, **options)
