"""The rules of model.yaml that involve several keys: the stability and resolution conditions
of equilibrium propagation (method.md section 3), the step sizes of the samplers (method.md
sections 5 and 6) and the device window (method.md section 7). Each key alone is checked by
config/schema.py; `check` runs these on the whole config, and a broken rule is one
ConfigError line naming the key to change.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from analogep.config.dsm import DSMSpec
from analogep.config.hardware import CircuitSpec, DevicesSpec
from analogep.config.schema import ConfigError
from analogep.config.sections import DTYPE_EPS, NUDGE_RESOLUTION, GenerateSpec

if TYPE_CHECKING:
    from analogep.config.spec import Spec

# Euler steps in one sampling run at most: 100 times the paper's 100 (dt = 1e-4 over
# [0, 1]). Steps run one after another, unlike samples, which sampling takes in chunks of
# bounded memory, so the step count alone sets how long a run takes: this bound keeps it to
# minutes per 1000 samples on the trained digits model (docs/results/speed.md).
MAX_GENERATE_STEPS = 10_000


# The visible nodes carry the data scale [-1, 1] (method.md section 4): an ADC or DAC whose
# full scale is below it cannot hold the signal.
SIGNAL_RANGE = 1.0


def check(spec: Spec) -> None:
    """Every rule that involves several keys; a ConfigError names the first one broken."""
    from analogep.data import dataset_dim

    m, g, r = spec.model, spec.gradep, spec.relax
    dim = dataset_dim(spec.train.dataset, spec.data)
    if m.sizes[0] != dim:
        what = "pixels" if spec.train.dataset == "digits" else "features"
        source = f" ({spec.data.path})" if spec.train.dataset == "file" else ""
        raise ConfigError(
            f"model.sizes[0]: {m.sizes[0]} visible units, but dataset {spec.train.dataset!r}{source} has {dim} {what}; must be {dim}"
        )
    rank_limit = min(m.sizes[0], m.sizes[-1])
    if m.skip_rank > rank_limit:
        raise ConfigError(
            f"model.skip_rank: {m.skip_rank} is above min(visible, top hidden) = min({m.sizes[0]}, {m.sizes[-1]}) = "
            f"{rank_limit}, the largest rank a coupling between those layers has; must be <= {rank_limit}"
        )
    if m.diodes != 1 and m.family != "hopfield84":
        raise ConfigError(f"model.diodes: {m.diodes} applies to family hopfield84 only (family {m.family!r}); must be 1")
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
    problem = integration_problem(spec.generate, g.alpha)
    if problem:
        raise ConfigError(f"generate: {problem}")
    # The dsm section steers score matching only: a flow-matching run never reads it, so its
    # defaults (Langevin step, levels) must not bound that run's gradep.alpha.
    problem = schedule_problem(spec.dsm, g.alpha) if spec.train.objective == "dsm" else None
    if problem:
        raise ConfigError(f"dsm: {problem}")
    want = spec.dsm.code_size if spec.train.objective == "dsm" else 0  # model.level_features (config/spec.py)
    if want and not spec.devices.ideal:
        raise ConfigError("dsm.conditioning: level-bias is built for ideal devices only; use devices: {preset: ideal} "
                          "or another conditioning")
    if spec.train.time_conditioning != "none" and spec.train.objective != "flow":
        raise ConfigError(f"train.time_conditioning: {spec.train.time_conditioning} is flow matching's time input; "
                          f"train.objective is {spec.train.objective} (score matching: dsm.conditioning level-bias)")
    if spec.train.time_code_size and not spec.devices.ideal:
        raise ConfigError("train.time_conditioning: time-bias is built for ideal devices only; use devices: "
                          "{preset: ideal} or time_conditioning none")
    c = spec.circuit
    if c.gmin >= c.gmax:
        raise ConfigError(f"circuit.gmin: {c.gmin:g} must be < circuit.gmax ({c.gmax:g})")
    check_devices(spec.devices, c)
    t = spec.train
    if t.update == "substrate" and t.substrate.group_size > t.batch:
        raise ConfigError(substrate_problem(spec))
    o = t.optimizer
    if o.schedule != "constant" and o.final_lr >= o.lr:
        raise ConfigError(f"train.optimizer.final_lr: {o.final_lr:g} must be below train.optimizer.lr ({o.lr:g}) "
                          f"for the {o.schedule} schedule to decay")
    if o.schedule != "constant" and t.update == "substrate":
        raise ConfigError(f"train.optimizer.schedule: {o.schedule} steers the digital optimizer; train.update: substrate "
                          f"writes at train.substrate.lr every step (use schedule: constant)")


def substrate_problem(spec: Spec) -> str | None:
    """Why train.update: substrate cannot run with this config (None: it can): a group of
    points cannot be larger than the batch, and the devices write the update, so there
    must be devices with a pulse step (devices.bits). The devices part is judged where the
    spec is final (--devices applied): at the start of training and of the energy
    accounting (`check` judges the group size alone)."""
    t = spec.train
    if t.update != "substrate":
        return None
    if t.substrate.group_size > t.batch:
        return (f"train.substrate.group_size: {t.substrate.group_size} is above train.batch {t.batch}; must be <= "
                f"{t.batch}")
    if spec.devices.ideal:
        return ("train.update: substrate writes the update with the crossbar devices' own pulses, but the devices "
                "section has none (devices.preset: ideal); give a preset (--devices rram) or devices.bits")
    if spec.devices.bits is None:
        return ("train.update: substrate needs a pulse step, devices.bits (levels per device); the devices are "
                "continuous (devices.bits: null)")
    return None


def check_devices(d: DevicesSpec, c: CircuitSpec) -> None:
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


def integration_problem(g: GenerateSpec, alpha: float) -> str | None:
    """Why the generate section's Euler steps of dt over [0, t1] cannot give samples (None: they can).

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
    if g.dt > g.t1:
        return (
            f"dt = {g.dt:g} is longer than t1 = {g.t1:g}: Euler integration over [0, t1] takes "
            f"round(t1/dt) steps of dt, so a longer step integrates past t1; use dt <= t1"
        )
    if g.dt * alpha >= 2.0:
        return (
            f"dt = {g.dt:g} is not below 2/alpha = {2.0 / alpha:g}: a step that long overshoots the "
            f"energy descent (curvature up to alpha) and oscillates or diverges; use dt < 2/alpha"
        )
    if g.steps > MAX_GENERATE_STEPS:
        return (
            f"t1/dt = {g.t1:g}/{g.dt:g} = {g.steps:,} Euler steps is more than {MAX_GENERATE_STEPS:,} "
            f"(100x the paper's dt 0.01 over [0, 1]); raise dt or lower t1"
        )
    return None


def schedule_problem(d: DSMSpec, alpha: float) -> str | None:
    """Why the dsm section's schedule or sampler cannot work (None: it can).

    - sigma_min < sigma_max with two levels or more (a geometric schedule from large to
      small), sigma_min = sigma_max with one.
    - The Langevin drift step must contract where the read-out does: the read-out is
      -alpha times the gradient of an energy whose curvature in x is at most 1
      (method.md section 5), so (eps_i / (2 sigma_i^p)) alpha < 2 at every level.
    - The same for the probability-flow ODE's Euler predictor (max_ode_factor alpha < 2).
    - levels * steps_per_level <= MAX_GENERATE_STEPS (steps run one after another).
    """
    if d.sigma_min > d.sigma_max:
        return f"sigma_min = {d.sigma_min:g} is above sigma_max = {d.sigma_max:g} (range inverted); need sigma_min < sigma_max"
    if d.levels > 1 and d.sigma_min == d.sigma_max:
        return f"{d.levels} levels need sigma_min < sigma_max (both are {d.sigma_min:g}); or use levels: 1"
    if d.levels == 1 and d.sigma_min != d.sigma_max:
        return f"one level needs sigma_min = sigma_max (got {d.sigma_min:g} and {d.sigma_max:g}); or use levels >= 2"
    if d.max_drift * alpha >= 2.0:
        limit = d.langevin_step * 2.0 / (d.max_drift * alpha)
        return (
            f"langevin_step = {d.langevin_step:g} makes the drift step {d.max_drift:.3g} * read-out, not below "
            f"2/alpha = {2.0 / alpha:g}: it overshoots (read-out curvature up to alpha); use langevin_step < {limit:.3g}"
        )
    if d.sampler == "ode" and d.max_ode_factor * alpha >= 2.0:
        return (
            f"ode_steps = {d.ode_steps} makes the probability-flow step {d.max_ode_factor:.3g} * read-out, not "
            f"below 2/alpha = {2.0 / alpha:g}: it overshoots (read-out curvature up to alpha); use more ode_steps"
        )
    if d.sampler == "ancestral":
        if d.final_sigma >= d.sigma_min:
            return f"final_sigma = {d.final_sigma:g} must be below sigma_min = {d.sigma_min:g} (the ancestral chain ends there)"
        grid = d.ancestral_sigmas
        factor = max((a * a - b * b) / a**d.gain_power for a, b in zip(grid, grid[1:]))
        if factor * alpha >= 2.0:
            return (f"substeps = {d.substeps} makes the ancestral drift {factor:.3g} * read-out, not below 2/alpha = "
                    f"{2.0 / alpha:g}: it overshoots (read-out curvature up to alpha); use more substeps")
        if (len(grid) - 1) * (1 + d.steps_per_level) > MAX_GENERATE_STEPS:
            return f"the ancestral sampler takes more than {MAX_GENERATE_STEPS:,} steps; lower substeps or steps_per_level"
    steps = d.levels * d.steps_per_level
    if steps > MAX_GENERATE_STEPS:
        return f"levels*steps_per_level = {steps:,} Langevin steps is more than {MAX_GENERATE_STEPS:,}; lower either"
    return None
