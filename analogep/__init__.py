"""analogep: train energy-based generative models with Gradient Equilibrium Propagation.

The science follows FlowEqProp (Gower, ICONS 2026, arXiv 2604.08150) and symmetric
equilibrium propagation (Scellier & Bengio 2017; Laborieux et al. 2020). Data flows
one way: model.yaml -> Spec -> energy -> equilibrium (numpy or ngspice) ->
measurement -> update (docs/architecture.md).

The public API (analogep.api) is re-exported here, imported on first use so that
`import analogep` stays light: load_config, load_model, train, sample, evaluate,
gradcheck, compile_circuit, check_circuit, compare, deck_points, energy, robustness, study.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("load_config", "load_model", "train", "sample", "evaluate", "gradcheck", "compile_circuit", "check_circuit",
        "compare", "deck_points", "energy", "robustness", "study")
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        from analogep import api

        return getattr(api, name)
    raise AttributeError(f"module 'analogep' has no attribute {name!r}")
