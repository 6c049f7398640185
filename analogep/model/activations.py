"""Activation functions rho of the hidden units, with the derivatives the solvers need
(method.md section 1)."""

from __future__ import annotations

import numpy as np


class Activation:
    """rho and its first two derivatives, elementwise.

    `soft_silu` is the reference code's soft clamp of SiLU, clamp*tanh(silu(u)/clamp):
    without it the method blew up within 400-1250 steps in our runs of the paper config.
    """

    def __init__(self, name: str, clamp: float = 10.0):
        if name not in ("silu", "soft_silu"):
            raise ValueError(f"unknown activation {name!r}")
        self.name, self.clamp = name, clamp

    def evaluate(self, u: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        """rho and its derivatives up to `order`. Hot in every solver (profiled: most of a
        relaxation sweep), so it computes nothing extra and works in place: each fresh
        batch-sized temporary costs more than the arithmetic on it. The logistic is
        1 / (1 + exp(-u)), not the tanh form: numpy's float32 exp is about twice as fast."""
        sig = np.negative(u)
        with np.errstate(over="ignore", under="ignore"):
            np.exp(sig, out=sig)  # inf for u < -88 (float32): sig is then 0, its limit
        sig += 1.0
        np.reciprocal(sig, out=sig)
        f = u * sig
        df = d2f = one_minus = None
        if order >= 1:
            one_minus = 1.0 - sig
            df = u * one_minus
            df += 1.0
            df *= sig  # sig (1 + u (1 - sig))
        if order >= 2:
            d2f = np.multiply(sig, -2.0)
            d2f += 1.0
            d2f *= u
            d2f += 2.0
            d2f *= sig
            d2f *= one_minus  # sig (1 - sig) (2 + u (1 - 2 sig))
        if self.name == "silu":
            return (f, df, d2f)[: order + 1]
        c = self.clamp
        t = np.multiply(f, 1.0 / c, out=f)
        np.tanh(t, out=t)
        value = t * c
        if order == 0:
            return (value,)
        sech2 = np.multiply(t, t, out=one_minus)  # one_minus is not needed any more
        np.subtract(1.0, sech2, out=sech2)
        if order >= 2:
            correction = t * df  # d2 = sech2 (d2f - 2 t df^2 / c)
            correction *= df
            correction *= 2.0 / c
            d2f -= correction
            d2f *= sech2
        df *= sech2
        return (value, df, d2f)[: order + 1]

    def all(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rho, rho', rho'') at u."""
        return self.evaluate(u, 2)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return self.evaluate(u, 0)[0]

    def deriv(self, u: np.ndarray) -> np.ndarray:
        return self.evaluate(u, 1)[1]
