"""The device model: how parameters become conductances, and what the circuit therefore
realises of them (method.md section 7, 'Devices').

Ideal devices (`devices.preset: ideal`, the default) are the mapping alone
(devices/mapping.py). Non-ideal devices (`Devices`, the crossbar hardware both backends program): each weight is
a differential pair of devices, G+ - G- = W g0, in one physical copy read both ways
(`copies: bidirectional`) or in two copies, one for the forward read W a_pre and one for
the transposed read W^T a_post (`copies: mismatched`). Per device:

- programming levels: 2^bits evenly spaced over [gmin, gmax] (none: continuous);
- the write rule (`write_rule`) turns the digital weights the optimizer holds into
  pulses: `accumulate` keeps a high-precision digital accumulator per device and fires
  one pulse per level it crosses (the mixed-precision rule of Nandakumar et al. 2020,
  Front. Neurosci. 14, 406; Ambrogio et al. 2018, Nature 558, 60 keep the same split of
  a precise and an imprecise part), so EP's many small updates add up; `stochastic`
  rounds each update to whole levels at random, unbiased (Gokmen & Vlasov 2016, Front.
  Neurosci. 10, 333; Gupta et al. 2015, ICML); `nearest` rounds each update, so an
  update below half a level is lost (the naive rule, kept to show why not);
- write noise per pulse (cycle to cycle), program noise of a full write;
- a frozen device-to-device gain d (G = d G_programmed; with verified writes the spread of
  each device's pulse step instead) and stuck-at-gmin/gmax faults (the conductance
  effects, `EFFECTS`: each drawn per device and applied in `realise`);
- scaling to the weights (`scale_fraction`: each coupling's max|W| at the first write onto
  a share of the window, undone by a read gain) and fault-aware pairs (`fault_aware`: a
  March test before the first write, devices/faults.py);
- pulse physics (`_pulse`, public as `apply_pulses`): soft bounds and up/down asymmetry;
  set-only pairs with refresh (PCM); drift and 1/f noise read at `time_since_programming`
  with global drift compensation (devices/drift.py);
- per neuron, activation-driver gain and offset: a = g rho(s) + o (frozen).

The frozen draws, the programmed state and the noise streams are one seeded state
(`Devices.state_dict`) that a checkpoint stores, so a resumed run sees the same devices and
the same write-noise stream. What reads the circuit (read noise, ADC, DAC) is
devices/periphery.py.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from analogep.config.hardware import DevicesSpec
from analogep.config.spec import Spec
from analogep.config.schema import ConfigError
from analogep.devices import drift, faults
from analogep.devices.mapping import Conductances
from analogep.devices.periphery import MeasurementChain
from analogep.errors import CheckpointError
from analogep.model.energy import EnergyModel, Params


@dataclass(frozen=True)
class Realisation:
    """What the programmed crossbar realises: per coupling, the conductances (S) of the
    forward copy (read as W a_pre) and of the transposed copy (read as W^T a_post; the same
    arrays when the copies are bidirectional); the biases (ideal current sources b g0); per
    layer, the activation drivers' gain and offset (None: exact).

    The SPICE compiler writes these conductances; the numpy backend solves with the
    parameters they amount to (`params`)."""

    g0: float
    gmin: float
    gmax: float
    forward: dict[str, Conductances]
    transposed: dict[str, Conductances]
    biases: dict[str, np.ndarray]
    gain: tuple[np.ndarray | None, ...]
    offset: tuple[np.ndarray | None, ...]

    @property
    def bidirectional(self) -> bool:
        return all(self.forward[k] is self.transposed[k] for k in self.forward)

    @property
    def has_energy(self) -> bool:
        """One copy read both ways and exact drivers: the circuit still minimises an energy
        (the family's, with the realised weights)."""
        return self.bidirectional and all(g is None for g in self.gain) and all(o is None for o in self.offset)

    def weight(self, name: str, copy: str = "forward") -> np.ndarray:
        """W = (G+ - G-) / g0 of one copy (float64)."""
        g = (self.forward if copy == "forward" else self.transposed)[name]
        return g.gain * (g.plus - g.minus) / self.g0

    def params(self, like: Params, copy: str = "forward") -> Params:
        """The parameters one copy realises, in the dtypes of `like`."""
        out = {k: np.asarray(v, dtype=like[k].dtype) for k, v in self.biases.items()}
        out.update({k: self.weight(k, copy).astype(like[k].dtype) for k in self.forward})
        return {k: out.get(k, like[k]) for k in like}

    @property
    def clipped(self) -> dict[str, int]:
        return {k: v.clipped for k, v in self.forward.items()}


# set_only: a pair whose realised difference strays from its target by more than this many
# levels (a write its stuck partner could not take) is refreshed.
REFRESH_ERROR = 2.0

# The accumulator fires when it reaches a level up to this much (level units): forty updates of
# a quarter level sum to 9.999999999999998 in floating point, not 10.
LEVEL_SLACK = 1e-9

# Stuck codes of the frozen stuck draws (those of a fault map, devices/faults.py).
_FREE, _AT_GMIN, _AT_GMAX = faults.FREE, faults.AT_GMIN, faults.AT_GMAX


class DeviceEffect(ABC):
    """One non-ideality of every crossbar device that acts on its conductance: drawn once per
    device from the devices seed (frozen: a checkpoint stores the draws, so a resumed run has
    the same devices) and applied wherever the programmed state becomes conductances
    (`Devices.realise`), so both backends and the compiled decks see it. A new effect is a key
    of DevicesSpec (config/hardware.py), a subclass here, and its entry in EFFECTS."""

    name: str  # the prefix of its draws in the frozen state: "<name>/<coupling>/<copy>/<sign>"

    @abstractmethod
    def draw(self, d: DevicesSpec, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray | None:
        """This effect's frozen draw for one array of devices (one sign of one copy of one
        coupling); None: the effect is off, and nothing is drawn or stored."""

    @abstractmethod
    def apply(self, g: np.ndarray, drawn: np.ndarray, devices: Devices) -> np.ndarray:
        """The conductances `g` (S, gmin included) of those devices with the effect."""


class Variability(DeviceEffect):
    """Device-to-device spread (`variability`): G = d G_programmed with a frozen gain
    d ~ 1 + variability N(0, 1), d >= 0, that scales the whole device, gmin included."""

    name = "gain"

    def draw(self, d: DevicesSpec, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        # drawn as ones when off: the gain map has always been part of the frozen state
        if d.variability > 0:
            return np.maximum(1.0 + d.variability * rng.standard_normal(shape), 0.0)
        return np.ones(shape)

    def apply(self, g: np.ndarray, drawn: np.ndarray, devices: Devices) -> np.ndarray:
        # verified writes: the verify loop cancels d; it spreads the pulse step instead (Devices._pulse)
        return drawn * g if devices.d.variability > 0 and not devices.d.verified_writes else g


class StuckAt(DeviceEffect):
    """Stuck-at faults (`stuck_gmin`, `stuck_gmax`): a frozen share of the devices sits at
    gmin or at gmax whatever is written to it."""

    name = "stuck"

    def draw(self, d: DevicesSpec, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        # drawn as all-free codes when off: the fault map has always been part of the frozen state
        stuck = np.zeros(shape, dtype=np.int8)
        if d.stuck_gmin > 0 or d.stuck_gmax > 0:
            u = rng.random(shape)
            stuck[u < d.stuck_gmin] = _AT_GMIN
            stuck[(u >= d.stuck_gmin) & (u < d.stuck_gmin + d.stuck_gmax)] = _AT_GMAX
        return stuck

    def apply(self, g: np.ndarray, drawn: np.ndarray, devices: Devices) -> np.ndarray:
        if not drawn.any():
            return g
        return np.where(drawn == _AT_GMIN, devices.gmin, np.where(drawn == _AT_GMAX, devices.gmax, g))


# The conductance effects, in the order they are drawn from the seed and applied.
EFFECTS: tuple[DeviceEffect, ...] = (Variability(), StuckAt())


class Devices:
    """The non-ideal crossbars of one model: frozen draws, programmed state, write rule.

    `program(params)` writes the digital parameters: the first call writes every device
    (program and verify to the nearest level, with program noise), later calls write the
    change through the write rule, pulse by pulse (write noise per pulse). It returns the
    `Realisation`. Pulses are counted (`last_pulses`, `total_pulses`)."""

    def __init__(self, spec: Spec, model: EnergyModel):
        d = spec.devices
        if d.set_only and d.bits is None:
            raise ConfigError("devices.set_only: needs devices.bits (set pulses move a device by one level)")
        self.spec, self.model, self.d = spec, model, d
        self.g0, self.gmin, self.gmax = d.window(spec.circuit)
        self.span = self.gmax - self.gmin
        self.step = None if d.levels is None else self.span / (d.levels - 1)  # conductance of one level
        self.couplings = [name for name, _, _ in model.circuit_rules().couplings]
        self.n_copies = 2 if d.copies == "mismatched" else 1
        self.effects = EFFECTS
        draws, writes, reads = np.random.SeedSequence(d.seed).spawn(3)
        self.write_rng = np.random.default_rng(writes)
        self.readout = MeasurementChain(d, np.random.default_rng(reads))
        self.frozen = self._draw(np.random.default_rng(draws), model)
        self.state: dict[str, np.ndarray] = {}  # empty until the first program
        self.last_pulses = 0
        self.total_pulses = 0
        self.last_clipped: dict[str, int] = {}
        self.both_stuck: dict[str, int] = {}  # fault-aware mapping: pairs with both devices stuck

    # --- frozen draws ----------------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator, model: EnergyModel) -> dict[str, np.ndarray]:
        """Per coupling, copy and sign: each conductance effect's draw (EFFECTS); per layer:
        driver gain and offset. Drawn in a fixed order from the seed (zero spreads draw nothing)."""
        d, shapes = self.d, model.param_shapes()
        out: dict[str, np.ndarray] = {}
        for name in self.couplings:
            for c in range(self.n_copies):
                for sign in ("plus", "minus"):
                    key = f"{name}/{c}/{sign}"
                    for effect in self.effects:
                        drawn = effect.draw(d, rng, shapes[name])
                        if drawn is not None:
                            out[f"{effect.name}/{key}"] = drawn
        for layer, n in enumerate(model.sizes):
            if d.driver_gain_sigma > 0:
                out[f"driver_gain/{layer}"] = 1.0 + d.driver_gain_sigma * rng.standard_normal(n)
            if d.driver_offset_sigma > 0:
                out[f"driver_offset/{layer}"] = d.driver_offset_sigma * rng.standard_normal(n)
        if d.drift_nu > 0 or d.drift_nu_std > 0:  # drawn last: the draws above stay those of a device without drift
            for name in self.couplings:
                for c in range(self.n_copies):
                    for sign in ("plus", "minus"):
                        out[f"nu/{name}/{c}/{sign}"] = drift.drift_exponents(d.drift_nu, d.drift_nu_std, rng, shapes[name])
        return out

    # --- programming -----------------------------------------------------------------------------

    def unit(self, name: str) -> float:
        """The conductance (S) one unit of weight of coupling `name` takes on the devices:
        g0, or with scaling (`scale_fraction`) the scale fixed at the first write."""
        scale = self.state.get(f"scale/{name}")
        return self.g0 if scale is None else float(scale)

    def read_gain(self, name: str) -> float:
        """The sense amplifiers' gain of coupling `name`: W = gain (G+ - G-) / g0 (1: no scaling)."""
        scale = self.state.get(f"scale/{name}")
        return 1.0 if scale is None else self.g0 / float(scale)

    def _fix_scales(self, params: Params) -> None:
        """Scaling to the weights (aihwkit's weight_scaling_omega; CrossSim and MemTorch map
        max|W| the same way): each coupling's largest |W| at the first write takes
        `scale_fraction` of the window, the rest is headroom for in-situ updates. For
        training from scratch that is the initial weights' largest |W|. Fixed from then on
        (kept in the state, so a resumed run reads with the same gains)."""
        for name in self.couplings:
            top = float(np.max(np.abs(params[name]))) if np.size(params[name]) else 0.0
            unit = self.d.scale_fraction * self.span / top if top > 0 else self.g0
            self.state[f"scale/{name}"] = np.asarray(unit, dtype=np.float64)

    def _march(self) -> None:
        """The fault map of every array (devices/faults.py, a March test before programming)."""
        pulses = 0
        for name in self.couplings:
            for c in range(self.n_copies):
                for sign in ("plus", "minus"):
                    key = f"{name}/{c}/{sign}"
                    shape = np.shape(self.frozen[f"stuck/{key}"])
                    read = lambda level, key=key, shape=shape: self._conductance(key, np.full(shape, level * self.span))
                    self.state[f"fault/{key}"] = faults.march_test(read, self.gmin, self.gmax)
                    pulses += faults.MARCH_WRITES * int(np.prod(shape))
            self.both_stuck[name] = faults.both_stuck(self.state[f"fault/{name}/0/plus"], self.state[f"fault/{name}/0/minus"])
        self.total_pulses += pulses

    def _targets(self, name: str, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Target conductances above gmin of the pair (G+ - gmin, G- - gmin), clipped to the
        window, and how many weights did not fit. Fault-aware: mapped around the stuck
        devices of the fault map (of the forward copy when the copies are mismatched)."""
        g = np.asarray(w, dtype=np.float64) * self.unit(name)
        clipped = int(np.count_nonzero(np.abs(g) > self.span * (1 + 1e-12)))
        g = np.clip(g, -self.span, self.span)
        if self.d.fault_aware:
            tp, tm = faults.pair_targets(g, self.state[f"fault/{name}/0/plus"], self.state[f"fault/{name}/0/minus"], self.span)
            return tp, tm, clipped
        return np.maximum(g, 0.0), np.maximum(-g, 0.0), clipped

    def program(self, params: Params) -> Realisation:
        """Write `params` (the first call: every device; then: the change, by the write rule)."""
        first = not self.state
        if first and self.d.fault_aware:
            self._march()
        if first and self.d.scale_fraction is not None:
            self._fix_scales(params)
        pulses, self.last_clipped = 0, {}
        for name in self.couplings:
            plus, minus, self.last_clipped[name] = self._targets(name, params[name])
            if not first and self.d.set_only:
                pulses += self._write_set_only(name, plus, minus)
                continue
            for sign, target in (("plus", plus), ("minus", minus)):
                pulses += self._write_full(name, sign, target) if first else self._write_change(name, sign, target)
        self.last_pulses = pulses
        self.total_pulses += pulses
        return self.realise(params)

    def _levels(self, target: np.ndarray) -> np.ndarray:
        """A conductance above gmin in level units (continuous devices: the conductance)."""
        return target if self.step is None else target / self.step

    def _write_full(self, name: str, sign: str, target: np.ndarray) -> int:
        """Program and verify every device to the level nearest its target (program noise)."""
        d, t = self.d, self._levels(target)
        n = t if self.step is None else np.clip(np.rint(t), 0, self.d.levels - 1)
        key = f"{name}/{sign}"
        self.state[f"level/{key}"] = n
        self.state[f"target/{key}"] = t
        self.state[f"acc/{key}"] = t - n  # the accumulator starts with what the level missed
        unit = 1.0 if self.step is None else self.step
        for c in range(self.n_copies):
            g = n * unit
            if d.program_noise > 0:
                g = g + d.program_noise * self.span * self.write_rng.standard_normal(g.shape)
            self.state[f"g/{name}/{c}/{sign}"] = np.clip(g, 0.0, self.span)
        return int(np.size(n))

    def _write_change(self, name: str, sign: str, target: np.ndarray) -> int:
        """Write the change of the target since the last program through the write rule; one
        pulse moves a device by one level (continuous devices: one event writes the change)."""
        d, key = self.d, f"{name}/{sign}"
        t = self._levels(target)
        change = t - self.state[f"target/{key}"]
        self.state[f"target/{key}"] = t
        if self.step is None:  # continuous: the change itself, one event per device that changes
            steps = change
            events = int(np.count_nonzero(change))
        else:
            if d.write_rule == "accumulate":
                acc = self.state[f"acc/{key}"] + change
                steps = np.trunc(acc + np.copysign(LEVEL_SLACK, acc))  # a level reached up to rounding counts
                self.state[f"acc/{key}"] = acc - steps
            elif d.write_rule == "stochastic":
                steps = np.floor(change + self.write_rng.random(change.shape))
            else:  # nearest
                steps = np.rint(change)
        return self._pulse(name, sign, steps)

    def _pulse(self, name: str, sign: str, steps: np.ndarray) -> int:
        """Apply `steps` signed pulses per device to one array (every copy): a device at the
        edge of its levels takes no pulse. Each pulse moves the conductance by one level,
        times the device's step gain (verified_writes), the state-dependent factor
        (step_model) and the up/down asymmetry, with cycle-to-cycle write noise. Continuous
        devices: `steps` is the change itself. Returns the pulses (events) applied."""
        d, key = self.d, f"{name}/{sign}"
        if self.step is None:
            events = int(np.count_nonzero(steps))
        else:
            level = self.state[f"level/{key}"]
            new = np.clip(level + steps, 0, d.levels - 1)
            steps = new - level  # a device at the edge of its window takes no pulse
            self.state[f"level/{key}"] = new
            events = int(np.abs(steps).sum())
        if not events:
            return 0
        moved = steps != 0
        unit = 1.0 if self.step is None else self.step
        for c in range(self.n_copies):
            g = self.state[f"g/{name}/{c}/{sign}"]
            delta = steps * unit
            if d.verified_writes and d.variability > 0:  # aihwkit dw_min_dtod: each device's own step
                delta = delta * self.frozen[f"gain/{name}/{c}/{sign}"]
            if d.step_model == "soft_bounds":  # aihwkit SoftBoundsDevice, on [gmin, gmax]: nominal at mid-window
                x = g / self.span
                delta = delta * np.where(delta > 0, 2.0 * (1.0 - x), 2.0 * x)
            if d.up_down != 0:
                delta = delta * np.where(delta > 0, 1.0 + d.up_down, 1.0 - d.up_down)
            if d.write_noise > 0:  # each pulse's step spreads independently: sum of |steps| draws
                spread = np.abs(delta) if self.step is None else np.sqrt(np.abs(steps)) * unit
                delta = delta + d.write_noise * spread * self.write_rng.standard_normal(g.shape)
            g = np.where(moved, np.clip(g + delta, 0.0, self.span), g)
            self.state[f"g/{name}/{c}/{sign}"] = g
        return events

    def apply_pulses(self, name: str, sign: str, pulses: np.ndarray) -> int:
        """The device write API: apply a signed number of write pulses to each device of one
        array (`name` a coupling, `sign` "plus" or "minus": the G+ or G- devices of every
        copy; `pulses` an integer array of the coupling's shape, > 0 potentiates, < 0
        depresses). The physics is the write model's (`_pulse`: step per level, device step
        gain, soft bounds, asymmetry, write noise, edges of the window; stuck devices read
        as stuck whatever they are pulsed); set_only devices refuse negative pulses. The
        pulses are counted (`last_pulses`, `total_pulses`); `realise` reads the result. A
        caller that pulses directly drives the devices itself: the next `program` writes
        the change of its own targets on top. Returns the pulses applied."""
        if not self.state:
            raise RuntimeError("apply_pulses: program the devices first (the first program writes every device)")
        if name not in self.couplings or sign not in ("plus", "minus"):
            raise ValueError(f"apply_pulses: no array {name!r}/{sign!r}; couplings {self.couplings}, signs plus/minus")
        steps = np.asarray(pulses, dtype=np.float64)
        if steps.shape != self.state[f"level/{name}/{sign}"].shape:
            raise ValueError(f"apply_pulses: {name}/{sign} has shape {self.state[f'level/{name}/{sign}'].shape}, "
                             f"pulses {steps.shape}")
        if self.d.set_only and np.any(steps < 0):
            raise ValueError("apply_pulses: these devices are set_only (PCM): negative pulses cannot be applied")
        n = self._pulse(name, sign, np.rint(steps) if self.step is not None else steps)
        self.last_pulses = n
        self.total_pulses += n
        return n

    def _write_set_only(self, name: str, plus: np.ndarray, minus: np.ndarray) -> int:
        """A pair of set-only devices (PCM: gradual SET, abrupt RESET; Nandakumar et al. 2020;
        aihwkit PCMPresetUnitCell): the change of the pair's target difference accumulates
        (mixed precision) and fires SET pulses on G+ (up) or G- (down); a pair is refreshed
        (both reset, the difference reprogrammed by a verified write) when a healthy device
        passes refresh_threshold of its levels or the pair strays from its target by more
        than REFRESH_ERROR levels (a write its stuck partner could not take)."""
        d, kp, km = self.d, f"{name}/plus", f"{name}/minus"
        tp, tm = self._levels(plus), self._levels(minus)
        change = (tp - tm) - (self.state[f"target/{kp}"] - self.state[f"target/{km}"])
        self.state[f"target/{kp}"], self.state[f"target/{km}"] = tp, tm
        acc = self.state.get(f"pacc/{name}")
        acc = (self.state[f"acc/{kp}"] - self.state[f"acc/{km}"] if acc is None else acc) + change
        steps = np.trunc(acc + np.copysign(LEVEL_SLACK, acc))
        self.state[f"pacc/{name}"] = acc - steps
        pulses = self._pulse(name, "plus", np.maximum(steps, 0.0)) + self._pulse(name, "minus", np.maximum(-steps, 0.0))
        top = d.levels - 1
        lp, lm = self.state[f"level/{kp}"], self.state[f"level/{km}"]
        if d.fault_aware:
            fp, fm = self.state[f"fault/{name}/0/plus"], self.state[f"fault/{name}/0/minus"]
        else:
            fp = fm = np.zeros(np.shape(lp), dtype=np.int8)
        ep = np.where(fp == faults.AT_GMAX, top, np.where(fp == faults.AT_GMIN, 0, lp))
        em = np.where(fm == faults.AT_GMAX, top, np.where(fm == faults.AT_GMIN, 0, lm))
        high = d.refresh_threshold * top
        due = ((lp > high) & (fp == faults.FREE)) | ((lm > high) & (fm == faults.FREE))
        due |= np.abs((ep - em) - (tp - tm)) > REFRESH_ERROR
        if due.any():
            pulses += self._refresh(name, due, tp, tm)
        return pulses

    def refresh_all(self) -> int:
        """Reset every pair and program-and-verify it to its current target (what a PCM chip
        does before it is put to use after in-situ training: set-only pairs carry a common
        conductance that drifts with the devices' spread of nu; Nandakumar et al. 2020).
        Returns the pulses (counted)."""
        if self.step is None or not self.state:
            raise ValueError("refresh_all: needs programmed devices with levels (devices.bits)")
        pulses = 0
        for name in self.couplings:
            tp, tm = self.state[f"target/{name}/plus"], self.state[f"target/{name}/minus"]
            pulses += self._refresh(name, np.ones(np.shape(tp), dtype=bool), tp, tm)
        self.last_pulses = pulses
        self.total_pulses += pulses
        return pulses

    def _refresh(self, name: str, due: np.ndarray, tp: np.ndarray, tm: np.ndarray) -> int:
        """Reset both devices of the pairs `due` and program-and-verify them to their targets
        (levels `tp`, `tm`; program noise): two pulses (reset, verified set) per device."""
        d, unit = self.d, self.step
        n = {}
        for sign, t in (("plus", tp), ("minus", tm)):
            n[sign] = np.clip(np.rint(t), 0, d.levels - 1)
            level = self.state[f"level/{name}/{sign}"]
            self.state[f"level/{name}/{sign}"] = np.where(due, n[sign], level)
            for c in range(self.n_copies):
                g = n[sign] * unit
                if d.program_noise > 0:
                    g = g + d.program_noise * self.span * self.write_rng.standard_normal(g.shape)
                key = f"g/{name}/{c}/{sign}"
                self.state[key] = np.where(due, np.clip(g, 0.0, self.span), self.state[key])
        for sign, t in (("plus", tp), ("minus", tm)):
            self.state[f"acc/{name}/{sign}"] = np.where(due, t - n[sign], self.state[f"acc/{name}/{sign}"])
        acc = self.state.get(f"pacc/{name}", self.state[f"acc/{name}/plus"] - self.state[f"acc/{name}/minus"])
        self.state[f"pacc/{name}"] = np.where(due, (tp - n["plus"]) - (tm - n["minus"]), acc)
        self.refreshes = getattr(self, "refreshes", 0) + int(due.sum())
        return 4 * int(due.sum())

    def _conductance(self, key: str, g: np.ndarray) -> np.ndarray:
        """The conductances (S) of the devices `key` ("<coupling>/<copy>/<sign>") programmed
        to `g` above gmin: with every conductance effect (EFFECTS)."""
        g = self.gmin + g
        for effect in self.effects:
            drawn = self.frozen.get(f"{effect.name}/{key}")
            if drawn is not None:
                g = effect.apply(g, drawn, self)
        return g

    def realise(self, params: Params) -> Realisation:
        """The realised circuit of the programmed state (`params` gives the biases)."""
        copies: list[dict[str, Conductances]] = []
        d, t = self.d, self.d.time_since_programming
        aged = t > 0 and (d.drift_nu > 0 or d.drift_nu_std > 0 or d.flicker_q > 0)
        # the 1/f noise accumulated by time t: one seeded draw per time (the same devices read at t agree)
        rng = np.random.default_rng(np.random.SeedSequence([d.seed, 1729, int(round(t * 1e3))])) if aged else None
        for c in range(self.n_copies):
            out = {}
            for name in self.couplings:
                pair = [self._conductance(f"{name}/{c}/{sign}", self.state[f"g/{name}/{c}/{sign}"]) for sign in ("plus", "minus")]
                gain = self.read_gain(name)
                if aged:
                    fresh = pair
                    nus = [self.frozen.get(f"nu/{name}/{c}/{sign}", 0.0) for sign in ("plus", "minus")]
                    pair = [drift.flicker(drift.drifted(g, nu, t), self.gmax, d.flicker_q, t, rng) for g, nu in zip(fresh, nus)]
                    if d.drift_compensation:
                        gain = gain * drift.compensation(*fresh, *pair)
                out[name] = Conductances(pair[0], pair[1], self.last_clipped.get(name, 0), gain)
            copies.append(out)
        biases = {k: np.asarray(v) for k, v in params.items() if k not in self.couplings}
        layers = range(len(self.model.sizes))
        gain = tuple(self.frozen.get(f"driver_gain/{l}") for l in layers)
        offset = tuple(self.frozen.get(f"driver_offset/{l}") for l in layers)
        return Realisation(self.g0, self.gmin, self.gmax, copies[0], copies[-1], biases, gain, offset)

    # --- checkpoint state ------------------------------------------------------------------------

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, json-ready meta): frozen draws, programmed state, pulse count, noise streams."""
        arrays = {f"frozen/{k}": v for k, v in self.frozen.items()}
        arrays.update({f"state/{k}": v for k, v in self.state.items()})
        meta = {
            "write_rng": self.write_rng.bit_generator.state,
            "read_rng": self.readout.rng.bit_generator.state,
            "total_pulses": self.total_pulses,
        }
        return arrays, json.loads(json.dumps(meta))

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict, where: str) -> None:
        """Restore what `state_dict` gave; the frozen draws must be these devices' (same
        config and seed), else CheckpointError."""
        frozen = {k[7:]: v for k, v in arrays.items() if k.startswith("frozen/")}
        if set(frozen) != set(self.frozen) or any(frozen[k].shape != v.shape for k, v in self.frozen.items()):
            raise CheckpointError(f"{where}: its device state does not fit this devices config (another preset or model)")
        self.frozen = {k: np.asarray(frozen[k], dtype=v.dtype) for k, v in self.frozen.items()}
        self.state = {k[6:]: np.asarray(v) for k, v in arrays.items() if k.startswith("state/")}
        self.write_rng.bit_generator.state = meta["write_rng"]
        self.readout.rng.bit_generator.state = meta["read_rng"]
        self.total_pulses = int(meta.get("total_pulses", 0))
        if self.d.fault_aware and self.state:
            self.both_stuck = {n: faults.both_stuck(self.state[f"fault/{n}/0/plus"], self.state[f"fault/{n}/0/minus"])
                               for n in self.couplings}
