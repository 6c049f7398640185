"""The sections of model.yaml that describe the analog hardware: the circuit the SPICE backend
simulates (`circuit`, method.md section 7) and the non-ideal crossbar devices both backends
realise (`devices`, method.md section 7, 'Devices'; its packaged presets are config/presets.py's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from analogep.config.presets import with_preset
from analogep.config.schema import meta

# circuit.scheduler's value for "no running cluster: start one on this machine".
LOCAL_SCHEDULER = "local"
# The longest wait a timeout key may ask for (a day): the operating system's waits take
# at most about 24 days in milliseconds, and a longer one overflows.
MAX_TIMEOUT_S = 86400.0


@dataclass(frozen=True)
class CircuitSpec:
    """The analog circuit (method.md section 7); used by the SPICE backend."""

    g0: float = field(default=1e-4, metadata=meta("unit conductance in siemens (1 state unit = 1 V)", gt=0))
    gmin: float = field(default=0.0, metadata=meta("smallest programmable crossbar conductance (S)", ge=0))
    gmax: float = field(default=1e-3, metadata=meta("largest programmable crossbar conductance (S)", gt=0))
    clip: bool = field(
        default=False, metadata=meta("clip weights that do not fit [gmin, gmax] (with a count) instead of failing")
    )
    capacitance: float = field(default=0.0, metadata=meta("node capacitance to ground in farads (0: none)", ge=0))
    reltol: float = field(default=1e-8, metadata=meta("ngspice relative tolerance", gt=0, lt=1))
    vntol: float = field(default=1e-10, metadata=meta("ngspice absolute voltage tolerance (V)", gt=0))
    abstol: float = field(default=1e-14, metadata=meta("ngspice absolute current tolerance (A)", gt=0))
    runner: str = field(
        default="auto",
        metadata=meta("ngspice interface: shared library (PySpice), subprocess, dask (workers of a Dask cluster), or auto", registry="runner", also=("auto",)),
    )
    timeout: float = field(
        default=120.0,
        metadata=meta("seconds before one ngspice run (one sweep of training points) is abandoned", gt=0, le=MAX_TIMEOUT_S),
    )
    scheduler: str = field(
        default=LOCAL_SCHEDULER,
        metadata=meta(
            "the dask runner's cluster: local (a LocalCluster, one worker per free core) or a scheduler address tcp://HOST:PORT",
            pattern=r"local|(tcp://)?(?![a-z]+://)\S+:\d+",
            pattern_help="must be 'local' or a Dask scheduler address tcp://HOST:PORT such as tcp://10.0.0.5:8786 "
                         "(tls:// needs certificates analogep does not set up)",
        ),
    )
    connect_timeout: float = field(
        default=10.0,
        metadata=meta("seconds to reach a running Dask scheduler (circuit.scheduler) and hear its greeting", gt=0,
                      le=MAX_TIMEOUT_S),
    )


@dataclass(frozen=True)
class DevicesSpec:
    """The non-ideal analog crossbar (method.md section 7, 'Devices'): the device model
    both backends realise through `program(params)` (devices/crossbar.py).

    `preset` names a packaged preset (analogep/config/devices/<name>.yaml, every value
    with its source); keys written beside it override the preset's. The default, `ideal`,
    has no device effect: the circuit of circuit.g0/gmin/gmax, exact."""

    preset: str = field(default="ideal", metadata=meta("device preset (analogep/config/devices/<name>.yaml): ideal, rram, rram-stress, pcm, periphery; "
                                                    "combined with +, e.g. rram+periphery"))
    gmin: float | None = field(
        default=None, metadata=meta("smallest device conductance (S); null: circuit.gmin", ge=0)
    )
    gmax: float | None = field(
        default=None, metadata=meta("largest device conductance (S); null: circuit.gmax", gt=0)
    )
    w_max: float | None = field(
        default=None,
        metadata=meta("the |W| that spans the whole window: g0 = (gmax - gmin) / w_max; null: g0 = circuit.g0", gt=0),
    )
    scale_fraction: float | None = field(
        default=None,
        metadata=meta(
            "map each coupling's largest |W| at the first write onto this fraction of the window (aihwkit "
            "weight_scaling_omega), realised as a read gain of that coupling's sense amplifiers; null: w_max "
            "(or circuit.g0) for every coupling", gt=0, le=1,
        ),
    )
    fault_aware: bool = field(
        default=False,
        metadata=meta(
            "find stuck devices with a March test before the first write and map every weight around them "
            "(the healthy device of a pair carries the weight; devices/faults.py)"
        ),
    )
    bits: int | None = field(
        default=None,
        metadata=meta("programming levels per device, 2^bits over [gmin, gmax]; null: continuous", ge=1, le=24),
    )
    write_rule: Literal["accumulate", "stochastic", "nearest"] = field(
        default="accumulate",
        metadata=meta(
            "how an update is written: accumulate (digital accumulator, a pulse per level crossed), stochastic "
            "(stochastic rounding to a level), nearest (round to the nearest level: small updates are lost)"
        ),
    )
    variability: float = field(
        default=0.0,
        metadata=meta("device-to-device spread d ~ 1 + variability * N(0, 1), frozen: of the whole device (G = d "
                      "G_programmed), or with verified_writes of its pulse step", ge=0),
    )
    verified_writes: bool = field(
        default=False,
        metadata=meta("full writes are program-and-verify, so they cancel the device gain d; d then spreads each "
                      "device's pulse step (aihwkit dw_min_dtod) and gmin is not scaled"),
    )
    step_model: Literal["constant", "soft_bounds"] = field(
        default="constant",
        metadata=meta("how a pulse's step depends on the state: constant, or soft_bounds (up steps shrink toward gmax, "
                      "down steps toward gmin, equal at mid-window; aihwkit SoftBoundsDevice)"),
    )
    up_down: float = field(
        default=0.0,
        metadata=meta("up/down asymmetry of the pulse step: up x (1 + up_down), down x (1 - up_down) (aihwkit up_down)",
                      gt=-1, lt=1),
    )
    set_only: bool = field(
        default=False,
        metadata=meta("devices are only potentiated by pulses (PCM: gradual SET, abrupt RESET): a pair's weight moves "
                      "by SET pulses on one device or the other, and a pair is refreshed (reset and reprogrammed) "
                      "when a device passes refresh_threshold or the pair strays from its target"),
    )
    refresh_threshold: float = field(
        default=0.75,
        metadata=meta("set_only: refresh a pair when a device passes this fraction of the window (aihwkit "
                      "PCMPresetUnitCell refresh_upper_thres)", gt=0, le=1),
    )
    drift_nu: float = field(
        default=0.0, metadata=meta("mean drift exponent nu of G(t) = G(t0) ((t + t0)/t0)^-nu (PCM; devices/drift.py)", ge=0)
    )
    drift_nu_std: float = field(default=0.0, metadata=meta("device-to-device spread of nu (frozen)", ge=0))
    flicker_q: float = field(
        default=0.0,
        metadata=meta("1/f read noise accumulated since programming: Q at G = gmax of the PCM fit (devices/drift.py)",
                      ge=0),
    )
    drift_compensation: bool = field(
        default=True, metadata=meta("global drift compensation: one all-ones reference read per array rescales its gain")
    )
    time_since_programming: float = field(
        default=0.0, metadata=meta("seconds between programming and use (drift, 1/f noise); 0: right after", ge=0)
    )
    program_noise: float = field(
        default=0.0, metadata=meta("std of a device's conductance after a full (initial) write, relative to gmax - gmin", ge=0)
    )
    write_noise: float = field(
        default=0.0, metadata=meta("std of each programming pulse's conductance step, relative to the step", ge=0)
    )
    read_noise: float = field(
        default=0.0, metadata=meta("std of each measured node voltage (V), drawn per equilibrium measurement", ge=0)
    )
    stuck_gmin: float = field(default=0.0, metadata=meta("share of devices stuck at gmin (frozen)", ge=0, le=1))
    stuck_gmax: float = field(default=0.0, metadata=meta("share of devices stuck at gmax (frozen)", ge=0, le=1))
    driver_gain_sigma: float = field(
        default=0.0, metadata=meta("per-neuron activation-driver gain spread: a = g rho(s) + o, g ~ 1 + sigma N(0, 1)", ge=0)
    )
    driver_offset_sigma: float = field(
        default=0.0, metadata=meta("per-neuron activation-driver offset spread (V): o ~ sigma N(0, 1)", ge=0)
    )
    adc_bits: int | None = field(
        default=None, metadata=meta("ADC bits of the measured node voltages; null: exact", ge=1, le=24)
    )
    adc_range: float = field(default=5.0, metadata=meta("ADC full scale: +-adc_range V", gt=0))
    dac_bits: int | None = field(
        default=None, metadata=meta("DAC bits of the anchor voltages (x_t and the nudge anchor); null: exact", ge=1, le=24)
    )
    dac_range: float = field(default=5.0, metadata=meta("DAC full scale: +-dac_range V", gt=0))
    copies: Literal["bidirectional", "mismatched"] = field(
        default="bidirectional",
        metadata=meta(
            "bidirectional: one device read both ways; mismatched: the forward and transposed reads go through two "
            "independently drawn copies (no energy: the numpy solver then solves the circuit's KCL)"
        ),
    )
    wire_resistance: float = field(
        default=0.0, metadata=meta("resistance of each crossbar line segment (ohm); SPICE backend only", ge=0)
    )
    seed: int = field(default=0, metadata=meta("seed of the device draws, write noise and read noise", ge=0))

    @staticmethod
    def resolve(data: Any, path: str) -> Any:
        """`data` with its preset's values under the keys it does not set (config/schema.py
        calls this before checking the keys)."""
        return with_preset(data, path)

    # Keys that change nothing by themselves (how to write, full scales of absent converters,
    # seeds, which copy is read: identical copies without draws).
    NEUTRAL = ("preset", "write_rule", "adc_range", "dac_range", "copies", "seed", "refresh_threshold",
               "drift_compensation", "time_since_programming")

    @property
    def ideal(self) -> bool:
        """No device effect at all: the circuit of circuit.g0/gmin/gmax, exact."""
        default = type(self)()
        return all(getattr(self, f.name) == getattr(default, f.name)
                   for f in dataclasses.fields(self) if f.name not in self.NEUTRAL)

    def window(self, circuit: CircuitSpec) -> tuple[float, float, float]:
        """(g0, gmin, gmax): the device window and the unit conductance that maps |W| = w_max onto it."""
        gmin = circuit.gmin if self.gmin is None else self.gmin
        gmax = circuit.gmax if self.gmax is None else self.gmax
        g0 = circuit.g0 if self.w_max is None else (gmax - gmin) / self.w_max
        return g0, gmin, gmax

    @property
    def levels(self) -> int | None:
        """Programming levels per device (None: continuous)."""
        return None if self.bits is None else 2**self.bits
