"""A circuit someone could build: the continuous Hopfield network of op-amps, resistors and
diodes (Hopfield 1984, PNAS 81, 3088), layered as the paper's model (method.md section 10).

Each hidden neuron is a diode-limited amplifier (circuits/physical.lib, `hidden_diode`): a
transimpedance amplifier turns the current its crossbar columns and bias deliver, g0 c,
into the voltage r c (r = 1/2: the transimpedance gain that keeps it inside the rails);
a resistor R_n from that voltage into the neuron node, with a pair of
antiparallel diodes from the node to ground, sets the node voltage s by Kirchhoff's law

    (r c - s) / R_n = I_D(s) = 2 I_s sinh(s / (N V_T))        (Shockley, both diodes)

and buffers copy s and -s onto the crossbar rows (the inverted copy realises negative
weights). So s = g(c), the saturating transfer curve of Hopfield's amplifiers, with
g^{-1}(s) = (s + kappa sinh(s / u)) / r, kappa = 2 I_s R_n, u = N V_T. The fixed point of the
whole circuit is the stationary point of Hopfield's energy in the amplifier outputs,

    E(s) = sum_l sum_i L_l(s_i) - sum_l s_{l+1} . W_l s_l - b . s,
    L(s) = integral_0^s g^{-1} = (s^2 / 2 + kappa u (cosh(s / u) - 1)) / r  (hidden units),
    L(s) = s^2 / 2                                                     (visible units),

since dE/ds_i = g^{-1}(s_i) - c_i is the current balance at the node (divided by 1/R_n).
The interactions are the hopfield family's (Coupling, Bias: model/interactions.py); only
the units differ. The activity is the state itself, so the EP term of W_l is the local
product -s_{l+1} s_l^T of two amplifier outputs (Hopfield 1984, eq. 7) and no multiplier
is needed; the nonlinearity sits in the leak, which is convex, while an indefinite W
keeps E non-convex.

Device constants (the .model card of circuits/physical.lib carries the same numbers, and
tests/test_hopfield84.py checks they agree): 1N4148 small-signal diode, I_s = 2.52 nA,
N = 1.752 (the manufacturer's SPICE model, onsemi/Fairchild 1N4148 `.model D1N4148 D
(IS=2.52n RS=0.568 N=1.752 ...)`; the 0.568 ohm series resistance is left out: at the
<= 0.1 mA a neuron carries it drops < 60 uV). V_T = k T / q at ngspice's default 27 C.
R_n = 10 kOhm, a design choice (kappa = 5.04e-5: the curve is linear to about 0.2 V and
saturates logarithmically near 0.5 V).
"""

from __future__ import annotations

import numpy as np

from analogep.config.sections import ModelSpec
from analogep.errors import AnalogepError
from analogep.model.energy import Amplifier
from analogep.model.interactions import Bias, Coupling, Interaction
from analogep.model.layers import Layer, LinearUnits
from analogep.model.network import Network

# 1N4148 (onsemi/Fairchild SPICE model card): saturation current (A) and emission coefficient.
DIODE_IS = 2.52e-9
DIODE_N = 1.752
# Thermal voltage k T / q at 27 C (ngspice's default TEMP and TNOM), with ngspice's own
# constants (src/include/ngspice/const.h: CONSTboltz, CHARGE, CONSTCtoK).
BOLTZMANN = 1.38064852e-23
CHARGE = 1.6021766208e-19
TEMPERATURE_K = 27.0 + 273.15
THERMAL_VOLTAGE = BOLTZMANN * TEMPERATURE_K / CHARGE
# The resistor from the transimpedance output into the diode node (ohm): a design choice.
R_NODE = 1.0e4
# The op-amps' supply rails (V) and the largest output an op-amp holds exactly: the OPA241
# swings to within 50 mV of its rails (datasheet SBOS075); the macromodel's rail clamps
# pass < 1e-8 A below SWING_V, so an equilibrium needing more is refused.
SUPPLY_V = 5.0
SWING_V = 4.7
# The hidden transimpedance gain r (its feedback resistor is r / g0): the amplifier holds
# t = -r c, so a drive |c| up to SWING_V / r stays inside the rails (the trained tiny
# model's first hidden layer needs |c| up to 3). A design choice; it scales the leak by 1/r.
INPUT_GAIN = 0.5
# The op-amp of every cell: TI/Burr-Brown OPA241 (datasheet SBOS075): quiescent current 25 uA
# per amplifier, gain-bandwidth 35 kHz, slew rate 0.01 V/us (circuits/physical.lib's macromodel
# carries the first two; its gain stage is linear, so it does not slew).
OPA241 = Amplifier("OPA241", quiescent_a=25e-6, gbw_hz=35e3, slew_v_per_s=0.01e6,
                   source="TI/Burr-Brown OPA241 datasheet SBOS075")
# The inverters' and buffers' resistors of the cells (ohm): Ra, Rb, Rc, Rd of physical.lib.
R_INVERTER = 1.0e5
# The op-amp macromodel's output resistance (ohm, physical.lib's Ro: assumed, the datasheet gives none).
R_OUT = 100.0
# Newton iterations of the exact per-unit solve g^{-1}(s) = c, started above the root
# (converges monotonically from there: g^{-1} is convex for s > 0).
_NEWTON_ITERATIONS = 40


class DiodeUnits(Layer):
    """Hidden neurons of diode-limited amplifiers: E_l = L(s) - s . c, L as above."""

    def __init__(
        self,
        size: int,
        kappa: float = 2.0 * DIODE_IS * R_NODE,
        u: float = DIODE_N * THERMAL_VOLTAGE,
        r: float = INPUT_GAIN,
        diodes: int = 1,
    ):
        """`diodes` in series per branch (model.diodes): the same current across n equal
        diodes drops n times the voltage, so u = n N V_T (kappa unchanged); `u` is one diode's."""
        self.size, self.kappa, self.u, self.r, self.diodes = size, kappa, diodes * u, r, diodes

    def activity(self, s, order):
        return None  # the amplifier output is the state itself

    def inverse(self, s: np.ndarray) -> np.ndarray:
        """g^{-1}(s) = (s + kappa sinh(s / u)) / r: the drive that holds the node at s."""
        with np.errstate(over="ignore"):
            return (s + self.kappa * np.sinh(s / self.u)) / self.r

    def curvature(self, s: np.ndarray) -> np.ndarray:
        """L''(s) = (1 + kappa / u cosh(s / u)) / r."""
        with np.errstate(over="ignore"):
            return (1.0 + (self.kappa / self.u) * np.cosh(s / self.u)) / self.r

    def energy(self, s):
        with np.errstate(over="ignore"):
            leak = 0.5 * s * s + (self.kappa * self.u) * (np.cosh(s / self.u) - 1.0)
        return np.sum(leak, axis=1) / self.r

    def transfer(self, c: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
        """s = g(c), the root of g^{-1}(s) = c, per unit, by Newton on f(s) = s + kappa sinh(s / u)
        - r |c| over [0, b], b = min(r |c|, u log(1 + 2 r |c| / kappa)), an upper bound of the
        root (above u asinh(r |c| / kappa); sinh(s / u) <= r |c| / kappa + 1/2 cannot overflow).
        f is convex there, so a step from above the root stays above it and one from below
        lands above it: clipped to [0, b] after each step, Newton converges from any start in
        [0, b] with no overshoot, and since f''/f' <= 1/u, a step delta leaves an error below
        delta^2 / (2u): it stops once that is under 4 eps. `start`: a guess of s (the block
        solver's current state: near an equilibrium, two steps; benchmarks/block_solver.py);
        None: from b."""
        mag = np.abs(c)
        mag *= self.r
        bound = np.multiply(mag, 2.0 / self.kappa)  # u log(1 + 2x) >= u asinh(x), x = r |c| / kappa
        np.log1p(bound, out=bound)
        bound *= self.u
        np.minimum(bound, mag, out=bound)
        if start is None:
            s = bound.copy()
        else:  # the guess's magnitude where its sign is c's, else 0; clipped into [0, b]
            s = np.sign(c) * start
            s = s.astype(c.dtype, copy=False)
            np.maximum(s, 0.0, out=s)
            np.minimum(s, bound, out=s)
        done = np.sqrt(2.0 * self.u * 4.0 * np.finfo(c.dtype).eps)
        step, slope = np.empty_like(s), np.empty_like(s)
        for _ in range(_NEWTON_ITERATIONS):
            np.multiply(s, 1.0 / self.u, out=slope)
            np.sinh(slope, out=step)
            np.cosh(slope, out=slope)
            step *= self.kappa  # f(s)
            step += s
            step -= mag
            slope *= self.kappa / self.u  # f'(s)
            slope += 1.0
            step /= slope
            s -= step
            np.minimum(s, bound, out=s)
            np.maximum(s, 0.0, out=s)
            if max(-np.min(step), np.max(step)) <= done:
                break
        return np.copysign(s, c, out=s)

    def block_update(self, s, drive, derivs, spring, omega):
        """Given the drive, E_l is convex and separable: solved exactly per unit (s = g(c),
        Newton warm-started from the current s), then moved by omega towards it."""
        slope = self.inverse(s) - drive
        target = self.transfer(drive, start=s)
        s += omega * (target - s) if not np.all(omega == 1.0) else target - s
        return slope

    def block_slope(self, s, drive, derivs, spring):
        return self.inverse(s) - drive

    def hessian_vector(self, s, v, drive, derivs, dv_drive):
        return self.curvature(s) * v - dv_drive

    @property
    def cell(self):
        return ("hidden_diode", {"r": self.r}) if self.diodes == 1 else ("hidden_diodes", {"r": self.r, "nd": self.diodes})

    def cell_nodeset(self, s, drive):
        """hidden_diode's nodes: t = -r c, k = -s, the inverter's input at 0. (Not the op-amps'
        gain nodes: held there, the 2.5 GOhm nodes sent Newton astray on the tiny model's
        decks, gmin and source stepping failing; measured, docs/results/physical.md.)"""
        return {"t": -self.r * drive, "k": -s, "ia": 0.0 * s}

    # hidden_diode: the transimpedance amplifier (t = -r c, feedback r/g0) sources the sense
    # line's g0 c and the diode current (r c - s)/R_n; the follower (m = -s) and the inverter
    # (n = +s) source their rows and R_INVERTER each.
    cell_amplifiers = 3
    cell_row_lag = 2.0  # m through the follower (1), p through the follower and the inverter (3)

    def cell_supply(self, s, drive, g0):
        diode = (self.r * drive - s) / R_NODE  # through R_n and the diode pair (same sign as s)
        sense = g0 * np.sum(np.abs(drive), axis=1)
        other = np.sum(np.abs(diode) + 2.0 * np.abs(s) / R_INVERTER, axis=1)
        heat = g0 * self.r * drive * drive + diode * diode * R_NODE + s * diode + 2.0 * s * s / R_INVERTER
        return sense, other, np.sum(heat, axis=1)

    def cell_start(self, s, drive, g0, rows):
        """The op-amps' gain nodes: each output (t = -r c, m = -s, n = +s) plus the drop its
        output current makes across R_OUT (Rf to the sense line, R_n to the diodes; the rows
        and Ra, Rb to virtual grounds)."""
        plus, minus = rows
        t = -self.r * drive
        return {"xtia.g": t + R_OUT * (t * g0 / self.r + (t + s) / R_NODE),
                "xbuf.g": -s + R_OUT * (-s) * (minus + 1.0 / R_INVERTER),
                "xinv.g": s + R_OUT * s * (plus + 1.0 / R_INVERTER)}

    def cell_lag(self, g0, column):
        """Transimpedance stage (noise gain 1 + r G / g0), then the rows: m through the
        follower (1), p through the follower and the inverter (1 + 2); their mean, 2."""
        return 1.0 + self.r * column / g0 + 2.0


class AmplifierVisible(LinearUnits):
    """Visible neurons: the same transimpedance amplifier and buffers without the diodes
    (linear, E_l = 1/2 x^2 - x . c: x enters linearly, as in the paper's model)."""

    @property
    def cell(self):
        return ("visible_amp", {})

    def cell_nodeset(self, s, drive):
        """visible_amp's nodes: t = -c, u = c, the inverters' inputs at 0."""
        zero = 0.0 * s
        return {"t": -drive, "u": drive, "ia": zero, "ib": zero}

    # visible_amp: the transimpedance amplifier (t = -c) sources the sense line's g0 c and
    # Ra; the inverter (u = c) Rb and the leak g0 (c - x); the follower (p = x) and the
    # inverter (m = -x) their rows and Rc, Rd.
    cell_amplifiers = 4
    cell_row_lag = 2.0  # p through the follower (1), m through the follower and the inverter (3)

    def cell_supply(self, s, drive, g0):
        leak = g0 * (drive - s)
        sense = g0 * np.sum(np.abs(drive), axis=1)
        # The inverter's output current is Rb's and the leak's together (they may cancel).
        inverter = np.abs(drive / R_INVERTER + leak)
        other = np.sum(np.abs(drive) / R_INVERTER + inverter + 2.0 * np.abs(s) / R_INVERTER, axis=1)
        heat = g0 * drive * drive + 2.0 * drive * drive / R_INVERTER + leak * (drive - s) + 2.0 * s * s / R_INVERTER
        return sense, other, np.sum(heat, axis=1)

    def cell_start(self, s, drive, g0, rows):
        """The op-amps' gain nodes: each output (t = -c, u = c, p = x, m = -x) plus the drop
        its output current makes across R_OUT."""
        plus, minus = rows
        return {"xtia.g": -drive + R_OUT * (-drive) * (g0 + 1.0 / R_INVERTER),
                "xinv.g": drive + R_OUT * (drive / R_INVERTER + g0 * (drive - s)),
                "xbuf.g": s + R_OUT * s * (plus + 1.0 / R_INVERTER),
                "xneg.g": -s + R_OUT * (-s) * (minus + 1.0 / R_INVERTER)}

    def cell_lag(self, g0, column):
        """Transimpedance stage (noise gain 1 + G / g0), the inverter (2), the leak into x
        (no capacitance), then the rows: p through the follower (1), m through the follower
        and the inverter (1 + 2); their mean, 2."""
        return 1.0 + column / g0 + 2.0 + 2.0


class Hopfield84Energy(Network):
    """The layered Hopfield (1984) circuit: linear visible amplifiers, diode-limited hidden
    amplifiers, crossbars W_l between adjacent layers and biases (the hopfield family's
    table; `model.activation` and `model.clamp` do not apply: the diodes are the
    nonlinearity). Weights Xavier-normal with `model.init_gain`, biases zero. Its circuit
    is in circuits/physical.lib."""

    library = "physical.lib"
    # The op-amps' rails (V): +-5 V, within the OPA241's +-18 V supply range (circuits/physical.lib).
    supplies = (("vcc", SUPPLY_V), ("vee", -SUPPLY_V))
    swing = SWING_V
    amplifier = OPA241
    klu = False  # KLU with a .nodeset failed on these cells in ngspice-46 (energy.CircuitRules.klu)
    # A read gain's 0 V column sources: Newton on these cells meets a current test of 1e-12 A,
    # not 1e-14 A; 1e-12 A is 1e-8 of g0 x 1 V (energy.CircuitRules.sense_abstol).
    sense_abstol = 1e-12

    def __init__(self, spec: ModelSpec):
        if spec.skip_rank:
            raise AnalogepError("model.skip_rank: family hopfield84 has no skip coupling (set it to 0)")
        gain, chain = spec.init_gain, len(spec.sizes) - 1
        layers: list[Layer] = [AmplifierVisible(spec.sizes[0])] + [DiodeUnits(n, diodes=spec.diodes) for n in spec.sizes[1:]]
        table: list[Interaction] = [Bias("b_x", 0)]
        for l in range(chain):
            table += [Coupling(f"W{l}", l, l + 1, gain), Bias(f"b{l}", l + 1)]
        super().__init__(layers, table, spec.dtype)
