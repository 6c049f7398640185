"""The model.yaml schema: a frozen dataclass tree, validated once (config/load.py reads the YAML).

This package is the only thing in analogep that reads model.yaml (the scikit-learn way: validate at
the boundary, then trust). Every error is a `ConfigError` whose message is one line that
names the key path and what is allowed; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from analogep.errors import AnalogepError
from analogep.registry import names


# circuit.scheduler's value for "no running cluster: start one on this machine".
LOCAL_SCHEDULER = "local"


class ConfigError(AnalogepError, ValueError):
    """A config that cannot be used; the message names the key path and what is allowed."""


def _key(help: str, **constraints: Any) -> Any:
    """Field metadata: help text, bounds, `yaml` (the YAML key when it differs from the
    attribute), `registry` (a kind of analogep.registry whose names are allowed)."""
    return {"help": help, **constraints}


@dataclass(frozen=True)
class ModelSpec:
    """The energy network (method.md section 1)."""

    family: str = field(default="hopfield", metadata=_key("energy family", registry="family"))
    sizes: tuple[int, ...] = field(
        default=(64, 128, 128), metadata=_key("layer sizes, visible first", min=1, min_len=2)
    )
    activation: Literal["soft_silu", "silu"] = field(
        default="soft_silu",
        metadata=_key("rho: soft_silu = clamp*tanh(silu(u)/clamp) (reference code), or plain silu"),
    )
    clamp: float = field(default=10.0, metadata=_key("soft clamp level of soft_silu", gt=0))
    init_gain: float = field(default=0.5, metadata=_key("Xavier-normal gain of the weights", ge=0))
    seed: int = field(default=0, metadata=_key("seed of the weight initialisation", ge=0))
    dtype: Literal["float32", "float64"] = field(default="float32", metadata=_key("floating point type"))


@dataclass(frozen=True)
class GradEPSpec:
    """Spring-clamped equilibrium propagation (method.md section 3)."""

    lam: float = field(default=15.0, metadata=_key("spring stiffness lambda", gt=0, yaml="lambda"))
    alpha: float = field(default=2.0, metadata=_key("output scale alpha", gt=0))
    beta: float = field(default=1.25e-3, metadata=_key("nudge strength beta", gt=0))
    phases: Literal[2, 3] = field(default=3, metadata=_key("2 (free, +beta) or 3 (symmetric: free, +beta, -beta)"))

    @property
    def nudge_stiffness(self) -> float:
        """Curvature the nudge adds to each visible unit: beta (alpha lambda)^2."""
        return self.beta * (self.alpha * self.lam) ** 2

    @property
    def max_stable_beta(self) -> float:
        """The -beta phase needs a positive visible curvature 1 + lambda - beta (alpha lambda)^2."""
        return (1.0 + self.lam) / (self.alpha * self.lam) ** 2


@dataclass(frozen=True)
class RelaxSpec:
    """How equilibria are found (method.md section 3, 'Paper relaxation')."""

    solver: str = field(
        default="fast",
        metadata=_key("euler (the paper's explicit Euler) or fast (block coordinate descent)", registry="solver"),
    )
    step: float = field(default=0.1, metadata=_key("Euler step size eps", gt=0))
    free_steps: int = field(default=300, metadata=_key("maximum iterations of the free phase", ge=1))
    nudge_steps: int = field(default=300, metadata=_key("maximum iterations of each nudged phase", ge=1))
    omega: float = field(
        default=1.4,
        metadata=_key("over-relaxation of the fast solver's hidden updates (1: plain block descent)", gt=0, lt=2),
    )
    tol: float = field(
        default=1e-5,
        metadata=_key("stop when max |dE/ds| < tol (0: run every step, as the paper does)", ge=0),
    )


@dataclass(frozen=True)
class OptimizerSpec:
    """Adam with the paper's settings (beta1 0.9, beta2 0.95, lr 1e-3)."""

    name: Literal["adam", "sgd"] = field(default="adam", metadata=_key("optimizer"))
    lr: float = field(default=1e-3, metadata=_key("learning rate", gt=0))
    betas: tuple[float, ...] = field(
        default=(0.9, 0.95), metadata=_key("Adam moment decay rates, each in [0, 1)", ge=0, lt=1, len=2)
    )
    eps: float = field(default=1e-8, metadata=_key("Adam epsilon", gt=0))


@dataclass(frozen=True)
class TrainSpec:
    """The GradEP flow-matching training run (method.md section 4)."""

    dataset: Literal["digits"] = field(default="digits", metadata=_key("training data"))
    objective: str = field(default="flow", metadata=_key("what the equilibria learn: flow (flow matching)", registry="objective"))
    steps: int = field(default=2000, metadata=_key("optimizer steps", ge=1))
    batch: int = field(default=1797, metadata=_key("batch size (1797 = the full digits set)", ge=1))
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec, metadata=_key("optimizer settings"))
    grad_clip: float = field(default=1.0, metadata=_key("global gradient-norm clip (0: off)", ge=0))
    ot_coupling: bool = field(default=True, metadata=_key("pair noise and data by exact minibatch OT"))
    seed: int = field(default=0, metadata=_key("seed of noise, times and batches", ge=0))
    checkpoint_every: int = field(default=100, metadata=_key("steps between checkpoints", ge=1))
    log_every: int = field(default=1, metadata=_key("steps between metrics.jsonl records", ge=1))
    threads: int = field(default=0, metadata=_key("BLAS threads (0: all available cores but one)", ge=0))
    max_residual: float = field(
        default=1e-3,
        metadata=_key("a training point whose phase ends with max |dE/ds| above this is dropped", gt=0),
    )
    max_asymmetry: float = field(
        default=0.5,
        metadata=_key(
            "a training point whose +beta and -beta responses are less mirrored than this is dropped (0..1; 1: keep all)",
            gt=0,
            le=1,
        ),
    )
    max_dropped: float = field(
        default=0.05,
        metadata=_key("largest share of dropped training points before a step is skipped", ge=0, le=1),
    )
    max_bad_steps: int = field(
        default=20, metadata=_key("consecutive skipped (troubled) steps before training stops", ge=1)
    )


@dataclass(frozen=True)
class GenerateSpec:
    """Sampling by Euler integration of the learned velocity (method.md section 5)."""

    n: int = field(default=100, metadata=_key("number of samples", ge=1))
    dt: float = field(default=0.01, metadata=_key("Euler time step", gt=0))
    t1: float = field(default=1.0, metadata=_key("end time (>1: extended generation)", gt=0))
    mode: Literal["energy", "spring"] = field(
        default="energy", metadata=_key("energy: v = -alpha dE/dx; spring: v = alpha lambda (x* - x)")
    )
    seed: int = field(default=1, metadata=_key("seed of the initial noise", ge=0))


@dataclass(frozen=True)
class CircuitSpec:
    """The analog circuit (method.md section 7); used by the SPICE backend."""

    g0: float = field(default=1e-4, metadata=_key("unit conductance in siemens (1 state unit = 1 V)", gt=0))
    gmin: float = field(default=0.0, metadata=_key("smallest programmable crossbar conductance (S)", ge=0))
    gmax: float = field(default=1e-3, metadata=_key("largest programmable crossbar conductance (S)", gt=0))
    clip: bool = field(
        default=False, metadata=_key("clip weights that do not fit [gmin, gmax] (with a count) instead of failing")
    )
    capacitance: float = field(default=0.0, metadata=_key("node capacitance to ground in farads (0: none)", ge=0))
    reltol: float = field(default=1e-8, metadata=_key("ngspice relative tolerance", gt=0, lt=1))
    vntol: float = field(default=1e-10, metadata=_key("ngspice absolute voltage tolerance (V)", gt=0))
    abstol: float = field(default=1e-14, metadata=_key("ngspice absolute current tolerance (A)", gt=0))
    runner: str = field(
        default="auto",
        metadata=_key("ngspice interface: shared library (PySpice), subprocess, dask (workers of a Dask cluster), or auto", registry="runner", also=("auto",)),
    )
    timeout: float = field(default=120.0, metadata=_key("seconds before one ngspice run (one sweep of training points) is abandoned", gt=0))
    scheduler: str = field(
        default=LOCAL_SCHEDULER,
        metadata=_key(
            "the dask runner's cluster: local (a LocalCluster, one worker per free core) or a scheduler address tcp://HOST:PORT",
            pattern=r"local|([a-z]+://)?\S+:\d+",
            pattern_help="must be 'local' or a Dask scheduler address such as tcp://10.0.0.5:8786",
        ),
    )


@dataclass(frozen=True)
class Spec:
    """A whole model.yaml."""

    name: str = field(
        default="digits", metadata=_key("config name (used for output folders)", pattern=r"[A-Za-z0-9][A-Za-z0-9._-]*")
    )
    model: ModelSpec = field(default_factory=ModelSpec, metadata=_key("the energy network"))
    gradep: GradEPSpec = field(default_factory=GradEPSpec, metadata=_key("equilibrium propagation"))
    relax: RelaxSpec = field(default_factory=RelaxSpec, metadata=_key("relaxation solver"))
    train: TrainSpec = field(default_factory=TrainSpec, metadata=_key("training run"))
    generate: GenerateSpec = field(default_factory=GenerateSpec, metadata=_key("sampling"))
    circuit: CircuitSpec = field(default_factory=CircuitSpec, metadata=_key("analog circuit (SPICE backend)"))

    def replace(self, **sections: Any) -> "Spec":
        """Copy with some fields changed, e.g. spec.replace(train={"steps": 10}); re-validated."""
        return from_dict(_merge(to_dict(self), sections))


def _merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied key by key, nested mappings merged (not replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


# --- validation ----------------------------------------------------------------------------------


def _yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("yaml", f.name)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list of " + _describe(typing.get_args(tp)[0]).split(" ", 1)[-1] + "s"  # "a list of integers"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _check_bounds(path: str, value: Any, meta: dict) -> None:
    rules = [
        ("min", lambda v, b: v >= b, ">="),
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("lt", lambda v, b: v < b, "<"),
        ("le", lambda v, b: v <= b, "<="),
    ]
    for name, ok, sym in rules:
        if name in meta and not ok(value, meta[name]):
            raise ConfigError(f"{path}: {value!r} is not allowed; must be {sym} {meta[name]}")


def _convert(path: str, value: Any, tp: Any, meta: dict) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool) or value not in choices or type(value) not in {type(c) for c in choices}:
            raise ConfigError(f"{path}: {value!r} is not allowed; must be {_describe(tp)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_describe(tp)}, got {type(value).__name__} {value!r}")
        if "len" in meta and len(value) != meta["len"]:
            raise ConfigError(f"{path}: expected {meta['len']} values, got {len(value)}")
        if "min_len" in meta and len(value) < meta["min_len"]:
            raise ConfigError(f"{path}: expected at least {meta['min_len']} values, got {len(value)}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(f"{path}[{i}]", v, item_tp, meta) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        _check_bounds(path, value, meta)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{path}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        _check_bounds(path, value, meta)
        return value
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: expected a non-empty string, got {value!r}")
        if "registry" in meta:
            allowed = tuple(meta.get("also", ())) + names(meta["registry"])
            if value not in allowed:
                raise ConfigError(f"{path}: {value!r} is not allowed; must be one of {', '.join(map(repr, allowed))}")
            return value
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            rule = meta.get("pattern_help", "use letters, digits, '.', '_' and '-' (it names folders)")
            raise ConfigError(f"{path}: {value!r} is not allowed; {rule}")
        return value
    raise TypeError(f"unsupported spec type {tp!r}")  # a bug in this module, not in the config


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {_yaml_key(f): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{where}: unknown key; allowed keys: {', '.join(fields)}")
    kwargs = {}
    for key, f in fields.items():
        if key in data:
            where = f"{path}.{key}" if path else key
            kwargs[f.name] = _convert(where, data[key], hints[f.name], dict(f.metadata))
    return cls(**kwargs)


def _check_consistency(spec: Spec) -> None:
    """Rules that involve several keys (method.md section 3 stability conditions)."""
    from analogep.data import dataset_dim

    m, g, r = spec.model, spec.gradep, spec.relax
    dim = dataset_dim(spec.train.dataset)
    if m.sizes[0] != dim:
        raise ConfigError(
            f"model.sizes[0]: {m.sizes[0]} visible units, but dataset {spec.train.dataset!r} has {dim} pixels; must be {dim}"
        )
    if g.beta >= g.max_stable_beta:
        raise ConfigError(
            f"gradep.beta: {g.beta:g} gives the -beta phase a negative visible curvature "
            f"1 + lambda - beta*(alpha*lambda)^2 = {1.0 + g.lam - g.nudge_stiffness:.3g} (energy unbounded); "
            f"must satisfy beta < {g.max_stable_beta:.3g}"
        )
    if r.solver == "euler":
        stiff = r.step * (1.0 + g.lam + g.nudge_stiffness)
        if stiff >= 2.0:
            raise ConfigError(
                f"gradep.beta: {g.beta:g} makes the euler relaxation unstable: "
                f"step*(1 + lambda + beta*(alpha*lambda)^2) = {stiff:.3g} must be < 2 "
                f"(lower beta, lambda or relax.step)"
            )
    c = spec.circuit
    if c.gmin >= c.gmax:
        raise ConfigError(f"circuit.gmin: {c.gmin:g} must be < circuit.gmax ({c.gmax:g})")


def from_dict(data: Any) -> Spec:
    """Build and validate a Spec from a parsed YAML mapping."""
    spec = _build(Spec, data, "")
    _check_consistency(spec)
    return spec


def to_dict(spec: Any) -> dict:
    """The resolved config as plain YAML-ready data (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[_yaml_key(f)] = value
    return out


