"""model.yaml: the schema (spec.py), reading and writing it (load.py), the packaged default."""

from analogep.config.load import dump_spec, load_spec, with_devices
from analogep.config.physics import PhysicsSpec, physics_table
from analogep.config.spec import (
    CircuitSpec,
    ConfigError,
    GenerateSpec,
    GradEPSpec,
    ModelSpec,
    OptimizerSpec,
    RelaxSpec,
    Spec,
    TrainSpec,
    from_dict,
    to_dict,
)

__all__ = [
    "CircuitSpec", "ConfigError", "GenerateSpec", "GradEPSpec", "ModelSpec", "OptimizerSpec", "PhysicsSpec",
    "RelaxSpec", "Spec", "TrainSpec", "dump_spec", "from_dict", "load_spec", "physics_table", "to_dict", "with_devices",
]
