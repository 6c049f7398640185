"""The measurement chain around the crossbar (method.md section 7, 'Devices'): read noise per
measured node voltage and equilibrium, ADC quantisation of the node voltages, DAC
quantisation of the anchor voltages the circuit is given."""

from __future__ import annotations

import numpy as np

from analogep.config.hardware import DevicesSpec


def quantise(x: np.ndarray, bits: int, full: float) -> tuple[np.ndarray, int]:
    """x on the 2^bits levels of a mid-rise converter over [-full, full] (level centres
    (k + 1/2) lsb, lsb = 2 full / 2^bits), and how many values fell outside the range."""
    lsb = 2.0 * full / 2**bits
    half = 2 ** (bits - 1)
    clipped = int(np.count_nonzero(np.abs(x) > full))
    q = (np.clip(np.floor(x / lsb), -half, half - 1) + 0.5) * lsb
    return q.astype(x.dtype, copy=False), clipped


class MeasurementChain:
    """Read noise and ADC on what the measurement reads (node voltages, or the clamp read-out
    in volts); DAC on the anchor voltages the circuit is given. Counts clipped conversions."""

    def __init__(self, d: DevicesSpec, rng: np.random.Generator):
        self.d, self.rng = d, rng
        self.adc_clipped = 0
        self.dac_clipped = 0

    @property
    def exact(self) -> bool:
        return self.d.read_noise == 0 and self.d.adc_bits is None and self.d.dac_bits is None

    def read(self, x: np.ndarray) -> np.ndarray:
        """One measurement of the voltages `x`: plus read noise, through the ADC (a new array)."""
        d = self.d
        if d.read_noise > 0:
            x = x + (d.read_noise * self.rng.standard_normal(x.shape)).astype(x.dtype)
        if d.adc_bits is not None:
            x, clipped = quantise(x, d.adc_bits, d.adc_range)
            self.adc_clipped += clipped
        return x

    def dac(self, x: np.ndarray, count: bool = True) -> np.ndarray:
        """The voltage a DAC applies for `x` (`count`: add its clipped values to dac_clipped)."""
        if self.d.dac_bits is None:
            return x
        q, clipped = quantise(x, self.d.dac_bits, self.d.dac_range)
        self.dac_clipped += clipped if count else 0
        return q
