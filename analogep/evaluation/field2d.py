"""Figures of a 2-D model, where people look rather than read: the samples over the data,
and the learned field (the flow's velocity, or the score read-out of DSM, v = -alpha
dE/dx at the hidden equilibrium, method.md sections 2 and 6) as streamlines with a few
generation trajectories (Euler steps of dx = dt v(x) from noise, method.md section 5).

The field is time independent (method.md section 5), so one set of streamlines is the
whole flow; a time-dependent one (train.time_conditioning: time-bias) is drawn at t = 0.5,
its trajectories with the time code of each step. It is computed by numpy relaxation of the trained weights on a grid, whatever
backend drew the samples.
"""

from __future__ import annotations

import os

import numpy as np

from analogep.evaluation.plots import _figure, _save

GRID = 25  # points per side of the streamline grid
FIELD_TIME = 0.5  # the time a time-dependent field's streamlines are drawn at (train.time_conditioning)
TRAJECTORIES = 12  # generation paths drawn


def field_on_grid(spec, params, lim: float, n: int = GRID) -> tuple:
    """The model's v(x) on an n x n grid over [-lim, lim]^2: (grid axis, vx, vy, generation
    paths or None, the time it is drawn at as a title's words: "" for a time-independent field)."""
    from analogep.backends.factory import make_backend
    from analogep.model.factory import build_energy
    from analogep.objectives.flow_time import TimeCode
    from analogep.objectives.sampling import velocity_field

    time = TimeCode.from_train(spec.train) if spec.train.objective == "flow" else None
    axis = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(axis, axis)
    model = build_energy(spec.model)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(model.dtype)
    backend = make_backend(spec, model, "numpy")
    try:
        backend.program(params)
        if time is not None:  # a time-dependent field: drawn at t = FIELD_TIME
            backend.condition(time(FIELD_TIME))
        v, _ = velocity_field(backend, points, None, spec.gradep, spec.generate.mode)
        paths = None
        if spec.train.objective == "flow":
            paths = _trajectories(backend, spec, model.dtype, time)
    finally:
        backend.close()
    v = np.asarray(v, dtype=np.float64)
    when = "" if time is None else f" at t = {FIELD_TIME:g}"
    return axis, v[:, 0].reshape(n, n), v[:, 1].reshape(n, n), paths, when


def _trajectories(backend, spec, dtype, time=None) -> np.ndarray:
    """TRAJECTORIES paths (steps + 1, TRAJECTORIES, 2) of the generate section's Euler steps
    (with `time`, a time code set before each step, as the sampler does)."""
    from analogep.objectives.sampling import velocity_field

    g = spec.generate
    x = np.random.default_rng(g.seed).standard_normal((TRAJECTORIES, 2)).astype(dtype)
    path, hidden = [x], None
    for k in range(g.steps):
        if time is not None:
            backend.condition(time(k * g.dt))
        v, hidden = velocity_field(backend, x, hidden, spec.gradep, g.mode)
        x = x + np.asarray(g.dt, dtype=dtype) * v
        path.append(x)
    return np.asarray(path, dtype=np.float64)


def plot_2d(samples: np.ndarray, data: np.ndarray, path: str | os.PathLike, title: str | None = None,
            field: tuple | None = None) -> None:
    """Left: samples over the data. Right (with `field` from field_on_grid): streamlines of
    the learned field, coloured by speed, and a few generation trajectories."""
    x = np.asarray(samples, dtype=np.float64)
    d = np.asarray(data, dtype=np.float64)
    panels = 2 if field is not None else 1
    with _figure(1, panels, figsize=(4.6 * panels, 4.6), squeeze=False) as (fig, axes):
        ax = axes[0, 0]
        ax.scatter(d[:, 0], d[:, 1], s=3, c="0.7", label=f"data ({len(d)})", rasterized=True)
        ax.scatter(x[:, 0], x[:, 1], s=3, c="tab:blue", alpha=0.6, label=f"samples ({len(x)})", rasterized=True)
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
        ax.set_title("samples over the data", fontsize=9)
        if field is not None:
            axis, vx, vy, paths, when = field
            ax = axes[0, 1]
            speed = np.hypot(vx, vy)
            ax.scatter(d[:, 0], d[:, 1], s=2, c="0.85", rasterized=True)
            stream = ax.streamplot(axis, axis, vx, vy, color=speed, cmap="viridis", density=1.1, linewidth=0.7)
            fig.colorbar(stream.lines, ax=ax, shrink=0.8, label="|v|")
            if paths is not None:
                for k in range(paths.shape[1]):
                    ax.plot(paths[:, k, 0], paths[:, k, 1], c="tab:red", lw=0.8)
                    ax.plot(paths[0, k, 0], paths[0, k, 1], "o", c="tab:red", ms=2)
                ax.plot([], [], c="tab:red", lw=0.8, label="generation paths")
                ax.legend(loc="upper right", fontsize=7)
            ax.set_xlim(axis[0], axis[-1])
            ax.set_ylim(axis[0], axis[-1])
            ax.set_aspect("equal")
            ax.set_title(f"learned field v(x){when} (numpy relaxation)", fontsize=9)
        if title:
            fig.suptitle(title, fontsize=9)
        _save(fig, path)


def plot_projection(samples: np.ndarray, data: np.ndarray, path: str | os.PathLike, title: str | None = None,
                    features: int = 6) -> None:
    """Data of more than 2 dimensions: samples and data on the data's first two principal
    axes, and the marginals of the first `features` features."""
    x = np.asarray(samples, dtype=np.float64)
    d = np.asarray(data, dtype=np.float64)
    mean = d.mean(axis=0)
    _, _, vt = np.linalg.svd(d - mean, full_matrices=False)
    axes_pc = vt[:2].T
    pd, px = (d - mean) @ axes_pc, (x - mean) @ axes_pc
    k = min(features, d.shape[1])
    cols = 1 + k
    with _figure(1, cols, figsize=(3.2 * cols, 3.2), squeeze=False) as (fig, axes):
        ax = axes[0, 0]
        ax.scatter(pd[:, 0], pd[:, 1], s=3, c="0.7", label="data", rasterized=True)
        ax.scatter(px[:, 0], px[:, 1], s=3, c="tab:blue", alpha=0.6, label="samples", rasterized=True)
        ax.set_xlabel("PC 1 of the data")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=7, markerscale=3)
        for j in range(k):
            ax = axes[0, 1 + j]
            bins = np.linspace(min(d[:, j].min(), x[:, j].min()), max(d[:, j].max(), x[:, j].max()), 40)
            ax.hist(d[:, j], bins=bins, density=True, color="0.7", label="data")
            ax.hist(x[:, j], bins=bins, density=True, histtype="step", color="tab:blue", label="samples")
            ax.set_title(f"feature {j}", fontsize=9)
            ax.set_yticks([])
        axes[0, 1].legend(fontsize=7)
        if title:
            fig.suptitle(title, fontsize=9)
        _save(fig, path)


def plot_data_samples(spec, params, samples: np.ndarray, path: str | os.PathLike, title: str | None = None) -> None:
    """The figure of a non-digits run's samples: plot_2d with the field for 2-D data,
    plot_projection for more dimensions."""
    from analogep.data import reference_split

    train, _ = reference_split(spec.train.dataset, spec.data, limit=2000)
    shown = np.asarray(samples[:2000], dtype=np.float64)
    if train.shape[1] == 2:
        lim = float(max(np.abs(train).max(), 1.0)) * 1.15
        plot_2d(shown, train, path, title, field_on_grid(spec, params, lim) if params is not None else None)
    else:
        plot_projection(shown, train, path, title)
