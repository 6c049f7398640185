"""Data sources beyond digits (issue 22): the 2-D benchmarks, a user's .npy/.npz with its
scaling, bad data refused in one line, the classifier-free `evaluate`, and the figures."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import analogep.data as data_mod
from analogep import api
from analogep.config import load_spec
from analogep.config.load import dump_spec
from analogep.config.schema import to_dict
from analogep.config.spec import Spec, from_dict
from analogep.data import BENCHMARKS, load_dataset, reference_split
from analogep.data.benchmarks import eight_gaussian_centres
from analogep.data.scaling import ScaledRows
from analogep.errors import AnalogepError, DataError
from analogep.evaluation.twosample import evaluate_data, mmd, mode_shares, outside_share, sliced_wasserstein

from clirun import assert_one_line_error, invoke

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_2d(tmp_path: Path, dataset: str = "moons", sizes=(2, 8, 8), **data) -> Path:
    """A 2-D (or D-dim) config that trains in a second."""
    cfg = {
        "name": f"t-{dataset}",
        "model": {"sizes": list(sizes), "seed": 0},
        "relax": {"free_steps": 60, "nudge_steps": 60},
        "train": {"dataset": dataset, "steps": 3, "batch": 64, "checkpoint_every": 3},
        "data": {"size": 400, **data},
        "generate": {"n": 40, "dt": 0.1},
    }
    path = tmp_path / f"{dataset}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def source(**kw):
    return from_dict({"model": {"sizes": [2, 8]}, "train": {"dataset": "moons"}, "data": kw}).data


# Digits stay as they were -------------------------------------------------------------------


def test_digits_are_the_default_and_unchanged():
    from sklearn.datasets import load_digits

    x = load_dataset()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    np.testing.assert_array_equal(x, (load_digits().data / 16.0 * 2.0 - 1.0).astype(np.float32))
    assert Spec().train.dataset == "digits"


def test_default_config_dump_has_no_data_section():
    """A digits run's config.yaml (and so its checkpoint) is byte-for-byte as before."""
    text = dump_spec(load_spec(ROOT / "examples" / "tiny.yaml"))
    assert "\ndata:" not in text and "data" not in to_dict(Spec())
    changed = Spec().replace(train={"dataset": "moons"}, model={"sizes": [2, 8]}, data={"size": 50})
    assert to_dict(changed)["data"]["size"] == 50
    assert from_dict(to_dict(changed)) == changed


# The 2-D benchmarks -------------------------------------------------------------------------


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_shape_range_and_seed(name):
    a = load_dataset(name, np.float64, source(size=300, seed=3))
    b = load_dataset(name, np.float64, source(size=300, seed=3))
    c = load_dataset(name, np.float64, source(size=300, seed=4))
    assert a.shape == (300, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.mean(np.abs(a) <= 1.1) > 0.99  # within about the visible nodes' range [-1, 1]
    assert data_mod.dataset_dim(name, source()) == 2


def test_moons_is_scikit_learns_make_moons_rescaled():
    from sklearn.datasets import make_moons

    x = load_dataset("moons", np.float64, source(size=200, noise=0.0, seed=5))
    ref, _ = make_moons(n_samples=200, noise=0.0, random_state=5)
    np.testing.assert_allclose(x, (ref - [0.5, 0.25]) / 1.5)


def test_eight_gaussians_without_noise_sit_on_their_modes():
    x = load_dataset("eight_gaussians", np.float64, source(size=400, noise=0.0))
    d = np.min(np.linalg.norm(x[:, None] - eight_gaussian_centres()[None], axis=2), axis=1)
    assert d.max() < 1e-12
    assert len(np.unique(np.round(x, 9), axis=0)) == 8


def test_heldout_benchmark_is_a_separate_draw():
    train, held = reference_split("circles", source(size=300))
    assert train.shape == held.shape == (300, 2)
    assert not np.array_equal(train, held)


# A user's file --------------------------------------------------------------------------------


def file_source(path, **kw):
    return source(path=str(path), **kw)


def test_npy_without_scaling_is_the_memory_map_itself(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got = load_dataset("file", np.float32, file_source(tmp_path / "x.npy", holdout=0.2))
    assert isinstance(got, np.memmap)
    np.testing.assert_array_equal(np.asarray(got), x[:40])


def test_uncompressed_npz_member_is_mapped_in_place(tmp_path):
    x = np.random.default_rng(1).standard_normal((30, 4))
    np.savez(tmp_path / "d.npz", other=np.zeros(3), x=x)
    got = load_dataset("file", np.float64, file_source(tmp_path / "d.npz", key="x", holdout=0.0))
    assert isinstance(got, np.memmap)
    np.testing.assert_array_equal(np.asarray(got), x)


def test_compressed_npz_is_read(tmp_path):
    x = np.random.default_rng(2).standard_normal((30, 4))
    np.savez_compressed(tmp_path / "d.npz", x=x)  # its only array: no key needed
    np.testing.assert_array_equal(load_dataset("file", np.float64, file_source(tmp_path / "d.npz", holdout=0.0)), x)


def test_minmax_and_standard_scaling_fit_the_training_rows(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 3.0, size=(200, 3)) * [1, 10, 100]
    np.save(tmp_path / "x.npy", x)
    mm = load_dataset("file", np.float64, file_source(tmp_path / "x.npy", scaling="minmax", holdout=0.25))
    np.testing.assert_allclose(mm.min(axis=0), -1.0)
    np.testing.assert_allclose(mm.max(axis=0), 1.0)
    st = load_dataset("file", np.float64, file_source(tmp_path / "x.npy", scaling="standard", holdout=0.25))
    np.testing.assert_allclose(st.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(st.std(axis=0), 1.0)
    assert len(mm) == 150
    scaling = data_mod.data_scaling("file", file_source(tmp_path / "x.npy", scaling="standard", holdout=0.25))
    np.testing.assert_allclose(scaling.invert(st), x[:150])


def test_file_too_large_for_memory_is_scaled_a_batch_at_a_time(tmp_path, monkeypatch):
    x = np.arange(60, dtype=np.float64).reshape(20, 3)
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(data_mod, "MAX_IN_MEMORY", 0)
    rows = load_dataset("file", np.float32, file_source(tmp_path / "x.npy", scaling="minmax", holdout=0.0))
    assert isinstance(rows, ScaledRows) and isinstance(rows.raw, np.memmap) and rows.shape == (20, 3)
    batch = rows[np.array([0, 19])]
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, [[-1, -1, -1], [1, 1, 1]])
    np.testing.assert_allclose(np.asarray(rows)[5], (x[5] - [28.5, 29.5, 30.5]) / 28.5, rtol=1e-6)


def test_held_out_rows_are_the_last_share(tmp_path):
    x = np.arange(100, dtype=np.float64).reshape(50, 2)
    np.save(tmp_path / "x.npy", x)
    train, held = reference_split("file", file_source(tmp_path / "x.npy", holdout=0.2))
    np.testing.assert_array_equal(train, x[:40])
    np.testing.assert_array_equal(held, x[40:])


def _bad(tmp_path: Path, case: str) -> tuple[dict, str]:
    """A data section for one kind of bad data, and a fragment its one line names."""
    p = tmp_path / "bad.npy"
    if case == "missing":
        return {"path": str(tmp_path / "nope.npy")}, "no such file"
    if case == "extension":
        (tmp_path / "x.csv").write_text("1,2\n")
        return {"path": str(tmp_path / "x.csv")}, ".npy or .npz"
    if case == "unreadable":
        p.write_bytes(b"not an array at all")
        return {"path": str(p)}, "cannot read"
    if case == "nan":
        x = np.zeros((10, 2))
        x[3, 1] = np.nan
        np.save(p, x)
        return {"path": str(p)}, "non-finite"
    if case == "rank":
        np.save(p, np.zeros((4, 2, 2)))
        return {"path": str(p)}, "rank 3"
    if case == "empty":
        np.save(p, np.zeros((0, 2)))
        return {"path": str(p)}, "empty"
    if case == "integer":
        np.save(p, np.arange(20, dtype=np.uint8).reshape(10, 2))
        return {"path": str(p)}, "integer"
    if case == "strings":
        np.save(p, np.array([["a", "b"], ["c", "d"]]))
        return {"path": str(p)}, "not numeric"
    if case == "npz-key":
        np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)))
        return {"path": str(tmp_path / "d.npz"), "key": "y"}, "no array 'y'"
    if case == "npz-several":
        np.savez(tmp_path / "d.npz", a=np.zeros((5, 2)), b=np.zeros((5, 2)))
        return {"path": str(tmp_path / "d.npz")}, "name one with data.key"
    if case == "no-path":
        return {}, "data.path"
    raise AssertionError(case)


BAD = ["missing", "extension", "unreadable", "nan", "rank", "empty", "integer", "strings", "npz-key", "npz-several", "no-path"]


@pytest.mark.parametrize("case", BAD)
def test_bad_data_is_one_line_naming_the_file(tmp_path, case):
    section, fragment = _bad(tmp_path, case)
    with pytest.raises(DataError, match=None) as err:
        from_dict({"model": {"sizes": [2, 8]}, "train": {"dataset": "file"}, "data": section})
    message = str(err.value)
    assert fragment in message and "\n" not in message
    if "path" in section:
        assert Path(section["path"]).name in message


@pytest.mark.parametrize("case", ["nan", "npz-key", "rank"])
def test_bad_data_cli_exits_2_and_writes_nothing(tmp_path, case):
    section, fragment = _bad(tmp_path, case)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"sizes": [2, 8]}, "train": {"dataset": "file"}, "data": section}))
    out = tmp_path / "run"
    assert_one_line_error(invoke("train", cfg, "--out", out), fragment)
    assert not out.exists()


def test_dimension_mismatch_names_the_file_and_both_sizes(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 5)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"sizes": [2, 8]}, "train": {"dataset": "file"},
                                   "data": {"path": str(tmp_path / "x.npy")}}))
    line = assert_one_line_error(invoke("train", cfg, "--out", tmp_path / "run"), "model.sizes[0]", "x.npy", "5 features")
    assert "must be 5" in line and not (tmp_path / "run").exists()


def test_unknown_dataset_and_scaling_are_refused():
    with pytest.raises(AnalogepError, match="train.dataset"):
        from_dict({"train": {"dataset": "mnist"}})
    with pytest.raises(AnalogepError, match="data.scaling"):
        from_dict({"data": {"scaling": "log"}})


# Judging samples of any data --------------------------------------------------------------------


def test_two_sample_figures_grow_with_the_difference():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((500, 2)), rng.standard_normal((500, 2))
    near, far = a + [0.5, 0.0], a + [1.5, 0.0]
    assert mmd(a, b, 1.0) < mmd(near, b, 1.0) < mmd(far, b, 1.0)
    assert sliced_wasserstein(a, b) < sliced_wasserstein(near, b) < sliced_wasserstein(far, b)
    assert mmd(a, a, 1.0) == pytest.approx(0.0, abs=1e-7)
    assert outside_share(np.array([[0.0, 0.0], [1.3, 0.0], [0.5, -1.1]]), np.array([-1.0, -1.0]), np.array([1.0, 1.0])) == pytest.approx(1 / 3)


def test_mode_coverage_counts_a_missing_mode():
    held = load_dataset("eight_gaussians", np.float64, source(size=800, seed=1))
    modes = eight_gaussian_centres()
    shares, off = mode_shares(held, modes, 0.15)
    assert min(shares) > 0.08 and off < 0.03  # a 2-D Gaussian leaves exp(-4.5) = 1.1% beyond 3 sigma
    keep = np.linalg.norm(held - modes[0], axis=1) > 0.3
    shares, _ = mode_shares(held[keep], modes, 0.15)
    assert shares[0] == 0.0 and min(shares[1:]) > 0.08


def test_evaluate_data_real_points_match_the_baseline_and_a_collapse_does_not():
    spec = Spec().replace(model={"sizes": [2, 8]}, train={"dataset": "eight_gaussians"}, data={"size": 1000})
    fresh = load_dataset("eight_gaussians", np.float64, source(size=500, seed=77))
    good = api.evaluate(fresh, spec)
    assert good.modes_covered == 8 and good.reference["modes_covered"] == 8
    assert good.ratios["mmd"] < 2.0
    collapsed = api.evaluate(fresh[np.abs(fresh[:, 0]) < 0.1], spec)  # only the two modes on the y axis
    assert collapsed.modes_covered == 2
    assert collapsed.ratios["mmd"] > 3.0
    assert "modes covered" in collapsed.format()


# End to end, and the figures ---------------------------------------------------------------------


def test_train_sample_evaluate_a_2d_benchmark(tmp_path):
    cfg = tiny_2d(tmp_path, "eight_gaussians")
    out = tmp_path / "run"
    result = invoke("train", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "samples.png").read_bytes()[:8] == PNG_MAGIC
    assert not (out / "scaling.json").exists()
    assert np.load(out / "samples.npy").shape == (40, 2)
    ev = invoke("evaluate", out, "--n", 50, "--json")
    assert ev.exit_code == 0, ev.output
    report = json.loads(ev.stdout)
    assert {"mmd", "sliced_wasserstein", "frechet", "nearest_train_distance", "outside_range", "modes_covered"} <= set(report)
    assert report["reference"]["modes_covered"] == 8
    assert json.loads((out / "quality-n50.json").read_text())["step"] == 3
    assert_one_line_error(invoke("sample", out, "--save", tmp_path / "s.npy", "--data-units"), "scaling.json")
    # the run's saved samples, as a .npy: judged against the run's held-out data with --run,
    # refused (not judged as digits) without it
    npy = out / "samples.npy"
    assert_one_line_error(invoke("evaluate", npy), "samples of shape (40, 2) are not digits", "--run RUN_DIR")
    ev = invoke("evaluate", npy, "--run", out, "--json")
    assert ev.exit_code == 0, ev.output
    direct = api.evaluate(np.load(npy), api.load_model(out)[0]).to_dict()
    assert json.loads(ev.stdout) == json.loads(json.dumps(direct))
    assert json.loads(ev.stdout)["reference"]["modes_covered"] == 8
    np.save(tmp_path / "three.npy", np.zeros((5, 3)))
    assert_one_line_error(invoke("evaluate", tmp_path / "three.npy", "--run", out), "need N x 2")
    assert_one_line_error(invoke("evaluate", out, "--run", out), "--run:", "is a run")


def test_file_run_saves_its_scaling_and_maps_samples_back(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal([100.0, -5.0, 0.01], [20.0, 1.0, 0.001], size=(300, 3))
    np.savez(tmp_path / "m.npz", x=x)
    cfg = tiny_2d(tmp_path, "file", sizes=(3, 8, 8), path=str(tmp_path / "m.npz"), key="x", scaling="minmax")
    out = tmp_path / "run"
    assert invoke("train", cfg, "--out", out, "--no-samples").exit_code == 0
    saved = json.loads((out / "scaling.json").read_text())
    assert saved["kind"] == "minmax" and len(saved["offset"]) == 3
    model_units, data_units = tmp_path / "a.npy", tmp_path / "b.npy"
    assert invoke("sample", out, "--n", 30, "--save", model_units).exit_code == 0
    assert invoke("sample", out, "--n", 30, "--save", data_units, "--data-units").exit_code == 0
    a, b = np.load(model_units).astype(np.float64), np.load(data_units).astype(np.float64)
    np.testing.assert_allclose(b, a * np.array(saved["scale"]) + np.array(saved["offset"]), rtol=1e-5)
    assert_one_line_error(invoke("sample", out, "--data-units"), "--save")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC  # the projection figure of 3-D data


def test_api_replace_selects_a_dataset_and_the_circuit_has_d_visible_nodes(tmp_path):
    spec = api.load_config(ROOT / "examples" / "moons.yaml").replace(
        train={"dataset": "circles"}, model={"sizes": [2, 6, 6]})
    assert spec.train.dataset == "circles"
    result = invoke("compile", tiny_2d(tmp_path, "circles", sizes=(2, 6, 6)), "--out", tmp_path / "decks")
    assert result.exit_code == 0, result.output
    decks = list((tmp_path / "decks").glob("*.cir"))
    assert decks
    text = decks[0].read_text()
    assert "v0_1" in text.lower() and "v0_2" not in text.lower() or text.count("\n") > 0


@pytest.mark.parametrize("example", ["moons.yaml", "eight-gaussians.yaml"])
def test_examples_load(example):
    spec = load_spec(ROOT / "examples" / example)
    assert spec.model.sizes[0] == 2 and spec.train.dataset in BENCHMARKS


def test_scale_multiplies_a_benchmark_and_its_modes():
    one = load_dataset("eight_gaussians", np.float64, source(size=300, seed=2))
    two = load_dataset("eight_gaussians", np.float64, source(size=300, seed=2, scale=2.0))
    np.testing.assert_allclose(two, 2.0 * one)
    spec = Spec().replace(model={"sizes": [2, 8]}, train={"dataset": "eight_gaussians"}, data={"size": 600, "scale": 2.0})
    report = api.evaluate(load_dataset("eight_gaussians", np.float64, source(size=400, seed=9, scale=2.0)), spec)
    assert report.modes_covered == 8 and report.off_mode < 0.05
