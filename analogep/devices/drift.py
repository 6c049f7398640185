"""PCM after programming: conductance drift, accumulated 1/f read noise, and global drift
compensation (method.md section 7, 'Devices').

The amorphous phase of a phase-change device relaxes structurally after it is programmed,
so its conductance decays as a power law in the time since programming,

    G(t) = G(t0) ((t + t0) / t0)^(-nu),        t0 = 20 s,

with a drift exponent nu per device (Ielmini et al., IEEE Trans. Electron Devices 54, 308
(2007); Le Gallo et al., Adv. Electron. Mater. 4, 1700627 (2018); the fitted statistical
model of Nandakumar et al., ICECS 2019 and Joshi et al., Nat. Commun. 11, 2473 (2020), also
aihwkit's PCMLikeNoiseModel: nu ~ 0.05-0.1 with a spread of ~0.01-0.04, t0 = 20 s). On top,
the 1/f noise accumulated since programming,

    sigma(G) = |G(t)| Q(G) sqrt(ln((t + t0 + t_read) / (2 t_read))),  t_read = 250 ns,
    Q(G) = min(q (G / gmax)^(-0.65), 0.2)

(the same papers; q = 0.0088 in the fit). `time_since_programming` = 0: no drift, no noise.

Global drift compensation (Joshi et al. 2020; aihwkit GlobalDriftCompensation): right after
programming, and again at the time of use, the array is read with all inputs at one; the
ratio of the two summed |outputs| is one digital scale factor per array, applied to its
read gain. It undoes the common decay, not the device-to-device spread of nu.
"""

from __future__ import annotations

import numpy as np

T0 = 20.0  # s, first read after programming (the drift fit's reference time)
T_READ = 250e-9  # s, the read pulse of the 1/f fit
Q_EXPONENT = -0.65  # Q(G) ~ (G / gmax)^-0.65
Q_MAX = 0.2


def drift_exponents(nu: float, nu_std: float, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Frozen drift exponents per device: |N(nu, nu_std)| (a device does not grow by drift)."""
    return np.abs(nu + nu_std * rng.standard_normal(shape))


def drifted(g: np.ndarray, nu: np.ndarray, t: float) -> np.ndarray:
    """Conductances `g` (S) programmed at time 0, read `t` seconds later."""
    if t <= 0:
        return g
    return g * ((t + T0) / T0) ** (-nu)


def flicker(g: np.ndarray, gmax: float, q: float, t: float, rng: np.random.Generator) -> np.ndarray:
    """`g` (S, already drifted) plus the 1/f read noise accumulated over `t` seconds, >= 0."""
    if t <= 0 or q <= 0:
        return g
    rel = np.maximum(np.abs(g) / gmax, 1e-3)
    qs = np.minimum(q * rel**Q_EXPONENT, Q_MAX)
    sigma = qs * np.sqrt(np.log((t + T0 + T_READ) / (2 * T_READ)))
    return np.maximum(g + np.abs(g) * sigma * rng.standard_normal(g.shape), 0.0)


def compensation(plus0: np.ndarray, minus0: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> float:
    """The global drift compensation factor of one array: the summed |outputs| of an
    all-ones read right after programming over the same read now (1 when nothing is read)."""
    before = float(np.sum(np.abs(np.sum(plus0 - minus0, axis=1))))
    now = float(np.sum(np.abs(np.sum(plus - minus, axis=1))))
    return before / now if now > 0 else 1.0
