"""Every pluggable part of analogep by name: energy families, relaxation solvers,
equilibrium backends, training objectives and ngspice runners.

Each table maps the name a user writes (model.yaml, a CLI flag) to "module:attribute".
The target is imported only when it is resolved, so the config can check names against
these tables without importing the code behind them, and adding a part is one new module
plus one line here (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import Any

FAMILIES = {
    "hopfield": "analogep.model.families.hopfield:HopfieldEnergy",
    "hopfield84": "analogep.model.families.hopfield84:Hopfield84Energy",
}
SOLVERS = {
    "euler": "analogep.solvers.euler:EulerSolver",
    "fast": "analogep.solvers.fast:FastSolver",
}
BACKENDS = {
    "numpy": "analogep.backends.numpy_backend:NumpyBackend",
    "spice": "analogep.backends.spice_backend:SpiceBackend",
}
OBJECTIVES = {
    "flow": "analogep.objectives.flow:FlowMatching",
    "dsm": "analogep.objectives.dsm:DenoisingScoreMatching",
}
RUNNERS = {
    "shared": "analogep.spice.run.ngspice:SharedNgspice",
    "subprocess": "analogep.spice.run.ngspice:SubprocessNgspice",
    "dask": "analogep.spice.run.dask_pool:DaskNgspice",
}

TABLES: dict[str, dict[str, str]] = {
    "family": FAMILIES,
    "solver": SOLVERS,
    "backend": BACKENDS,
    "objective": OBJECTIVES,
    "runner": RUNNERS,
}


def names(kind: str) -> tuple[str, ...]:
    """The registered names of one kind ('family', 'solver', ...), in registration order."""
    return tuple(TABLES[kind])


def resolve(kind: str, name: str) -> Any:
    """The class or function registered as `name`; ValueError names the allowed ones."""
    table = TABLES[kind]
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; allowed: {', '.join(table)}")
    module, attribute = table[name].split(":")
    return getattr(importlib.import_module(module), attribute)
