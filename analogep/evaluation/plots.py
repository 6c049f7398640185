"""Every figure the CLI writes, in one place (style.md: plotting lives outside the model).

Each function takes plain arrays or records, draws one figure, and writes it through
`atomic_path`, so an interrupted run never leaves a half-written PNG. The Agg backend
is forced: the CLI runs on headless machines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.backend_bases import FigureCanvasBase

from analogep.errors import AnalogepError
from analogep.io import atomic_path

matplotlib.use("Agg")


DIGIT_SIDE = 8


DIAGNOSTIC_KEYS = ("grad_norm", "v_norm", "u_norm", "residual_free", "residual_nudge")


_DPI = 120


@contextmanager
def _figure(*args, **kwargs) -> Iterator[tuple]:
    """`plt.subplots` that always closes the figure, even when drawing or writing fails."""
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
    finally:
        plt.close(fig)


# Formats a figure can be written in, by extension: matplotlib's, less pgf (LaTeX code,
# which needs a LaTeX installation to write).
IMAGE_FORMATS = tuple(sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"}))


def image_format(path: str | os.PathLike) -> str:
    """The image format a path's extension names; AnalogepError when it names none.

    Called before the work that makes the figure, so a typo costs no sampling or training.
    """
    ext = os.path.splitext(os.fspath(path))[1][1:].lower()
    if ext not in IMAGE_FORMATS:
        got = f"extension .{ext}" if ext else "no extension"
        raise AnalogepError(f"{os.fspath(path)}: {got}; an image needs one of " + ", ".join(f".{e}" for e in IMAGE_FORMATS))
    return ext


def _save(fig, path: str | os.PathLike) -> None:
    """Write `fig` atomically (atomic_path creates the parent directories), in the format
    of `path`'s extension, given explicitly: the temporary name's extension does not count."""
    fmt = image_format(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=_DPI, bbox_inches="tight")


def plot_samples(
    samples: np.ndarray,
    path: str | os.PathLike,
    title: str | None = None,
    ncols: int = 10,
    max_images: int = 100,
) -> None:
    """Grid of 8x8 digits in gray, -1 black and +1 white (values beyond are shown as the ends).

    `samples` is (N, 64) or (N, 8, 8); the first `max_images` are drawn.
    """
    if ncols < 1 or max_images < 1:
        raise ValueError(f"ncols and max_images must be >= 1; got ncols={ncols}, max_images={max_images}")
    x = np.asarray(samples[:max_images], dtype=np.float64)  # only what is drawn: samples may be a large memmap
    side2 = DIGIT_SIDE * DIGIT_SIDE
    if x.ndim < 2 or len(x) == 0 or x[0].size != side2:
        raise ValueError(f"samples must have shape (N, {side2}) or (N, 8, 8) with N >= 1; got {x.shape}")
    images = x[:max_images].reshape(-1, DIGIT_SIDE, DIGIT_SIDE)
    cols = min(ncols, len(images))
    rows = math.ceil(len(images) / cols)
    title_in = 0.4 if title else 0.0  # inches kept above the grid for the title
    height = 0.8 * rows + title_in
    with _figure(rows, cols, figsize=(0.8 * cols, height), squeeze=False) as (fig, axes):
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, img in zip(axes.flat, images):
            ax.imshow(img, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
        fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - title_in / height, wspace=0.05, hspace=0.05)
        if title:
            fig.suptitle(title, y=1 - 0.1 / height, va="top")
        _save(fig, path)


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points (shorter at the start), so it never runs ahead of the data."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _series(records: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(step, value) for the records that carry a finite `key`."""
    pairs = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    if not pairs:
        return np.empty(0), np.empty(0)
    steps, values = (np.asarray(v, dtype=np.float64) for v in zip(*pairs))
    ok = np.isfinite(values)
    return steps[ok], values[ok]


def _log_if_helpful(ax, values: np.ndarray) -> None:
    """Log-y when the values are positive and span more than a decade."""
    if len(values) and np.all(values > 0) and values.max() / values.min() > 10.0:
        ax.set_yscale("log")


def plot_loss(records: list[dict], path: str | os.PathLike, title: str | None = None) -> None:
    """Training loss against step with a trailing moving average; diagnostics in a second panel.

    Records need "step" and "loss"; "grad_norm", "v_norm", "u_norm" and "residual" are
    drawn in a second panel when any record has them. `title` names the run (a figure
    seen apart from its folder still says whose it is).
    """
    if not records:
        raise ValueError("records is empty; nothing to plot")
    for i, r in enumerate(records):
        missing = [k for k in ("step", "loss") if k not in r]
        if missing:
            raise ValueError(f"record {i} lacks {', '.join(missing)}; each record needs 'step' and 'loss'")
    steps, loss = _series(records, "loss")
    present = [k for k in DIAGNOSTIC_KEYS if len(_series(records, k)[0])]
    n_panels = 2 if present else 1
    with _figure(n_panels, 1, figsize=(7, 3 * n_panels + 0.5), sharex=True, squeeze=False) as (fig, axes):
        ax = axes[0, 0]
        ax.plot(steps, loss, lw=0.8, alpha=0.4, label="loss")
        window = max(1, len(loss) // 20)
        if window > 1:
            ax.plot(steps, _moving_average(loss, window), lw=1.6, label=f"moving average ({window} steps)")
        _log_if_helpful(ax, loss)
        ax.set_ylabel("loss")
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
        if present:
            ax2 = axes[1, 0]
            drawn = []
            for key in present:
                s, v = _series(records, key)
                ax2.plot(s, v, lw=1.0, label=key)
                drawn.append(v)
            _log_if_helpful(ax2, np.concatenate(drawn))
            ax2.set_ylabel("diagnostics")
            ax2.legend(loc="upper right")
            ax2.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        if title:
            axes[0, 0].set_title(title, fontsize=10)
        _save(fig, path)


def plot_beta_sweep(
    betas: Sequence[float] | np.ndarray,
    errors_by_label: dict[str, list[float]],
    path: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Relative gradient error against nudge beta, log-log, with dashed O(beta) and O(beta^2) guides
    (`title`: whose weights, e.g. the run and its step).

    The guides start at the largest beta from the largest error there, so a line parallel
    to one of them has that order (one-sided EP: O(beta); symmetric: O(beta^2), De 2026).
    Non-positive errors cannot go on a log axis and are left out.
    """
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or len(b) == 0 or np.any(b <= 0):
        raise ValueError(f"betas must be a non-empty 1-D list of positive values; got {betas!r}")
    if not errors_by_label:
        raise ValueError("errors_by_label is empty; nothing to plot")
    curves = {}
    for label, errors in errors_by_label.items():
        e = np.asarray(errors, dtype=np.float64)
        if e.shape != b.shape:
            raise ValueError(f"errors_by_label[{label!r}] has {e.size} values; betas has {b.size}")
        curves[label] = np.where(e > 0, e, np.nan)
    top = int(np.argmax(b))
    anchors = [e[top] for e in curves.values() if np.isfinite(e[top])]
    with _figure(figsize=(5.5, 4.2)) as (fig, ax):
        for label, e in curves.items():
            ax.plot(b, e, "o-", label=label)
        if anchors and len(b) > 1:
            grid = np.geomspace(b.min(), b.max(), 50)
            y0 = max(anchors)
            ax.plot(grid, y0 * grid / b[top], "k--", lw=0.8, label=r"$O(\beta)$")
            ax.plot(grid, y0 * (grid / b[top]) ** 2, "k:", lw=1.0, label=r"$O(\beta^2)$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"nudge $\beta$")
        ax.set_ylabel("relative error")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        if title:
            ax.set_title(title, fontsize=9)
        _save(fig, path)


def plot_scatter(
    reference: np.ndarray,
    measured: np.ndarray,
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
) -> None:
    """Measured against reference values (e.g. SPICE vs numpy node voltages) with the y = x line.

    The largest and RMS differences are printed on the plot: agreement is read from them,
    not from how close the dots look.
    """
    r = np.asarray(reference, dtype=np.float64).ravel()
    m = np.asarray(measured, dtype=np.float64).ravel()
    if r.size != m.size or r.size == 0:
        raise ValueError(f"reference and measured must have the same non-zero size; got {r.size} and {m.size}")
    both = np.concatenate([r, m])
    both = both[np.isfinite(both)]
    lo, hi = (both.min(), both.max()) if both.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    diff = m - r
    summary = f"max |diff| = {np.nanmax(np.abs(diff)):.3g}\nrms diff = {np.sqrt(np.nanmean(diff**2)):.3g}"
    with _figure(figsize=(4.8, 4.8)) as (fig, ax):
        ax.scatter(r, m, s=8, alpha=0.6)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8, label="y = x")
        ax.text(
            0.03,
            0.97,
            summary,
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        _save(fig, path)


def plot_class_shares(report_dict: dict, path: str | os.PathLike) -> None:
    """Bar chart of predicted class shares (a `QualityReport.to_dict()`), with the coverage threshold.

    Held-out real shares, when the dict has them, are drawn as markers for comparison.
    """
    if "class_shares" not in report_dict:
        raise ValueError("report_dict lacks 'class_shares'; pass QualityReport.to_dict()")
    shares = np.asarray(report_dict["class_shares"], dtype=np.float64)
    min_share = float(report_dict.get("min_share", 0.03))
    ref = report_dict.get("reference", {}).get("class_shares")
    covered = report_dict.get("classes_covered")
    classes = np.arange(len(shares))
    with _figure(figsize=(6, 3.5)) as (fig, ax):
        ax.bar(classes, shares, color="tab:blue", label="samples")
        if ref is not None:
            ax.plot(classes, ref, "k_", markersize=18, mew=2, label="held-out real")
        ax.axhline(min_share, color="tab:red", ls="--", lw=1, label=f"{100 * min_share:g}% (covered)")
        ax.set_xticks(classes)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("share of samples")
        if covered is not None:
            ax.set_title(f"classes covered: {covered}/{len(shares)}")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        _save(fig, path)


def plot_loss_comparison(runs: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | os.PathLike) -> None:
    """Loss curves of several runs (label, steps, loss) on one axis, and each run's
    difference from the first on a second, both as trailing moving averages over the
    raw curves drawn faint."""
    if len(runs) < 2:
        raise ValueError("need at least two runs to compare")
    window = max(1, max(len(loss) for _, _, loss in runs) // 50)
    with _figure(2, 1, figsize=(7, 6.5), sharex=True) as (fig, (ax, ax_diff)):
        ref_label, ref_steps, ref_loss = runs[0]
        smooth_range = [0.0]
        for k, (label, steps, loss) in enumerate(runs):
            color = f"C{k}"
            ax.plot(steps, loss, lw=0.6, alpha=0.25, color=color)
            ax.plot(steps, _moving_average(loss, window), lw=1.4, color=color, label=label)
            if k == 0:
                continue
            common, i, j = np.intersect1d(ref_steps, steps, return_indices=True)
            if not common.size:  # no step logged by both: no difference to draw
                continue
            diff = loss[j] - ref_loss[i]
            smooth = _moving_average(diff, window)
            ax_diff.plot(common, diff, lw=0.6, alpha=0.25, color=color)
            ax_diff.plot(common, smooth, lw=1.4, color=color, label=f"{label} - {ref_label}")
            smooth_range.extend([smooth.min(), smooth.max()])
        _log_if_helpful(ax, np.concatenate([loss for _, _, loss in runs]))
        ax.set_ylabel("loss")
        ax.set_title(f"training loss (lines: moving average over {window} steps)" if window > 1 else "training loss")
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
        ax_diff.axhline(0.0, color="k", lw=0.6)
        low, high = min(smooth_range), max(smooth_range)
        pad = 0.1 * (high - low) or 1e-3
        ax_diff.set_ylim(low - pad, high + pad)  # the moving averages set the scale; raw spikes are cut
        ax_diff.set_ylabel("loss difference")
        ax_diff.set_xlabel("step")
        if ax_diff.get_legend_handles_labels()[0]:
            ax_diff.legend(loc="upper right")
        else:
            ax_diff.text(0.5, 0.5, "no step logged by both runs", transform=ax_diff.transAxes, ha="center")
        ax_diff.grid(alpha=0.3)
        _save(fig, path)


def _way_label(key: str) -> str:
    """An energy report's way as a tick label: analog -> circuit, gpu_euler -> GPU / Euler."""
    if key == "analog":
        return "circuit"
    hardware, _, method = key.partition("_")
    return f"{hardware.upper()}\n{method}" if method else hardware


def plot_energy(report_dict: dict, path: str | os.PathLike) -> None:
    """`analogep energy --plot`: where the circuit's joules go per training step (left, each
    bar with its value; a zero is written, a log axis cannot draw it), and the energy per
    training step and per sample of each way, log scale (right, the legend outside the
    bars). The title names the weights (the run and its step, or the config)."""
    analog = report_dict["training"]["analog"]
    items = sorted(analog["breakdown"].items(), key=lambda kv: kv[1])
    with _figure(1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [1.1, 1]}) as (fig, (left, right)):
        values = [v for _, v in items]
        positive = [v for v in values if v > 0]
        left.barh(range(len(items)), [v if v > 0 else np.nan for v in values], color="tab:blue")
        left.set_yticks(range(len(items)), [k for k, _ in items])
        left.set_xscale("log")
        if positive:
            low, high = min(positive), max(positive)
            left.set_xlim(low / 3, high * 30)  # room for the value written after the longest bar
            for y, v in enumerate(values):
                left.text(v if v > 0 else low / 3, y, f" {v:.2g} J" if v > 0 else " 0 J", va="center", fontsize=8)
        left.set_xlabel("J per training step")
        left.set_title(f"the circuit: {analog['joules']:.3g} J per training step", fontsize=10)
        keys = list(report_dict["training"])
        width = 0.4
        pos = np.arange(len(keys))
        right.bar(pos - width / 2, [report_dict["training"][k]["joules"] for k in keys], width, label="per training step")
        sample_keys = [k for k in keys if k in report_dict["sampling"]]
        right.bar([pos[keys.index(k)] + width / 2 for k in sample_keys], [report_dict["sampling"][k]["joules"] for k in sample_keys],
                  width, label="per generated sample")
        right.set_xticks(pos, [_way_label(k) for k in keys])
        right.set_yscale("log")
        right.set_ylabel("J")
        right.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
        right.set_title("the circuit against digital", fontsize=10)
        source = report_dict.get("source")
        if source:
            fig.suptitle(f"time and energy of {source}", fontsize=11)
        fig.tight_layout()
        _save(fig, path)


# What each devices key a robustness sweep varies is measured in (config/hardware.py).
_DEVICE_AXIS = {
    "variability": "variability (relative spread of G)",
    "bits": "programming bits per device",
    "stuck_gmax": "share of devices stuck at gmax",
    "stuck_gmin": "share of devices stuck at gmin",
    "driver_gain_sigma": "driver gain spread (relative)",
    "driver_offset_sigma": "driver offset spread (V)",
    "read_noise": "read noise (V rms)",
    "adc_bits": "ADC bits",
    "dac_bits": "DAC bits",
    "program_noise": "programming noise (share of gmax - gmin)",
    "write_noise": "write noise (relative to a step)",
}


def plot_robustness(report_dict: dict, path: str | os.PathLike, title: str | None = None) -> None:
    """`analogep robustness --plot`: per swept non-ideality, the Frechet distance and the
    classifier confidence of the deployed model's samples against its severity, in the
    key's unit (the ideal circuit dashed). A null value (exact: continuous levels, no ADC)
    is drawn at the left. The Frechet axis is logarithmic only when its values span more
    than a decade, and its ticks are plain numbers. `title` names the weights."""
    from matplotlib.ticker import ScalarFormatter

    sweeps = report_dict["sweeps"]
    n = max(1, len(sweeps))
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    ideal = report_dict["ideal"]
    with _figure(rows, cols, figsize=(3.8 * cols, 3.2 * rows), squeeze=False) as (fig, axes):
        for ax, (key, points) in zip(axes.ravel(), sweeps.items()):
            labels = ["exact" if p["value"] is None else f"{p['value']:g}" for p in points]
            x = np.arange(len(points))
            frechet = np.array([p["quality"]["frechet"] for p in points], dtype=np.float64)
            ax.plot(x, frechet, "o-", color="tab:red", label="Frechet")
            ax.axhline(ideal["frechet"], color="tab:red", ls="--", lw=0.8)
            _log_if_helpful(ax, np.append(frechet, ideal["frechet"]))
            log = ax.get_yscale() == "log"
            if not log:
                formatter = ScalarFormatter(useOffset=False)
                formatter.set_scientific(False)
                ax.yaxis.set_major_formatter(formatter)
            ax.set_xticks(x, labels)
            ax.set_xlabel(_DEVICE_AXIS.get(key, key), fontsize=9)
            ax.set_ylabel("Frechet distance" + (" (log)" if log else ""), color="tab:red")
            twin = ax.twinx()
            twin.plot(x, [p["quality"]["confidence"] for p in points], "s-", color="tab:blue")
            twin.axhline(ideal["confidence"], color="tab:blue", ls="--", lw=0.8)
            twin.set_ylim(0, 1)
            twin.set_ylabel("confidence", color="tab:blue")
            ax.grid(alpha=0.3)
        for ax in axes.ravel()[len(sweeps):]:
            ax.axis("off")
        head = f"{title}: deployed" if title else "deployed"
        fig.suptitle(f"{head} on devices, sample quality per non-ideality "
                     f"({report_dict['n_samples']} samples per point; dashed: the ideal circuit)", fontsize=10)
        fig.tight_layout()
        _save(fig, path)


_KIND_COLOR = {"one-sided": "tab:red", "symmetric": "tab:blue"}


def _study_head(result: dict) -> str:
    """What a study figure is of: the EP gradient of the result's objective (its label,
    api.study records it), and whose weights when the result names its source."""
    head = f"EP gradient of the {result['objective']} loss" if result.get("objective") else "EP gradient"
    return f"{head}, {result['source']}," if result.get("source") else head


def plot_unbiasedness(result: dict, path: str | os.PathLike) -> None:
    """Study 1: relative error, and its part across the exact gradient (direction), of EP vs
    exact against beta (log-log), one-sided and symmetric, couplings solid and biases dashed,
    with the fitted slopes in the legend."""
    b = np.asarray(result["betas"], dtype=np.float64)
    groups = (("coupling", "o-", "couplings"), ("bias", "s--", "biases"))
    with _figure(1, 2, figsize=(10, 4)) as (fig, (ax_err, ax_dir)):
        for kind, color in _KIND_COLOR.items():
            for group, style, label in groups:
                c = result[kind][group]
                for ax, key, slope in ((ax_err, "rel_error", "slope"), (ax_dir, "direction_error", "direction_slope")):
                    err = np.asarray(c[key])
                    ax.plot(b, np.where(err > 0, err, np.nan), style, color=color, ms=4,
                            label=f"{kind}, {label} (slope {c[slope]:.2f})")
        ax_err.set_ylabel("relative error |g_EP - g| / |g|")
        ax_dir.set_ylabel("direction error |g_EP across g| / |g|")
        for ax in (ax_err, ax_dir):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(r"nudge $\beta$")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
        fig.suptitle(f"{_study_head(result)} vs exact as beta -> 0 (float64, relaxed to 1e-11)", fontsize=10)
        fig.tight_layout()
        _save(fig, path)


def plot_relaxation_budget(result: dict, path: str | os.PathLike) -> None:
    """Study 2: cosine of EP vs exact against the iterations each phase gets, one panel per
    solver, one-sided and symmetric, with the zero line (below it: anti-correlated)."""
    solvers = [s for s in ("euler", "fast") if s in result]
    with _figure(1, len(solvers), figsize=(5 * len(solvers), 4), squeeze=False) as (fig, axes):
        for ax, solver in zip(axes[0], solvers):
            r = result[solver]
            for kind, color in _KIND_COLOR.items():
                ax.plot(r["budgets"], r[kind]["cosine"], "o-", color=color, ms=4, label=kind)
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_xscale("log")
            ax.set_ylim(-1.05, 1.05)
            ax.set_xlabel("Euler steps per phase" if solver == "euler" else "block sweeps per phase (fast solver)")
            ax.set_ylabel("cosine(g_EP, g)")
            ax.set_title(solver, fontsize=10)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
        fig.suptitle(f"{_study_head(result)} under a finite relaxation budget (beta {result['beta']:g})", fontsize=10)
        fig.tight_layout()
        _save(fig, path)


def plot_bias_variance(result: dict, path: str | os.PathLike) -> None:
    """Study 3: error vs beta per read-noise level (one panel per kind, the best beta marked,
    the noise-free ADC read-out dotted), and the best beta against the noise level with the
    fitted and the predicted exponents."""
    b = np.asarray(result["betas"], dtype=np.float64)
    levels = np.asarray(result["noise_levels"], dtype=np.float64)
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(levels)))
    with _figure(1, 3, figsize=(14, 4)) as (fig, axes):
        for ax, kind in zip(axes[:2], _KIND_COLOR):
            r = result[kind]
            for s, row, best, err, shade in zip(levels, r["rel_error"], r["best_beta"], r["best_error"], shades):
                ax.plot(b, row, "-", color=shade, label=f"read noise {s:.0e}")
                ax.plot([best], [err], "*", color=shade, ms=10)
            if "adc_rel_error" in r:
                adc = result["adc"]
                ax.plot(b, r["adc_rel_error"], "k:", label=f"{adc['bits']}-bit ADC, +-{adc['range']:g}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(r"nudge $\beta$")
            ax.set_ylabel("rms relative error")
            ax.set_title(f"{kind} EP", fontsize=10)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
        ax = axes[2]
        for kind, color in _KIND_COLOR.items():
            r = result[kind]
            predicted = result["predicted_exponent"][kind]
            ax.plot(levels, r["best_beta"], "o", color=color, label=f"{kind}: measured slope {r['exponent']:.2f}")
            ref = r["best_beta"][-1] * (levels / levels[-1]) ** predicted
            ax.plot(levels, ref, "--", color=color, lw=0.9, label=f"{kind}: predicted s^{predicted:.2g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("read noise s (state units)")
        ax.set_ylabel(r"best $\beta$")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        fig.suptitle(f"{_study_head(result)} with noisy read-outs: bias vs variance", fontsize=10)
        fig.tight_layout()
        _save(fig, path)


_GEN_LABELS = {
    "confidence": "confidence (mean max prob)",
    "classes_covered": "classes covered",
    "frechet": "Fréchet distance (pixels)",
    "nearest_train_distance": "nearest-train distance",
    "outside_range": "share outside [-1, 1]",
}


def _gen_row(axes, grid, series: dict[str, dict], reference: dict, xlabel: str, log_x: bool | str) -> None:
    """One row of the generation study: a panel per figure, a line per series (mean with
    the spread over seeds as error bars), the held-out real digits' figure dashed."""
    for ax, f in zip(axes, _GEN_LABELS):
        for label, figures in series.items():
            ax.errorbar(grid, figures[f]["mean"], yerr=figures[f]["std"], fmt="o-", ms=3, capsize=2, label=label)
        ax.axhline(reference[f], color="k", ls="--", lw=0.8, label="held-out real")
        if log_x == "symlog":  # a grid from 0
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(-0.2, 1.5 * max(grid))
        elif log_x:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(_GEN_LABELS[f], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)


def plot_generation(result: dict, path: str | os.PathLike) -> None:
    """The generation study (evaluation/generation.py): every evaluate figure against t1 per
    read-out mode, and, when measured, against the number of Euler steps at a fixed t1 (a
    DSM run's, evaluation/dsm_generation.py: against tau, Langevin steps per level and the
    steps added at sigma_min, the axes named by the result's xlabel)."""
    rows = [k for k in ("t1", "steps", "extra") if k in result]
    with _figure(len(rows), len(_GEN_LABELS), figsize=(3.4 * len(_GEN_LABELS), 3.2 * len(rows)), squeeze=False) as (fig, axes):
        for ax_row, kind in zip(axes, rows):
            r = result[kind]
            if kind == "t1":
                series = {m: v["figures"] for m, v in r["modes"].items()}
                _gen_row(ax_row, r["grid"], series, r["reference"], r.get("xlabel") or f"t1 (Euler dt {r['dt']:g})", False)
            elif kind == "steps":
                _gen_row(ax_row, r["grid"], {r["mode"]: r["figures"]}, r["reference"],
                         r.get("xlabel") or f"Euler steps to t1 = {r['t1']:g}", True)
            else:
                _gen_row(ax_row, r["grid"], {r["mode"]: r["figures"]}, r["reference"], r["xlabel"], "symlog")
        seeds = len(result[rows[0]]["seeds"])
        fig.suptitle(f"generation, {result['source']}: {result[rows[0]]['n']} samples, mean ± sd over {seeds} noise seeds",
                     fontsize=10)
        fig.tight_layout()
        _save(fig, path)


def plot_continuous(result: dict, path: str | os.PathLike) -> None:
    """Continuous generation (evaluation/continuous.py): each evaluate figure against the
    capacitance ratio with the Euler sampler's mean ± sd as a band; time and energy per
    sample against the ratio with the clamped loop's as a line."""
    ratios = result["ratios"]
    with _figure(2, len(_GEN_LABELS), figsize=(3.4 * len(_GEN_LABELS), 6.4), squeeze=False) as (fig, axes):
        _gen_row(axes[0], ratios, {"continuous": result["figures"]}, result["reference"], "C_visible / C_hidden", True)
        for ax, f in zip(axes[0], _GEN_LABELS):
            e = result["euler"][f]
            ax.axhspan(e["mean"] - e["std"], e["mean"] + e["std"], color="C2", alpha=0.25)
            ax.axhline(e["mean"], color="C2", lw=1, label=f"Euler dt {result['dt']:g}")
        axes[0][0].legend(fontsize=7)
        en = result["energy"]
        for ax, key, unit, scale in ((axes[1][0], "seconds", "µs", 1e6), (axes[1][1], "joules", "nJ", 1e9)):
            ax.plot(ratios, [e[key] * scale for e in en["continuous"]], "o-", ms=3, label="continuous")
            ax.axhline(en["clamped"][key] * scale, color="C3", ls="--", label="clamped Euler loop")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("C_visible / C_hidden")
            ax.set_title(f"{'time' if key == 'seconds' else 'energy'} per sample ({unit})", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
        for ax in axes[1][2:]:
            ax.axis("off")
        if "agreement" in result:
            a = result["agreement"]
            axes[1][2].text(0.0, 0.8, f"ngspice vs numpy, ratio {a['ratio']:g}, {a['n']} samples:\n"
                                      f"max {max(a['spice_vs_numpy']):.2e} of full scale", fontsize=9, va="top")
        fig.suptitle(f"continuous generation, {result['source']}: t1 {result['t1']:g}, {result['n']} samples, "
                     f"mean ± sd over {len(result['seeds'])} seeds", fontsize=10)
        fig.tight_layout()
        _save(fig, path)
