"""Stuck devices: how they are found and how weights are mapped around them (method.md
section 7, 'Devices').

A crossbar's stuck-at faults (a device that stays at gmin, "stuck-off", or at gmax,
"stuck-on", whatever is written) are found before programming by a March-style test (Chen
et al., "RRAM defect modeling and failure analysis based on March test and a novel
squeeze-search scheme", IEEE Trans. Computers 64, 180 (2015)): write every device to gmin
and read it, write every device to gmax and read it, write gmin again (the March elements
w0; r0,w1; r1,w0). A device that reads above mid-window after a write to gmin is stuck-on;
one that reads below mid-window after a write to gmax is stuck-off. The result is a fault
map (one code per device), fixed for the crossbar and kept with the run.

Fault-aware mapping (`pair_targets`) then uses the map on every write: a weight is the
difference G+ - G- of a pair, so when one device of the pair is stuck its healthy partner
carries the weight relative to the stuck one (a partner of a device stuck at gmax is
programmed to gmax - W g); a pair with both devices stuck is lost and counted
(`both_stuck`). The same remapping of the differential pair is used for fault tolerance by
Xia et al., "Fault-tolerant training with on-line fault detection for RRAM-based neural
computing systems", DAC 2017.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# Codes of a fault map (and of the frozen stuck draws, devices/crossbar.py).
FREE, AT_GMIN, AT_GMAX = 0, 1, 2

# Device writes of one March test: w0, w1, w0 (each device written three times).
MARCH_WRITES = 3


def march_test(read: Callable[[float], np.ndarray], gmin: float, gmax: float) -> np.ndarray:
    """The fault map of one array of devices: `read(level)` writes every device to `level`
    (0: gmin, 1: gmax) and returns the conductances (S) read back. Codes FREE, AT_GMIN
    (stuck-off), AT_GMAX (stuck-on)."""
    mid = 0.5 * (gmin + gmax)
    after_w0 = read(0.0)  # element (w0; r0): a device reading high is stuck-on
    after_w1 = read(1.0)  # element (w1; r1): a device reading low is stuck-off
    read(0.0)  # element (w0): the array is left at gmin, ready to be programmed
    codes = np.full(after_w0.shape, FREE, dtype=np.int8)
    codes[after_w1 < mid] = AT_GMIN
    codes[after_w0 >= mid] = AT_GMAX
    return codes


def pair_targets(g: np.ndarray, plus: np.ndarray, minus: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets above gmin (S) of the pairs realising G+ - G- = g (g clipped to +-span) with
    the fault codes `plus`, `minus` of their devices: a healthy pair puts g on one device and
    leaves the other at gmin; a pair with one stuck device programs the healthy one to
    (stuck value - g) or (stuck value + g), clipped to the window; a stuck device's target is
    its stuck value (it takes no pulses)."""
    p_stuck, m_stuck = plus != FREE, minus != FREE
    p_val = np.where(plus == AT_GMAX, span, 0.0)
    m_val = np.where(minus == AT_GMAX, span, 0.0)
    tp, tm = np.maximum(g, 0.0), np.maximum(-g, 0.0)
    tm = np.where(p_stuck & ~m_stuck, np.clip(p_val - g, 0.0, span), tm)
    tp = np.where(m_stuck & ~p_stuck, np.clip(m_val + g, 0.0, span), tp)
    return np.where(p_stuck, p_val, tp), np.where(m_stuck, m_val, tm)


def both_stuck(plus: np.ndarray, minus: np.ndarray) -> int:
    """Pairs whose two devices are both stuck: their weight cannot be written."""
    return int(np.count_nonzero((plus != FREE) & (minus != FREE)))
