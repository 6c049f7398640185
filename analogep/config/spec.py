"""The model.yaml schema: a frozen dataclass tree, validated once (config/load.py reads the YAML).

This package is the only thing in analogep that reads model.yaml (the scikit-learn way: validate at
the boundary, then trust). Every error is a `ConfigError` whose message is one line that
names the key path and what is allowed; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from analogep.config.physics import PhysicsSpec
from analogep.errors import AnalogepError
from analogep.registry import names


# circuit.scheduler's value for "no running cluster: start one on this machine".
LOCAL_SCHEDULER = "local"


class ConfigError(AnalogepError, ValueError):
    """A config that cannot be used; the message names the key path and what is allowed."""


# Machine epsilon of each model.dtype (numpy.finfo(dtype).eps).
DTYPE_EPS = {"float32": 2.0**-23, "float64": 2.0**-52}

# The nudge must move the visible units by at least this many eps of (a - x*) (see GradEPSpec.min_beta).
NUDGE_RESOLUTION = 1e4

# Integers are stored in numpy int64 arrays and written back to YAML; larger ones are refused.
INT_MAX = 2**63 - 1


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
    skip_rank: int = field(
        default=0,
        metadata=_key(
            "rank k of the skip coupling between the visible and the top hidden layer, through k bottleneck "
            "neurons (method.md section 1); 0: none",
            ge=0,
        ),
    )


@dataclass(frozen=True)
class GradEPSpec:
    """Spring-clamped equilibrium propagation (method.md section 3)."""

    lam: float = field(default=15.0, metadata=_key("spring stiffness lambda", gt=0, yaml="lambda"))
    alpha: float = field(default=2.0, metadata=_key("output scale alpha", gt=0))
    beta: float = field(
        default=1.25e-3,
        metadata=_key(
            "nudge strength beta; beta*(alpha*lambda)^2/(1 + lambda + beta*(alpha*lambda)^2) must be >= 1e4 * "
            "model.dtype's eps (the nudge must be resolvable) and beta < (1 + lambda)/(alpha*lambda)^2 (stable -beta phase)",
            gt=0,
        ),
    )
    phases: Literal[2, 3] = field(default=3, metadata=_key("2 (free, +beta) or 3 (symmetric: free, +beta, -beta)"))

    @property
    def nudge_stiffness(self) -> float:
        """Curvature the nudge adds to each visible unit: beta (alpha lambda)^2."""
        return self.beta * (self.alpha * self.lam) ** 2

    @property
    def max_stable_beta(self) -> float:
        """The -beta phase needs a positive visible curvature 1 + lambda - beta (alpha lambda)^2."""
        return (1.0 + self.lam) / (self.alpha * self.lam) ** 2

    @property
    def nudge_gain(self) -> float:
        """How far the +beta phase moves a visible unit, as a fraction of (a - x*):
        beta (alpha lambda)^2 / (1 + lambda + beta (alpha lambda)^2) (the nudge spring against
        the unit's own curvature 1 + lambda, method.md sections 1 and 3)."""
        return self.nudge_stiffness / (1.0 + self.lam + self.nudge_stiffness)

    def min_beta(self, dtype: str) -> float:
        """The smallest beta whose nudge a `dtype` state resolves: nudge_gain >= 1e4 eps
        (method.md section 3).

        EP differences states at |x| ~ 0.5-3 that the nudge moves by nudge_gain * |a - x*|,
        where |a - x*| = |v - u| / (alpha lambda) ~ 0.01-0.05 on the digits models. Below about
        one ulp of x the nudged states round to the free one and the gradient is zero (beta
        1e-12 in float32) or noise. Measured in float32 on examples/tiny.yaml against the exact
        gradient, relaxed to convergence: the relative error is about 5 eps / nudge_gain at the
        initial weights and 30 eps / nudge_gain after 200 training steps (|a - x*| shrinks as
        v approaches u), and the gradient collapses (cosine < 0.9) below 5-50 eps. At 1e4 eps
        rounding stays under ~0.5%; in float32 at lambda 15, alpha 2 that is beta >= 2.1e-5,
        60x below the paper's 1.25e-3.
        """
        k = NUDGE_RESOLUTION * DTYPE_EPS[dtype]
        return k * (1.0 + self.lam) / ((1.0 - k) * (self.alpha * self.lam) ** 2)


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
    """The GradEP training run (method.md sections 4 and 6)."""

    dataset: Literal["digits"] = field(default="digits", metadata=_key("training data"))
    objective: str = field(
        default="flow",
        metadata=_key("what the equilibria learn: flow (flow matching) or dsm (denoising score matching)", registry="objective"),
    )
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
    max_skipped_share: float = field(
        default=0.5,
        metadata=_key(
            "largest share of skipped steps among the last 100 before training stops "
            "(judged from step 20 on, and at the last step; 1: never)",
            ge=0,
            le=1,
        ),
    )


@dataclass(frozen=True)
class DSMSpec:
    """Denoising score matching and its samplers, annealed Langevin dynamics and the
    probability-flow ODE (method.md section 6); used when train.objective is dsm."""

    sigma_min: float = field(default=0.1, metadata=_key("smallest noise level of the geometric schedule", gt=0))
    sigma_max: float = field(default=1.0, metadata=_key("largest noise level of the geometric schedule", gt=0))
    levels: int = field(default=10, metadata=_key("noise levels, geometric from sigma_max down to sigma_min", ge=1))
    langevin_step: float = field(
        default=0.01,
        metadata=_key("Langevin step size at sigma_min; level i uses langevin_step*(sigma_i/sigma_min)^2", gt=0),
    )
    steps_per_level: int = field(default=10, metadata=_key("Langevin steps at each noise level", ge=1))
    denoise: bool = field(default=True, metadata=_key("end with one denoising step x + sigma_min^2 * score(x)"))
    conditioning: Literal["none", "scale", "gain"] = field(
        default="none",
        metadata=_key(
            "none: the read-out is the score at every level; scale: the score is read-out / sigma; "
            "gain: the score is read-out / sigma^2"
        ),
    )

    sampler: Literal["langevin", "ode"] = field(
        default="langevin",
        metadata=_key("langevin: annealed Langevin dynamics; ode: the probability-flow ODE (Heun steps)"),
    )
    ode_steps: int = field(
        default=50, metadata=_key("Heun steps of the probability-flow ODE, geometric from sigma_max to sigma_min", ge=1)
    )

    @property
    def gain_power(self) -> int:
        """p in score = read-out / sigma^p: 0 unconditioned, 1 scaled (Song & Ermon 2020), 2 with
        the read-out gain (the substrate learns the denoising displacement)."""
        return {"none": 0, "scale": 1, "gain": 2}[self.conditioning]

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The noise levels, largest first: sigma_max (sigma_min/sigma_max)^(i/(levels-1))."""
        if self.levels == 1:
            return (self.sigma_max,)
        ratio = self.sigma_min / self.sigma_max
        return tuple(self.sigma_max * ratio ** (i / (self.levels - 1)) for i in range(self.levels))

    @property
    def max_langevin_step(self) -> float:
        """The step size at sigma_max: langevin_step (sigma_max/sigma_min)^2."""
        return self.langevin_step * (self.sigma_max / self.sigma_min) ** 2

    @property
    def max_drift(self) -> float:
        """The largest factor of the read-out in a Langevin step, eps_i / (2 sigma_i^p) =
        eps sigma_i^(2-p) / (2 sigma_min^2): at sigma_max unconditioned and scaled, the same
        at every level with the gain (p = 2)."""
        if self.gain_power == 2:
            return self.langevin_step / (2.0 * self.sigma_min**2)
        if self.gain_power == 1:
            return self.langevin_step * self.sigma_max / (2.0 * self.sigma_min**2)
        return 0.5 * self.max_langevin_step

    @property
    def ode_sigmas(self) -> tuple[float, ...]:
        """The probability-flow ODE's grid: ode_steps + 1 geometric sigmas, sigma_max to sigma_min."""
        ratio = self.sigma_min / self.sigma_max
        return tuple(self.sigma_max * ratio ** (i / self.ode_steps) for i in range(self.ode_steps + 1))

    @property
    def max_ode_factor(self) -> float:
        """The largest factor of the read-out in one probability-flow step from sigma_i to
        sigma_(i+1): dx = -sigma s dsigma, s = read-out / sigma^p, so (sigma_i - sigma_(i+1))
        sigma_i^(1-p) (largest at sigma_max for p < 2, the same at every step for p = 2)."""
        grid = self.ode_sigmas
        return max((a - b) * a ** (1 - self.gain_power) for a, b in zip(grid, grid[1:]))

    def schedule_problem(self, alpha: float) -> str | None:
        """Why this schedule or sampler cannot work (None: it can).

        - sigma_min < sigma_max with two levels or more (a geometric schedule from large to
          small), sigma_min = sigma_max with one.
        - The Langevin drift step must contract where the read-out does: the read-out is
          -alpha times the gradient of an energy whose curvature in x is at most 1
          (method.md section 5), so (eps_i / (2 sigma_i^p)) alpha < 2 at every level.
        - The same for the probability-flow ODE's Euler predictor (max_ode_factor alpha < 2).
        - levels * steps_per_level <= MAX_GENERATE_STEPS (steps run one after another).
        """
        if self.sigma_min > self.sigma_max:
            return f"sigma_min = {self.sigma_min:g} is above sigma_max = {self.sigma_max:g} (range inverted); need sigma_min < sigma_max"
        if self.levels > 1 and self.sigma_min == self.sigma_max:
            return f"{self.levels} levels need sigma_min < sigma_max (both are {self.sigma_min:g}); or use levels: 1"
        if self.levels == 1 and self.sigma_min != self.sigma_max:
            return f"one level needs sigma_min = sigma_max (got {self.sigma_min:g} and {self.sigma_max:g}); or use levels >= 2"
        if self.max_drift * alpha >= 2.0:
            limit = self.langevin_step * 2.0 / (self.max_drift * alpha)
            return (
                f"langevin_step = {self.langevin_step:g} makes the drift step {self.max_drift:.3g} * read-out, not below "
                f"2/alpha = {2.0 / alpha:g}: it overshoots (read-out curvature up to alpha); use langevin_step < {limit:.3g}"
            )
        if self.sampler == "ode" and self.max_ode_factor * alpha >= 2.0:
            return (
                f"ode_steps = {self.ode_steps} makes the probability-flow step {self.max_ode_factor:.3g} * read-out, not "
                f"below 2/alpha = {2.0 / alpha:g}: it overshoots (read-out curvature up to alpha); use more ode_steps"
            )
        steps = self.levels * self.steps_per_level
        if steps > MAX_GENERATE_STEPS:
            return f"levels*steps_per_level = {steps:,} Langevin steps is more than {MAX_GENERATE_STEPS:,}; lower either"
        return None


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

    @property
    def steps(self) -> int:
        """Euler steps over [0, t1]: round(t1 / dt), at least one."""
        return max(1, int(round(self.t1 / self.dt)))

    def integration_problem(self, alpha: float) -> str | None:
        """Why Euler steps of dt over [0, t1] cannot give samples (None: they can).

        - dt <= t1: the integration takes round(t1/dt) steps of dt, so a longer step would
          integrate past t1 (dt 100 with t1 1 ends at t = 100).
        - dt < 2/alpha: the sampled field is -alpha times the gradient of the energy with
          the hidden units relaxed (method.md sections 2 and 5; the spring read-out too),
          whose curvature in x is at most 1, the leak 1/2|x|^2 (relaxing h only lowers
          it). An Euler step multiplies a deviation along curvature c by 1 - dt alpha c,
          so at dt >= 2/alpha it overshoots and oscillates or grows where the flow contracts.
        - t1/dt <= MAX_GENERATE_STEPS: what sampling cannot split into chunks is its
          sequence of steps, so their number bounds its time.
        """
        if self.dt > self.t1:
            return (
                f"dt = {self.dt:g} is longer than t1 = {self.t1:g}: Euler integration over [0, t1] takes "
                f"round(t1/dt) steps of dt, so a longer step integrates past t1; use dt <= t1"
            )
        if self.dt * alpha >= 2.0:
            return (
                f"dt = {self.dt:g} is not below 2/alpha = {2.0 / alpha:g}: a step that long overshoots the "
                f"energy descent (curvature up to alpha) and oscillates or diverges; use dt < 2/alpha"
            )
        if self.steps > MAX_GENERATE_STEPS:
            return (
                f"t1/dt = {self.t1:g}/{self.dt:g} = {self.steps:,} Euler steps is more than {MAX_GENERATE_STEPS:,} "
                f"(100x the paper's dt 0.01 over [0, 1]); raise dt or lower t1"
            )
        return None


# Euler steps in one sampling run at most: 100 times the paper's 100 (dt = 1e-4 over
# [0, 1]). Steps run one after another, unlike samples, which sampling takes in chunks of
# bounded memory, so the step count alone sets how long a run takes: this bound keeps it to
# minutes per 1000 samples on the trained digits model (docs/results/speed.md).
MAX_GENERATE_STEPS = 10_000


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


DEVICE_PRESETS_DIR = "devices"  # analogep/config/devices/<preset>.yaml


def device_presets() -> tuple[str, ...]:
    """The packaged device presets by name (analogep/config/devices/*.yaml), ideal first."""
    from importlib import resources

    found = sorted(p.name[:-5] for p in resources.files("analogep.config").joinpath(DEVICE_PRESETS_DIR).iterdir()
                   if p.name.endswith(".yaml"))
    return tuple(sorted(found, key=lambda n: n != "ideal"))


def device_preset_values(name: str) -> dict:
    """The keys a packaged preset sets (its YAML mapping)."""
    from importlib import resources

    import yaml

    text = resources.files("analogep.config").joinpath(DEVICE_PRESETS_DIR, f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


@dataclass(frozen=True)
class DevicesSpec:
    """The non-ideal analog crossbar (method.md section 7, 'Devices'): the device model
    both backends realise through `program(params)` (devices/crossbar.py).

    `preset` names a packaged preset (analogep/config/devices/<name>.yaml, every value
    with its source); keys written beside it override the preset's. The default, `ideal`,
    is the exact circuit of the `circuit:` section: no device effect at all."""

    preset: str = field(default="ideal", metadata=_key("device preset (analogep/config/devices/<name>.yaml): ideal, rram, pcm"))
    gmin: float | None = field(
        default=None, metadata=_key("smallest device conductance (S); null: circuit.gmin", ge=0)
    )
    gmax: float | None = field(
        default=None, metadata=_key("largest device conductance (S); null: circuit.gmax", gt=0)
    )
    w_max: float | None = field(
        default=None,
        metadata=_key("the |W| that spans the whole window: g0 = (gmax - gmin) / w_max; null: g0 = circuit.g0", gt=0),
    )
    bits: int | None = field(
        default=None,
        metadata=_key("programming levels per device, 2^bits over [gmin, gmax]; null: continuous", ge=1, le=24),
    )
    write_rule: Literal["accumulate", "stochastic", "nearest"] = field(
        default="accumulate",
        metadata=_key(
            "how an update is written: accumulate (digital accumulator, a pulse per level crossed), stochastic "
            "(stochastic rounding to a level), nearest (round to the nearest level: small updates are lost)"
        ),
    )
    variability: float = field(
        default=0.0, metadata=_key("device-to-device spread: G = d * G_programmed, d ~ 1 + variability * N(0, 1), frozen", ge=0)
    )
    program_noise: float = field(
        default=0.0, metadata=_key("std of a device's conductance after a full (initial) write, relative to gmax - gmin", ge=0)
    )
    write_noise: float = field(
        default=0.0, metadata=_key("std of each programming pulse's conductance step, relative to the step", ge=0)
    )
    read_noise: float = field(
        default=0.0, metadata=_key("std of each measured node voltage (V), drawn per equilibrium measurement", ge=0)
    )
    stuck_gmin: float = field(default=0.0, metadata=_key("share of devices stuck at gmin (frozen)", ge=0, le=1))
    stuck_gmax: float = field(default=0.0, metadata=_key("share of devices stuck at gmax (frozen)", ge=0, le=1))
    driver_gain_sigma: float = field(
        default=0.0, metadata=_key("per-neuron activation-driver gain spread: a = g rho(s) + o, g ~ 1 + sigma N(0, 1)", ge=0)
    )
    driver_offset_sigma: float = field(
        default=0.0, metadata=_key("per-neuron activation-driver offset spread (V): o ~ sigma N(0, 1)", ge=0)
    )
    adc_bits: int | None = field(
        default=None, metadata=_key("ADC bits of the measured node voltages; null: exact", ge=1, le=24)
    )
    adc_range: float = field(default=5.0, metadata=_key("ADC full scale: +-adc_range V", gt=0))
    dac_bits: int | None = field(
        default=None, metadata=_key("DAC bits of the anchor voltages (x_t and the nudge anchor); null: exact", ge=1, le=24)
    )
    dac_range: float = field(default=5.0, metadata=_key("DAC full scale: +-dac_range V", gt=0))
    copies: Literal["bidirectional", "mismatched"] = field(
        default="bidirectional",
        metadata=_key(
            "bidirectional: one device read both ways; mismatched: the forward and transposed reads go through two "
            "independently drawn copies (no energy: the numpy solver then solves the circuit's KCL)"
        ),
    )
    wire_resistance: float = field(
        default=0.0, metadata=_key("resistance of each crossbar line segment (ohm); SPICE backend only", ge=0)
    )
    seed: int = field(default=0, metadata=_key("seed of the device draws, write noise and read noise", ge=0))

    @staticmethod
    def resolve(data: Any, path: str) -> Any:
        """`data` with its preset's values under the keys it does not set."""
        if not isinstance(data, dict):
            return data
        name = data.get("preset", "ideal")
        presets = device_presets()
        if not isinstance(name, str) or name not in presets:
            raise ConfigError(f"{path}.preset: {_show(name)} is not allowed; must be one of {', '.join(map(repr, presets))}")
        return {**device_preset_values(name), **data}

    # Keys that change nothing by themselves (how to write, full scales of absent converters,
    # seeds, which copy is read: identical copies without draws).
    NEUTRAL = ("preset", "write_rule", "adc_range", "dac_range", "copies", "seed")

    @property
    def ideal(self) -> bool:
        """No device effect at all: the circuit of circuit.g0/gmin/gmax, exact."""
        default = DevicesSpec()
        return all(getattr(self, f.name) == getattr(default, f.name)
                   for f in dataclasses.fields(self) if f.name not in self.NEUTRAL)

    def window(self, circuit: "CircuitSpec") -> tuple[float, float, float]:
        """(g0, gmin, gmax): the device window and the unit conductance that maps |W| = w_max onto it."""
        gmin = circuit.gmin if self.gmin is None else self.gmin
        gmax = circuit.gmax if self.gmax is None else self.gmax
        g0 = circuit.g0 if self.w_max is None else (gmax - gmin) / self.w_max
        return g0, gmin, gmax

    @property
    def levels(self) -> int | None:
        """Programming levels per device (None: continuous)."""
        return None if self.bits is None else 2**self.bits


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
    dsm: DSMSpec = field(default_factory=DSMSpec, metadata=_key("denoising score matching (train.objective: dsm)"))
    generate: GenerateSpec = field(default_factory=GenerateSpec, metadata=_key("sampling"))
    circuit: CircuitSpec = field(default_factory=CircuitSpec, metadata=_key("analog circuit (SPICE backend)"))
    devices: DevicesSpec = field(
        default_factory=DevicesSpec, metadata=_key("the non-ideal crossbar devices (both backends; default ideal)")
    )
    physics: PhysicsSpec = field(
        default_factory=PhysicsSpec, metadata=_key("physical constants of the time and energy accounting (config/physics.yaml)")
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


# --- validation ----------------------------------------------------------------------------------


def _yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("yaml", f.name)


class _ShortRepr(reprlib.Repr):
    """repr() cut to a readable length (a value may be a whole YAML document, or an integer
    too long for repr)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring, self.maxother, self.maxlong, self.maxlevel = 60, 60, 40, 3

    def repr_int(self, x: int, level: int) -> str:
        return super().repr_int(x, level) if x.bit_length() <= 256 else f"<{x.bit_length()}-bit integer>"


_short_repr = _ShortRepr().repr


def _show(value: Any) -> str:
    """A value for an error message: one short line."""
    return _short_repr(value)


def _show_key(key: Any) -> str:
    """A mapping key for a key path: as written when it is a plain printable string."""
    return key if isinstance(key, str) and key.isprintable() and 0 < len(key) <= 60 else _show(key)


def _optional(tp: Any) -> Any:
    """X for an `X | None` field (None may be written as YAML null), else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _describe(tp: Any) -> str:
    inner = _optional(tp)
    if inner is not None:
        return _describe(inner) + " or null"
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
            raise ConfigError(f"{path}: {_show(value)} is not allowed; must be {sym} {meta[name]}")


def _convert(path: str, value: Any, tp: Any, meta: dict) -> Any:
    inner = _optional(tp)
    if inner is not None:
        return None if value is None else _convert(path, value, inner, meta)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool) or value not in choices or type(value) not in {type(c) for c in choices}:
            raise ConfigError(f"{path}: {_show(value)} is not allowed; must be {_describe(tp)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_describe(tp)}, got {type(value).__name__} {_show(value)}")
        if "len" in meta and len(value) != meta["len"]:
            raise ConfigError(f"{path}: expected {meta['len']} values, got {len(value)}")
        if "min_len" in meta and len(value) < meta["min_len"]:
            raise ConfigError(f"{path}: expected at least {meta['min_len']} values, got {len(value)}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(f"{path}[{i}]", v, item_tp, meta) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {_show(value)}")
        if value > INT_MAX:
            raise ConfigError(f"{path}: {_show(value)} is too large; must be <= 2**63 - 1")
        _check_bounds(path, value, meta)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{path}: expected a number, got {_show(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {_show(value)}")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            raise ConfigError(f"{path}: expected a finite number, got {_show(value)}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {_show(value)}")
        _check_bounds(path, value, meta)
        return value
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: expected a non-empty string, got {_show(value)}")
        if "registry" in meta:
            allowed = tuple(meta.get("also", ())) + names(meta["registry"])
            if value not in allowed:
                raise ConfigError(f"{path}: {_show(value)} is not allowed; must be one of {', '.join(map(repr, allowed))}")
            return value
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            rule = meta.get("pattern_help", "use letters, digits, '.', '_' and '-' (it names folders)")
            raise ConfigError(f"{path}: {_show(value)} is not allowed; {rule}")
        return value
    raise TypeError(f"unsupported spec type {tp!r}")  # a bug in this module, not in the config


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    resolve = getattr(cls, "resolve", None)
    if resolve is not None:
        data = resolve(data, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {type(data).__name__} {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {_yaml_key(f): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{_show_key(key)}" if path else _show_key(key)
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
    rank_limit = min(m.sizes[0], m.sizes[-1])
    if m.skip_rank > rank_limit:
        raise ConfigError(
            f"model.skip_rank: {m.skip_rank} is above min(visible, top hidden) = min({m.sizes[0]}, {m.sizes[-1]}) = "
            f"{rank_limit}, the largest rank a coupling between those layers has; must be <= {rank_limit}"
        )
    scale = g.alpha * g.lam
    if not 0.0 < scale * scale < math.inf:
        raise ConfigError(
            f"gradep.alpha: (alpha*lambda)^2 = ({g.alpha:g}*{g.lam:g})^2 "
            f"{'overflows' if scale * scale else 'underflows to 0'}; alpha*lambda must be within 1e-150..1e150"
        )
    if g.beta < g.min_beta(m.dtype):
        raise ConfigError(
            f"gradep.beta: {g.beta:g} is below the resolution of {m.dtype}: the nudge moves the visible units by "
            f"beta*(alpha*lambda)^2/(1 + lambda + beta*(alpha*lambda)^2) = {g.nudge_gain:.3g} of (a - x*), "
            f"which must be >= {NUDGE_RESOLUTION:g}*eps = {NUDGE_RESOLUTION * DTYPE_EPS[m.dtype]:.3g}; "
            f"must satisfy beta >= {g.min_beta(m.dtype):.3g}{' (or use model.dtype: float64)' if m.dtype == 'float32' else ''}"
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
    problem = spec.generate.integration_problem(g.alpha)
    if problem:
        raise ConfigError(f"generate: {problem}")
    problem = spec.dsm.schedule_problem(g.alpha)
    if problem:
        raise ConfigError(f"dsm: {problem}")
    c = spec.circuit
    if c.gmin >= c.gmax:
        raise ConfigError(f"circuit.gmin: {c.gmin:g} must be < circuit.gmax ({c.gmax:g})")
    _check_devices(spec.devices, c)


# The visible nodes carry the data scale [-1, 1] (method.md section 4): an ADC or DAC whose
# full scale is below it cannot hold the signal.
SIGNAL_RANGE = 1.0


def _check_devices(d: DevicesSpec, c: CircuitSpec) -> None:
    """The device rules that involve several keys."""
    _, gmin, gmax = d.window(c)
    if gmin >= gmax:
        where = "devices.gmin" if d.gmin is not None else "circuit.gmin"
        raise ConfigError(f"{where}: the device window needs gmin < gmax (got gmin {gmin:g} S, gmax {gmax:g} S)")
    if d.stuck_gmin + d.stuck_gmax > 1:
        raise ConfigError(
            f"devices.stuck_gmax: stuck_gmin + stuck_gmax = {d.stuck_gmin + d.stuck_gmax:g} is more than every device; must be <= 1"
        )
    for key, bits, full in (("adc", d.adc_bits, d.adc_range), ("dac", d.dac_bits, d.dac_range)):
        if bits is not None and full < SIGNAL_RANGE:
            raise ConfigError(
                f"devices.{key}_range: +-{full:g} V cannot hold the signal (the visible nodes carry the data scale "
                f"[-1, 1]); must be >= {SIGNAL_RANGE:g}"
            )


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


