"""The hand-written subcircuit libraries (circuits/, shipped as analogep.circuits): the
neuron cells every compiled circuit instantiates (analogep.lib), and their variants with
non-ideal activation drivers (drivers.lib), which only a circuit realised on devices with
driver mismatch includes (method.md section 7), and the physical cells of the hopfield84
family (physical.lib: op-amp macromodel, resistors, 1N4148 diodes)."""

from __future__ import annotations

from importlib import resources

LIBRARY = "analogep.lib"
DRIVERS = "drivers.lib"
# The cells of the hopfield84 family: op-amps, resistors and diodes only (no B-source).
PHYSICAL = "physical.lib"
# A cell of analogep.lib and its drivers.lib variant (per-instance gain and offset).
DRIVER_CELL_SUFFIX = "_drv"


def library_text(name: str = LIBRARY) -> str:
    """A subcircuit library shipped with the package (circuits/<name>)."""
    return resources.files("analogep.circuits").joinpath(name).read_text()


def all_cells_text() -> str:
    """Every cell definition (all libraries): what a graph check expands a deck with."""
    return "\n".join(library_text(name) for name in (LIBRARY, DRIVERS, PHYSICAL))
