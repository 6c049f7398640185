"""The physical constants of the time and energy accounting: model.yaml's `physics:` section.

The defaults, their units and their sources live in one packaged file, config/physics.yaml;
this module turns it into a frozen dataclass that config/schema.py validates like every other
section (bounds below: a zero supply, a negative capacitance or an ADC with no bits are
refused at load time with one line naming the key).
"""

from __future__ import annotations

from dataclasses import field, make_dataclass
from functools import lru_cache
from importlib import resources

import yaml

# Key -> (type, bounds). The order is physics.yaml's.
_BOUNDS: dict[str, tuple[type, dict]] = {
    "capacitance": (float, {"ge": 0}),
    "volts_per_unit": (float, {"gt": 0}),
    "settle_tolerance": (float, {"gt": 0}),
    "supply_voltage": (float, {"gt": 0}),
    "amp_quiescent_current": (float, {"ge": 0}),
    "adc_bits": (int, {"ge": 1, "le": 24}),
    "adc_range": (float, {"gt": 0}),
    "adc_fom": (float, {"ge": 0}),
    "adc_rate": (float, {"gt": 0}),
    "adcs": (int, {"ge": 0}),
    "dac_bits": (int, {"ge": 1, "le": 24}),
    "dac_unit_capacitance": (float, {"ge": 0}),
    "write_energy": (float, {"ge": 0}),
    "write_pulse": (float, {"gt": 0}),
    "pulses_per_update": (int, {"ge": 0}),
    "digital_flop_energy": (float, {"ge": 0}),
    "digital_flops_per_s": (float, {"gt": 0}),
    "gpu_flop_energy": (float, {"gt": 0}),
    "gpu_flops_per_s": (float, {"gt": 0}),
    "gpu_byte_energy": (float, {"ge": 0}),
    "gpu_bandwidth": (float, {"gt": 0}),
    "gpu_kernel_launch": (float, {"ge": 0}),
    "cpu_watts_per_core": (float, {"gt": 0}),
}


@lru_cache(maxsize=1)
def physics_table() -> dict[str, dict]:
    """physics.yaml: key -> {value, unit, source}."""
    text = resources.files("analogep.config").joinpath("physics.yaml").read_text()
    table = yaml.safe_load(text)
    if list(table) != list(_BOUNDS):
        raise RuntimeError("analogep/config/physics.yaml and config/physics.py list different constants")  # a packaging bug
    return table


def _fields() -> list:
    out = []
    for key, (tp, bounds) in _BOUNDS.items():
        entry = physics_table()[key]
        meta = {"help": f"{entry['unit']} (source: config/physics.yaml)", **bounds}
        out.append((key, tp, field(default=tp(entry["value"]), metadata=meta)))
    return out


PhysicsSpec = make_dataclass(
    "PhysicsSpec",
    _fields(),
    frozen=True,
    namespace={"__doc__": "Physical constants of the time and energy accounting (config/physics.yaml gives units and sources)."},
)
PhysicsSpec.__module__ = __name__
