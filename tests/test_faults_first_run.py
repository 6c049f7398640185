"""A first run as a new user makes it: the README's examples run as written, in order and
again, and the figures say what they show (whose weights, which step, in which units).
"""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep.cli import main
from analogep.config import load_spec
from analogep.evaluation import plots

from clirun import invoke

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


# --- the README (issue 23, item 12) ---------------------------------------------------------------


def test_the_readme_examples_run_as_written_in_order_and_again(tmp_path, monkeypatch):
    """Before: the README's compare needed runs that take hours (runs/digits-euler), and the
    API snippet died at its compare line; run again, its `train` refused the folder it had
    made and told an API user to 'use --resume'. Each `analogep ...` line of the README's
    command blocks runs as written (the quick start's scripts are the long main job), then
    the Python block, twice."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(line, comments=True) for block in code_blocks("bash") for line in block.splitlines()
                if line.startswith("analogep ")]
    assert len(commands) >= 5 and any(c[1] == "compare" for c in commands)
    for command in commands:
        result = invoke(*command[1:])
        assert result.exit_code == 0, f"{shlex.join(command)}\n{result.output}"
        assert "Traceback" not in result.output
    [api] = code_blocks("python")
    for attempt in ("first", "again"):
        namespace: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the README's pcm deployment warns about line resistance
            exec(compile(api, f"README.md python block ({attempt})", "exec"), namespace)
        assert namespace["result"].step == load_spec(TINY).train.steps
        assert namespace["report"].frechet > 0 and namespace["check"].passed
        assert len(namespace["rob"].sweeps["variability"]) == 3


def test_the_api_says_how_to_continue_a_run_in_its_own_terms(tmp_path):
    """Before: train into a folder holding a run told an API user to 'use --resume'."""
    from analogep.errors import CheckpointError

    spec = load_spec(TINY).replace(train={"steps": 2, "batch": 16})
    first = analogep.train(spec, tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"continue it with --resume \(API: resume=True, or resume='auto'"):
        analogep.train(spec, tmp_path / "run")
    again = analogep.train(spec, tmp_path / "run", resume="auto")  # a script that runs twice picks up its run
    assert again.step == 2
    for k in first.params:
        np.testing.assert_array_equal(again.params[k], first.params[k])
    assert analogep.train(spec, tmp_path / "fresh", resume="auto").step == 2  # and starts one where there is none


# --- figures that say what they show (item 14) --------------------------------------------------------


@pytest.fixture
def figures(monkeypatch) -> dict[str, list[str]]:
    """Every figure a command writes, by file name: the texts drawn in it (titles, labels,
    ticks, legends), read off the figure as it is saved."""
    seen: dict[str, list[str]] = {}
    real = plots._save

    def save(fig, path):
        fig.canvas.draw()
        texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]
        seen[Path(path).name] = texts
        seen.setdefault("_figures", []).append(fig)
        real(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    return seen


def test_loss_samples_and_beta_sweep_figures_name_the_run_and_the_step(figures, tmp_path):
    """Before: loss.png, samples.png and beta_sweep.png did not say whose they were."""
    out = tmp_path / "my-run"
    assert invoke("train", TINY, "--steps", 3, "--batch", 16, "--out", out).exit_code == 0
    assert any(f"{out} (tiny), step 3" in t for t in figures["loss.png"])
    assert any(t.startswith(f"{out} step 3: ") for t in figures["samples.png"])
    assert invoke("gradcheck", out, "--batch", 2, "--beta-sweep", "--plot", tmp_path / "sweep.png").exit_code == 0
    assert any(f"{out} (step 3)" in t for t in figures["sweep.png"])
    assert invoke("sample", out, "--n", 4, "--out", tmp_path / "s.png").exit_code == 0
    assert any(t.startswith("my-run step 3: ") for t in figures["s.png"])


def test_a_study_figure_is_titled_by_the_objective_it_studies(figures, tmp_path):
    """Before: the three study figures were titled 'EP-DSM ...' even for a flow config."""
    result = invoke("study", "budget", TINY, "--batch", 2, "--euler", "5", "--sweeps", "1", "--plot", tmp_path / "b.png")
    assert result.exit_code == 0, result.output
    title = next(t for t in figures["b.png"] if "relaxation budget" in t)
    assert title.startswith("EP gradient of the flow-matching loss, ") and "DSM" not in title


def test_the_robustness_figure_has_units_plain_ticks_and_says_where_it_went(figures, tmp_path):
    """Before: log axes over tiny ranges (ticks like 1.95675x10^1), no units on read noise and
    offset, and no word of where the plot went."""
    out = tmp_path / "run"
    analogep.train(load_spec(TINY).replace(train={"steps": 2, "batch": 16}), out)
    plot = tmp_path / "r.png"
    result = invoke("robustness", out, "--sweep", "read_noise=0,0.001", "--sweep", "driver_offset_sigma=0,0.002",
                    "--n", 20, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"plot -> {plot}"
    texts = figures["r.png"]
    assert "read noise (V rms)" in texts and "driver offset spread (V)" in texts
    fig = figures["_figures"][-1]
    for ax in fig.axes[::2]:  # the Frechet axes (each has a confidence twin)
        frechet = [v for line in ax.get_lines() for v in line.get_ydata()]
        if max(frechet) / min(frechet) <= 10:
            assert ax.get_yscale() == "linear" and ax.yaxis.get_major_formatter().get_offset() == ""
    assert not any("times10" in t or "\\times" in t for t in texts)


def test_the_energy_figure_keeps_its_legend_off_the_bars_and_its_labels_whole(figures, tmp_path):
    """Before: the legend covered a bar of the right panel and the row labels were cut."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.patches import Rectangle

    spec = load_spec(TINY)
    params = analogep.load_model(TINY)[1]
    report = analogep.energy(spec, params, "tiny (initial weights)", points=2, samples=10, sample_points=1,
                             measure_cpu=False).to_dict()
    plots.plot_energy(report, tmp_path / "e.png")
    fig = figures["_figures"][-1]
    canvas = FigureCanvasAgg(fig)  # the figure as drawn (closed after saving)
    canvas.draw()
    renderer = canvas.get_renderer()
    left, right = fig.axes[:2]
    legend = right.get_legend().get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in right.patches if isinstance(p, Rectangle) and p.get_height() > 0]
    assert bars and not any(legend.overlaps(b) for b in bars)
    right_box = right.get_window_extent(renderer)
    for label in left.get_yticklabels():  # the row labels: whole, and clear of the other panel
        box = label.get_window_extent(renderer)
        assert box.x0 >= 0 and not box.overlaps(right_box)
    assert "time and energy of tiny (initial weights)" in figures["e.png"]
