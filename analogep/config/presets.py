"""The packaged device presets: analogep/config/devices/<name>.yaml, each a mapping of
devices keys with the source of every value (method.md section 7, 'Devices').

A devices section names its preset (`preset: rram`); the preset's values fill the keys the
section does not set, so a key written beside the preset overrides it. Presets combine with
`+`, later ones overriding earlier ones (`rram+periphery`: the rram devices read through the
periphery preset's converters), and a preset file may build on another by naming it in its
own `preset:` key (rram-stress is rram with the stress case's fault rates).
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
    """The keys a packaged preset sets (its YAML mapping; a `preset:` key in it names the
    preset it builds on, whose values come first), or a combination `a+b` (b over a)."""
    if "+" in name:
        out: dict = {}
        for part in name.split("+"):
            out.update(device_preset_values(part))
        return out
    text = resources.files("analogep.config").joinpath(DEVICE_PRESETS_DIR, f"{name}.yaml").read_text()
    values = yaml.safe_load(text) or {}
    base = values.pop("preset", None)
    return {**device_preset_values(base), **values} if base else values


def is_device_preset(name: object) -> bool:
    """A packaged preset or a `+` combination of them."""
    presets = device_presets()
    return isinstance(name, str) and all(part in presets for part in name.split("+"))


def with_preset(data: Any, path: str) -> Any:
    """A devices mapping `data` (at key path `path`) with its preset's values under the keys
    it does not set; anything but a mapping is returned as it is (the schema refuses it)."""
    if not isinstance(data, dict):
        return data
    name = data.get("preset", DEFAULT_PRESET)
    if not is_device_preset(name):
        raise ConfigError(f"{path}.preset: {show(name)} is not allowed; must be one of "
                          f"{', '.join(map(repr, device_presets()))} or a combination such as 'rram+periphery'")
    return {**device_preset_values(name), **data}
