"""Crossbar line resistance as what the neurons see of it: effective conductances.

The compiler draws each read of a coupling as a ladder network (compiler._wired: rows
driven at one end, columns sensed at the other, a segment R_wire between adjacent device
taps). Its drivers are ideal voltage sources and its sense lines virtual grounds held at
exactly 0 V, so the wired array is a linear multiport whose only output the neurons see
is the sense currents, I_j = sum_k T[j, k] u_k over the row voltages u. T is what
the array realises: T = G at R_wire = 0, and with line resistance every device's
contribution shrinks by the IR drop along its row and column (more the farther from the
driver and the sense amplifier), and every row leaks into every column (Chen et al. 2018,
"NeuroSim", IEEE TCAD 37, 3067; Jain et al. 2020, "RxNN", IEEE TCAD 39, 326, model IR drop
the same way: a crossbar of linear devices with line resistance is a fixed, input-
independent distortion of its conductance matrix).

For the differential pairs, rows 2i and 2i+1 carry +a_i and -a_i, so the read realises
the weights (T_plus - T_minus) / g0 with T_plus[j, i] = T[j, 2i], T_minus[j, i] =
T[j, 2i + 1]. With the forward and transposed arrays distorted differently, the wired
circuit has mismatched copies: no energy, a KCL fixed point (devices/realised.py).
`effective_copies` gives these, so numpy can solve the wired circuit's equilibria exactly
(what the SPICE backend's warm starts and residuals use), and the wire-resistance study
can run the digits circuit; a test checks them against ngspice solving the ladders.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from threadpoolctl import threadpool_limits

from analogep.devices.mapping import Conductances

# Right-hand sides per sparse solve (a chunk of rows): bounds the dense block's memory.
CHUNK = 64


def effective_pair(plus: np.ndarray, minus: np.ndarray, r_wire: float) -> tuple[np.ndarray, np.ndarray]:
    """(T_plus, T_minus), each (n_out, n_in) like `plus` and `minus`: the effective
    conductances of one wired read whose rows are the n_in inputs' +/- drivers (rows 2i,
    2i + 1, driven at column 0's end) and whose columns are the n_out outputs (sensed below
    the last row). Exact nodal analysis of the ladder (sparse LU)."""
    plus, minus = np.asarray(plus, np.float64), np.asarray(minus, np.float64)
    n_out, n_in = plus.shape
    rows, cols = 2 * n_in, n_out
    g = np.empty((rows, cols))
    g[0::2], g[1::2] = plus.T, minus.T
    y = 1.0 / r_wire
    r_node = np.arange(rows * cols).reshape(rows, cols)  # row-line tap (k, c)
    c_node = r_node + rows * cols  # column-line tap (k, c)
    n = 2 * rows * cols
    a_idx, b_idx, cond = [], [], []
    a_idx.append(r_node[:, :-1].ravel()); b_idx.append(r_node[:, 1:].ravel()); cond.append(np.full((cols - 1) * rows, y))
    a_idx.append(c_node[:-1, :].ravel()); b_idx.append(c_node[1:, :].ravel()); cond.append(np.full((rows - 1) * cols, y))
    a_idx.append(r_node.ravel()); b_idx.append(c_node.ravel()); cond.append(g.ravel())
    a_idx, b_idx, cond = np.concatenate(a_idx), np.concatenate(b_idx), np.concatenate(cond)
    diag = np.zeros(n)
    np.add.at(diag, a_idx, cond)
    np.add.at(diag, b_idx, cond)
    diag[r_node[:, 0]] += y  # the segment from each row's driver to its first tap
    diag[c_node[-1, :]] += y  # the segment from each column's last tap to its sense line
    lap = sp.coo_matrix(
        (np.concatenate([diag, -cond, -cond]), (np.concatenate([np.arange(n), a_idx, b_idx]),
                                                np.concatenate([np.arange(n), b_idx, a_idx]))),
        shape=(n, n),
    ).tocsc()
    t = np.empty((cols, rows))
    # SuperLU's supernodal solves make many small BLAS calls: threads only cost time
    # (docs/results/speed.md).
    with threadpool_limits(limits=1, user_api="blas"):
        lu = splu(lap, permc_spec="MMD_AT_PLUS_A")
        # Row k at 1 V, the others at 0: write V = V0 + d with V0 = 1 on row k's taps, 0
        # elsewhere; then lap d = (-g on row k's taps, +g on its column taps), small, solved
        # accurately.
        for k0 in range(0, rows, CHUNK):
            ks = np.arange(k0, min(rows, k0 + CHUNK))
            rhs = np.zeros((n, ks.size))
            rhs[r_node[ks].T, np.arange(ks.size)] = -g[ks].T
            rhs[c_node[ks].T, np.arange(ks.size)] = g[ks].T
            d = lu.solve(rhs)
            t[:, ks] = y * d[c_node[-1, :], :]
    return t[:, 0::2], t[:, 1::2]


def effective_copies(
    copies: dict[str, tuple[Conductances, Conductances]], r_wire: float
) -> dict[str, tuple[Conductances, Conductances]]:
    """Each coupling's (forward, transposed) effective conductances with line resistance
    `r_wire` per segment (forward read: rows are the coupling's inputs; transposed: its
    outputs). A copy read both ways becomes two different effective copies."""
    out = {}
    for name, (fwd, bwd) in copies.items():
        fp, fm = effective_pair(fwd.plus, fwd.minus, r_wire)
        bp, bm = effective_pair(bwd.plus.T, bwd.minus.T, r_wire)
        out[name] = (Conductances(fp, fm, fwd.clipped, fwd.gain), Conductances(bp.T, bm.T, bwd.clipped, bwd.gain))
    return out
