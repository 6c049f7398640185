"""The packaged device presets: analogep/config/devices/<name>.yaml, each a mapping of
devices keys with the source of every value (method.md section 7, 'Devices').

A devices section names its preset (`preset: rram`); the preset's values fill the keys the
section does not set, so a key written beside the preset overrides it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from analogep.config.schema import ConfigError, show

DEVICE_PRESETS_DIR = "devices"  # analogep/config/devices/<preset>.yaml
DEFAULT_PRESET = "ideal"


def device_presets() -> tuple[str, ...]:
    """The packaged device presets by name (analogep/config/devices/*.yaml), ideal first."""
    found = sorted(p.name[:-5] for p in resources.files("analogep.config").joinpath(DEVICE_PRESETS_DIR).iterdir()
                   if p.name.endswith(".yaml"))
    return tuple(sorted(found, key=lambda n: n != DEFAULT_PRESET))


def device_preset_values(name: str) -> dict:
    """The keys a packaged preset sets (its YAML mapping)."""
    text = resources.files("analogep.config").joinpath(DEVICE_PRESETS_DIR, f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def with_preset(data: Any, path: str) -> Any:
    """A devices mapping `data` (at key path `path`) with its preset's values under the keys
    it does not set; anything but a mapping is returned as it is (the schema refuses it)."""
    if not isinstance(data, dict):
        return data
    name = data.get("preset", DEFAULT_PRESET)
    presets = device_presets()
    if not isinstance(name, str) or name not in presets:
        raise ConfigError(f"{path}.preset: {show(name)} is not allowed; must be one of {', '.join(map(repr, presets))}")
    return {**device_preset_values(name), **data}
