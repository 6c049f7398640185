"""Robustness of a trained model to its devices: deploy the weights on non-ideal
crossbars (program them once onto fresh devices, then sample through the non-ideal
backend) and judge the samples as `evaluate` does, one severity of one non-ideality at a
time.

Each sweep changes one devices key from a base (the run's devices, a preset, or by default
the ideal devices with |W| = 1 spanning the window, `w_max: 1`, so that levels and faults
have a window to refer to) and keeps every other key. Sampling uses the run's generate
settings and seed, so the rows differ only by the devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import yaml

from analogep.config.hardware import DevicesSpec
from analogep.config.schema import ConfigError, to_dict
from analogep.config.spec import Spec, from_dict
from analogep.evaluation.quality import evaluate_samples

# What `robustness` sweeps when no --sweep is given: each non-ideality the numpy backend
# models, from none to beyond the presets' values (config/devices/*.yaml).
DEFAULT_SWEEPS: dict[str, list] = {
    "variability": [0.0, 0.01, 0.05, 0.1, 0.2],
    "bits": [None, 10, 8, 6, 4],
    "stuck_gmax": [0.0, 0.001, 0.005, 0.02],
    "stuck_gmin": [0.0, 0.01, 0.05, 0.2],
    "driver_gain_sigma": [0.0, 0.01, 0.05, 0.1],
    "driver_offset_sigma": [0.0, 0.002, 0.01, 0.05],
    "read_noise": [0.0, 1e-3, 1e-2, 5e-2],
    "adc_bits": [None, 12, 8, 6],
}
DEFAULT_BASE = {"preset": "ideal", "w_max": 1.0}
# Devices keys the numpy backend, which draws robustness's samples, does not model: a sweep
# of one would give identical rows.
NOT_SAMPLED = {
    "wire_resistance": "the numpy backend that draws these samples does not model line resistance, so every row would "
                       "be the same; its effect is measured on the SPICE backend: analogep check RUN --devices FILE.yaml "
                       "with devices.wire_resistance",
}


@dataclass
class RobustnessReport:
    """Per swept key, the quality at each value; `base` and `ideal` rows for reference."""

    base: dict
    ideal: dict
    sweeps: dict[str, list[dict]] = field(default_factory=dict)
    n: int = 0

    def to_dict(self) -> dict:
        return {"n_samples": self.n, "base_devices": self.base["devices"], "base": self.base["quality"],
                "ideal": self.ideal["quality"], "sweeps": self.sweeps}

    def format(self) -> str:
        def row(label, q):
            return f"  {label:<28} {q['confidence']:10.3f} {q['classes_covered']:8d} {q['frechet']:10.2f}"

        lines = [f"  {'devices':<28} {'confidence':>10} {'classes':>8} {'frechet':>10}",
                 row("ideal circuit", self.ideal["quality"]), row("base devices", self.base["quality"])]
        for key, rows in self.sweeps.items():
            for r in rows:
                lines.append(row(f"{key} = {r['value']}", r["quality"]))
        return "\n".join(lines)


def parse_sweep(text: str) -> tuple[str, list]:
    """KEY=v1,v2,... -> (key, values), values read as YAML scalars (null, 8, 0.01); the key
    must be a devices key. ConfigError names --sweep."""
    key, sep, values = text.partition("=")
    keys = [f for f in DevicesSpec.__dataclass_fields__ if f != "preset"]
    if not sep or not values:
        raise ConfigError(f"--sweep: {text!r} is not KEY=v1,v2,... (KEY one of {', '.join(keys)})")
    if key not in keys:
        raise ConfigError(f"--sweep: {key!r} is not a devices key; allowed: {', '.join(keys)}")
    try:
        parsed = [yaml.safe_load(v) for v in values.split(",")]
    except yaml.YAMLError:
        raise ConfigError(f"--sweep: cannot read the values of {text!r}") from None
    return key, parsed


def devices_variants(spec: Spec, base: dict, sweeps: dict[str, list]) -> dict[str, list[tuple[object, Spec]]]:
    """Every spec the sweeps ask for, validated up front (a bad value: one ConfigError line
    naming --sweep, before any sampling)."""
    out = {}
    for key, values in sweeps.items():
        if key in NOT_SAMPLED:
            raise ConfigError(f"--sweep {key}: {NOT_SAMPLED[key]}")
        rows = []
        for value in values:
            full = to_dict(spec)
            full["devices"] = {**base, key: value}
            try:
                rows.append((value, from_dict(full)))
            except ConfigError as exc:
                raise ConfigError(f"--sweep {key}={value}: {exc}") from None
        out[key] = rows
    return out


def robustness(
    spec: Spec,
    params,
    sample: Callable[[Spec], np.ndarray],
    *,
    base: dict | None = None,
    sweeps: dict[str, list] | None = None,
    on_row: Callable[[str, object, dict], None] | None = None,
) -> RobustnessReport:
    """Quality of the samples `sample(spec)` draws with each devices variant of `spec`."""
    base = dict(DEFAULT_BASE if base is None else base)
    variants = devices_variants(spec, base, DEFAULT_SWEEPS if sweeps is None else sweeps)
    full = to_dict(spec)
    full["devices"] = base
    base_spec = from_dict(full)

    drawn = []

    def judge(s: Spec) -> dict:
        x = sample(s)
        drawn.append(len(x))
        return evaluate_samples(x).to_dict()

    ideal_q = judge(spec.replace(devices={"preset": "ideal"}))
    report = RobustnessReport({"devices": to_dict(base_spec.devices), "quality": judge(base_spec)}, {"quality": ideal_q})
    for key, rows in variants.items():
        report.sweeps[key] = []
        for value, s in rows:
            q = judge(s)
            report.sweeps[key].append({"value": value, "quality": q})
            if on_row is not None:
                on_row(key, value, q)
    report.n = drawn[0]
    return report
