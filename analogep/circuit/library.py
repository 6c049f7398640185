"""The hand-written subcircuit library (circuits/analogep.lib, shipped as analogep.circuits):
the neuron cells every compiled circuit instantiates (method.md section 7)."""

from __future__ import annotations

from importlib import resources

LIBRARY = "analogep.lib"


def library_text() -> str:
    """The subcircuit library shipped with the package (circuits/analogep.lib)."""
    return resources.files("analogep.circuits").joinpath(LIBRARY).read_text()
