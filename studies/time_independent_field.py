"""Why 2-D samples blur: the best time-independent velocity field, measured.

analogep's velocity v(x) = -alpha dE/dx has no time input (method.md section 5). Flow
matching's loss E_t |v(x_t) - (x1 - x0)|^2 over t ~ U[0, 1] is then minimised by the
time-averaged field v*(x) = E[x1 - x0 | x_t = x], not by the conditional OT field
u_t(x) that carries noise to data. This script estimates v* directly from the data
(Nadaraya-Watson regression of x1 - x0 on x_t over many minibatch-OT pairs, on a grid),
integrates it from noise exactly as `sample` does (Euler, dt, t1), and judges the
samples with `evaluate`'s figures. What it reports is the floor any trained
time-independent network can reach, whatever its size, lr or steps.

    OMP_NUM_THREADS=1 .venv/bin/python studies/time_independent_field.py [--scales 1,2,4]

`--scales` multiplies the data (the noise stays N(0, I)): the blur is a matter of how
far the data lie from the noise.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.optimize import linear_sum_assignment

from analogep.data import MODES, mode_radius
from analogep.data.benchmarks import DEFAULT_NOISE, generate
from analogep.evaluation.twosample import evaluate_data


def pairs(data: np.ndarray, n: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x_t, u) of n training points drawn as training draws them (minibatch OT coupling)."""
    xs, us = [], []
    for _ in range(n // batch):
        x1 = data[rng.choice(len(data), batch, replace=False)]
        x0 = rng.standard_normal(x1.shape)
        _, col = linear_sum_assignment(((x0[:, None] - x1[None]) ** 2).sum(-1))
        x1 = x1[col]
        t = rng.random((batch, 1))
        xs.append((1 - t) * x0 + t * x1)
        us.append(x1 - x0)
    return np.concatenate(xs), np.concatenate(us)


def field_on_grid(xt, u, lim, n=121, h=0.04):
    """v*(x) on an n x n grid by Gaussian-kernel regression of u on x_t (bandwidth h)."""
    axis = np.linspace(-lim, lim, n)
    step = axis[1] - axis[0]
    ix = np.clip(np.round((xt + lim) / step).astype(int), 0, n - 1)
    num, den = np.zeros((n, n, 2)), np.zeros((n, n))
    np.add.at(den, (ix[:, 1], ix[:, 0]), 1.0)
    np.add.at(num, (ix[:, 1], ix[:, 0]), u)
    from scipy.ndimage import gaussian_filter

    s = h / step
    num = np.stack([gaussian_filter(num[..., k], s) for k in range(2)], -1)
    den = gaussian_filter(den, s)
    return axis, num / np.maximum(den, 1e-12)[..., None]


def integrate(axis, v, x, dt, t1):
    from scipy.interpolate import RegularGridInterpolator

    fx = RegularGridInterpolator((axis, axis), v[..., 0].T, bounds_error=False, fill_value=None)
    fy = RegularGridInterpolator((axis, axis), v[..., 1].T, bounds_error=False, fill_value=None)
    for _ in range(int(round(t1 / dt))):
        x = x + dt * np.stack([fx(x), fy(x)], 1)
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="eight_gaussians,moons")
    p.add_argument("--scales", default="1,2,4")
    p.add_argument("--pairs", type=int, default=400_000)
    p.add_argument("--t1", default="1")
    args = p.parse_args()
    for name in args.datasets.split(","):
        for scale in (float(s) for s in args.scales.split(",")):
            rng = np.random.default_rng(0)
            train = scale * generate(name, 2000, None, 0)
            held = scale * generate(name, 2000, None, 1_000_003)
            xt, u = pairs(train, args.pairs, 256, rng)
            lim = 3.5 + scale
            axis, v = field_on_grid(xt, u, lim, h=0.04 * max(scale, 1))
            for t1 in (float(t) for t in args.t1.split(",")):
                x = integrate(axis, v, rng.standard_normal((1000, 2)), 0.02, t1)
                modes = MODES[name]() * scale if name in MODES else None
                radius = mode_radius(name, DEFAULT_NOISE[name]) * scale
                r = evaluate_data(x, train, held, name, modes, radius)
                print(json.dumps({"data": name, "scale": scale, "t1": t1, "mmd_ratio": round(r.ratios["mmd"], 2),
                                  "sw_ratio": round(r.ratios["sliced_wasserstein"], 2),
                                  "nn": round(r.nearest_train_distance / scale, 4),
                                  "nn_ref": round(r.reference["nearest_train_distance"] / scale, 4),
                                  "modes": r.modes_covered}), flush=True)


if __name__ == "__main__":
    main()
