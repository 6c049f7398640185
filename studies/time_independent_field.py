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

`--time-levels K` measures the same floor for a field with a time input on K levels
t_k = k/(K-1) (train.time_conditioning: time-bias, docs/time-conditioning.md): one
regression per level from pairs drawn at t_k, the Euler sampler reading at t = j dt the
linear interpolation of the two neighbouring levels' fields (as the one-hot time code
interpolates the biases). Each row then also gives the floor loss (mean (v* - u)^2 over
fresh training pairs, t drawn as training draws it), the figure a trained network's loss
is judged against.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.optimize import linear_sum_assignment

from analogep.data import MODES, mode_radius
from analogep.data.benchmarks import DEFAULT_NOISE, generate
from analogep.evaluation.twosample import evaluate_data


def pairs(
    data: np.ndarray, n: int, batch: int, rng: np.random.Generator, t_fixed: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(x_t, u) of n training points drawn as training draws them (minibatch OT coupling);
    t ~ U[0, 1], or t = t_fixed."""
    xs, us = [], []
    for _ in range(n // batch):
        x1 = data[rng.choice(len(data), batch, replace=False)]
        x0 = rng.standard_normal(x1.shape)
        _, col = linear_sum_assignment(((x0[:, None] - x1[None]) ** 2).sum(-1))
        x1 = x1[col]
        if t_fixed is not None:
            t = np.full((batch, 1), t_fixed)
        else:
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


def interpolator(axis, v):
    """x (n, 2) -> v(x) (n, 2), bilinear on the grid (linear extrapolation beyond it)."""
    from scipy.interpolate import RegularGridInterpolator

    fx = RegularGridInterpolator((axis, axis), v[..., 0].T, bounds_error=False, fill_value=None)
    fy = RegularGridInterpolator((axis, axis), v[..., 1].T, bounds_error=False, fill_value=None)
    return lambda x: np.stack([fx(x), fy(x)], 1)


def integrate(axis, v, x, dt, t1):
    f = interpolator(axis, v)
    for _ in range(int(round(t1 / dt))):
        x = x + dt * f(x)
    return x


def integrate_timed(axis, fields, x, dt, t1):
    """Euler steps of the time-dependent field: at t = j dt the linear interpolation of the
    fields of the two grid levels around t (held at t = 1 beyond it)."""
    fs = [interpolator(axis, v) for v in fields]
    levels = len(fields)
    for j in range(int(round(t1 / dt))):
        pos = min(j * dt, 1.0) * (levels - 1)
        i = min(int(np.floor(pos)), levels - 2)
        w = pos - i
        x = x + dt * ((1 - w) * fs[i](x) + (w * fs[i + 1](x) if w > 0 else 0.0))
    return x


def floor_loss(f, xt, u) -> float:
    """Mean (v - u)^2 over points and coordinates, as flow_loss reports a training loss."""
    return float(np.mean((f(xt) - u) ** 2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="eight_gaussians,moons")
    p.add_argument("--scales", default="1,2,4")
    p.add_argument("--pairs", type=int, default=400_000)
    p.add_argument("--t1", default="1")
    p.add_argument("--time-levels", type=int, default=0, help="K > 1: the floor of a field with a time input on K levels")
    args = p.parse_args()
    for name in args.datasets.split(","):
        for scale in (float(s) for s in args.scales.split(",")):
            rng = np.random.default_rng(0)
            train = scale * generate(name, 2000, None, 0)
            held = scale * generate(name, 2000, None, 1_000_003)
            xt, u = pairs(train, args.pairs, 256, rng)
            lim = 3.5 + scale
            h = 0.04 * max(scale, 1)
            axis, v = field_on_grid(xt, u, lim, h=h)
            # the floor loss and the time levels' fields from generators of their own, so the
            # samples of the time-independent field are those of the rows without them
            fields, loss = None, floor_loss(interpolator(axis, v), *pairs(train, 20_480, 256, np.random.default_rng(1)))
            if args.time_levels > 1:
                grid, other = np.linspace(0.0, 1.0, args.time_levels), np.random.default_rng(2)
                fields = [field_on_grid(*pairs(train, args.pairs // args.time_levels, 256, other, t_fixed=t), lim, h=h)[1]
                          for t in grid]
                loss = _timed_loss(axis, fields, grid, train, other)
            for t1 in (float(t) for t in args.t1.split(",")):
                start = rng.standard_normal((1000, 2))
                x = integrate(axis, v, start, 0.02, t1) if fields is None else integrate_timed(axis, fields, start, 0.02, t1)
                modes = MODES[name]() * scale if name in MODES else None
                radius = mode_radius(name, DEFAULT_NOISE[name]) * scale
                r = evaluate_data(x, train, held, name, modes, radius)
                print(json.dumps({"data": name, "scale": scale, "time_levels": args.time_levels, "t1": t1,
                                  "floor_loss": round(loss, 4), "mmd_ratio": round(r.ratios["mmd"], 2),
                                  "sw_ratio": round(r.ratios["sliced_wasserstein"], 2),
                                  "nn": round(r.nearest_train_distance / scale, 4),
                                  "nn_ref": round(r.reference["nearest_train_distance"] / scale, 4),
                                  "modes": r.modes_covered}), flush=True)


def _timed_loss(axis, fields, grid, train, rng) -> float:
    """The floor loss of the time-dependent field: fresh pairs at each level against that
    level's field, averaged over the levels (training draws the levels uniformly)."""
    return float(np.mean([floor_loss(interpolator(axis, v), *pairs(train, 2048, 256, rng, t_fixed=t))
                          for v, t in zip(fields, grid)]))


if __name__ == "__main__":
    main()
