"""model.yaml: the generic schema (schema.py), its sections (sections.py, dsm.py, hardware.py),
the rules across keys (rules.py), the device presets (presets.py), the root Spec (spec.py),
reading and writing it (load.py), the packaged default."""

from analogep.config.dsm import DSMSpec
from analogep.config.hardware import CircuitSpec, DevicesSpec
from analogep.config.load import dump_spec, load_spec, with_devices
from analogep.config.physics import PhysicsSpec, physics_table
from analogep.config.presets import device_presets
from analogep.config.schema import ConfigError, to_dict
from analogep.config.sections import GenerateSpec, GradEPSpec, ModelSpec, OptimizerSpec, RelaxSpec, TrainSpec
from analogep.config.spec import Spec, from_dict

__all__ = [
    "CircuitSpec", "ConfigError", "DSMSpec", "DevicesSpec", "GenerateSpec", "GradEPSpec", "ModelSpec", "OptimizerSpec",
    "PhysicsSpec", "RelaxSpec", "Spec", "TrainSpec", "device_presets", "dump_spec", "from_dict", "load_spec",
    "physics_table", "to_dict", "with_devices",
]
