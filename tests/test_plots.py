"""Every plot writes a real PNG, atomically, and leaves nothing else behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analogep.evaluation import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png_only(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC
    # atomic_path's temp files are ".<name>.*" siblings: none may survive
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert plots.plt.get_fignums() == []  # the figure was closed


def test_plot_samples(tmp_path):
    rng = np.random.default_rng(0)
    out = tmp_path / "new" / "dir" / "samples.png"  # parents are created
    plots.plot_samples(np.clip(rng.standard_normal((37, 64)), -1, 1), out, title="noise")
    _assert_png_only(out)


def test_plot_samples_accepts_images_and_caps_count(tmp_path):
    out = tmp_path / "grid.png"
    plots.plot_samples(np.zeros((250, 8, 8)), out, ncols=8, max_images=16)
    _assert_png_only(out)


def test_plot_samples_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plots.plot_samples(np.zeros((4, 63)), tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_loss_with_diagnostics(tmp_path):
    steps = np.arange(200)
    records = [
        {"step": int(s), "loss": float(3.0 * np.exp(-s / 50) + 0.1), "grad_norm": float(1.0 / (1 + s)), "v_norm": 2.0}
        for s in steps
    ]
    out = tmp_path / "loss.png"
    plots.plot_loss(records, out)
    _assert_png_only(out)


def test_plot_loss_loss_only(tmp_path):
    out = tmp_path / "loss.png"
    plots.plot_loss([{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.9}], out)
    _assert_png_only(out)


def test_plot_loss_rejects_missing_keys(tmp_path):
    with pytest.raises(ValueError, match="loss"):
        plots.plot_loss([{"step": 0}], tmp_path / "loss.png")
    with pytest.raises(ValueError, match="empty"):
        plots.plot_loss([], tmp_path / "loss.png")


def test_plot_beta_sweep(tmp_path):
    betas = np.geomspace(1e-3, 1e-1, 6)
    errors = {"two-phase": list(0.5 * betas), "three-phase": list(0.3 * betas**2)}
    out = tmp_path / "beta.png"
    plots.plot_beta_sweep(betas, errors, out)
    _assert_png_only(out)


def test_plot_beta_sweep_rejects_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="two-phase"):
        plots.plot_beta_sweep([0.01, 0.1], {"two-phase": [0.1]}, tmp_path / "beta.png")


def test_plot_scatter(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, 100)
    out = tmp_path / "scatter.png"
    plots.plot_scatter(ref, ref + 1e-3 * rng.standard_normal(100), out, "numpy (V)", "ngspice (V)", title="nodes")
    _assert_png_only(out)


def test_plot_scatter_rejects_size_mismatch(tmp_path):
    with pytest.raises(ValueError, match="same"):
        plots.plot_scatter(np.zeros(3), np.zeros(4), tmp_path / "s.png", "x", "y")


def test_plot_class_shares(tmp_path):
    report = {
        "class_shares": [0.1] * 9 + [0.1],
        "classes_covered": 10,
        "min_share": 0.03,
        "reference": {"class_shares": [0.1] * 10},
    }
    out = tmp_path / "shares.png"
    plots.plot_class_shares(report, out)
    _assert_png_only(out)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    out = tmp_path / "samples.png"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        plots.plot_samples(np.zeros((4, 64)), out)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file
    assert plots.plt.get_fignums() == []  # the figure was closed despite the error
