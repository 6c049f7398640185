"""The model.yaml schema: the root `Spec`, a frozen tree of the sections, and from_dict, which
builds and checks one (config/load.py reads the YAML).

This package is the only thing in analogep that reads model.yaml (the scikit-learn way: validate at
the boundary, then trust). Every error is a `ConfigError` whose message is one line that
names the key path and what is allowed; the CLI prints it and exits with code 2. The generic
validator is config/schema.py, the sections are config/sections.py, dsm.py and hardware.py,
the rules across keys config/rules.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from analogep.config import rules
from analogep.config.dataset import DataSpec
from analogep.config.dsm import DSMSpec
from analogep.config.hardware import CircuitSpec, DevicesSpec
from analogep.config.physics import PhysicsSpec
from analogep.config.schema import build, meta, to_dict
from analogep.config.sections import GenerateSpec, GradEPSpec, ModelSpec, RelaxSpec, TrainSpec


@dataclass(frozen=True)
class Spec:
    """A whole model.yaml."""

    name: str = field(
        default="digits", metadata=meta("config name (used for output folders)", pattern=r"[A-Za-z0-9][A-Za-z0-9._-]*")
    )
    model: ModelSpec = field(default_factory=ModelSpec, metadata=meta("the energy network"))
    gradep: GradEPSpec = field(default_factory=GradEPSpec, metadata=meta("equilibrium propagation"))
    relax: RelaxSpec = field(default_factory=RelaxSpec, metadata=meta("relaxation solver"))
    train: TrainSpec = field(default_factory=TrainSpec, metadata=meta("training run"))
    dsm: DSMSpec = field(default_factory=DSMSpec, metadata=meta("denoising score matching (train.objective: dsm)"))
    generate: GenerateSpec = field(default_factory=GenerateSpec, metadata=meta("sampling"))
    data: DataSpec = field(
        default_factory=DataSpec,
        metadata=meta("a 2-D benchmark's or a file's settings (train.dataset)", omit_default=True),
    )
    circuit: CircuitSpec = field(default_factory=CircuitSpec, metadata=meta("analog circuit (SPICE backend)"))
    devices: DevicesSpec = field(
        default_factory=DevicesSpec, metadata=meta("the non-ideal crossbar devices (both backends; default ideal)")
    )
    physics: PhysicsSpec = field(
        default_factory=PhysicsSpec, metadata=meta("physical constants of the time and energy accounting (config/physics.yaml)")
    )

    def replace(self, **sections: Any) -> "Spec":
        """Copy with some fields changed, e.g. spec.replace(train={"steps": 10}); re-validated.
        A devices change that names a preset starts from that preset's values (not merged
        with the current devices section)."""
        base = to_dict(self)
        if isinstance(sections.get("devices"), dict) and "preset" in sections["devices"]:
            base["devices"] = {}
        return from_dict(_merge(base, sections))


def _merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied key by key, nested mappings merged (not replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def from_dict(data: Any) -> Spec:
    """Build and validate a Spec from a parsed YAML mapping."""
    spec = _with_level_code(build(Spec, data, ""))
    rules.check(spec)
    return spec


def level_code_size(spec: Spec) -> int:
    """The size of the code the energy's level-bias rows take: DSM's noise-level code, flow
    matching's time code, or 0 (the energy is the same at every level and time)."""
    if spec.train.objective == "dsm":
        return spec.dsm.code_size
    return spec.train.time_code_size if spec.train.objective == "flow" else 0


def _with_level_code(spec: Spec) -> Spec:
    """model.level_features follows the dsm section and train.time_conditioning, always (a
    value in the file is replaced, so a spec changed by `replace` keeps them in step): a DSM
    run with level-bias conditioning gets a level code of dsm.code_size features (method.md
    section 6.3), a flow run with time-bias one of train.time_code_size
    (docs/time-conditioning.md), any other none."""
    size = level_code_size(spec)
    if spec.model.level_features == size:
        return spec
    return dataclasses.replace(spec, model=dataclasses.replace(spec.model, level_features=size))
