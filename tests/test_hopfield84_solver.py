"""hopfield84's per-unit solve warm-started from the block solver's state (benchmarks/block_solver.py):
any start gives the same exact root as the cold solve, in both dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from analogep.model.families import hopfield84 as h84


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_warm_start_reaches_the_cold_root_from_any_guess(dtype):
    layer = h84.DiodeUnits(5)
    rng = np.random.default_rng(0)
    c = (3.0 * rng.standard_normal((64, 5))).astype(dtype)
    c[0] = [-50.0, -1e-6, 0.0, 1e-6, 50.0]
    cold = layer.transfer(c)
    eps = np.finfo(dtype).eps
    # the cold root solves the node: |g^{-1}(s) - c| within a few eps of the drive, scaled by the slope
    wide = cold.astype(np.float64)
    assert np.max(np.abs(layer.inverse(wide) - c) / layer.curvature(wide)) < 64 * eps
    guesses = {
        "near": cold + dtype(1e-3) * rng.standard_normal(c.shape).astype(dtype),
        "wrong sign": -cold,
        "far above": np.full_like(c, 3.0) * np.sign(c),
        "zero": np.zeros_like(c),
    }
    for name, start in guesses.items():
        warm = layer.transfer(c, start=start)
        assert warm.dtype == c.dtype
        np.testing.assert_allclose(warm, cold, rtol=0, atol=16 * eps, err_msg=name)
    assert np.all(np.sign(cold) == np.sign(c))  # odd, increasing: the sign of the drive


def test_block_update_is_the_exact_solve_moved_by_omega():
    layer = h84.DiodeUnits(4)
    rng = np.random.default_rng(1)
    s = 0.3 * rng.standard_normal((3, 4))
    drive = 2.0 * rng.standard_normal((3, 4))
    before = s.copy()
    slope = layer.block_update(s, drive, None, None, 1.4)
    np.testing.assert_allclose(slope, layer.inverse(before) - drive)
    np.testing.assert_allclose(s, before + 1.4 * (layer.transfer(drive) - before), atol=1e-15)


def test_diodes_in_series_scale_the_range_and_ngspice_agrees(tmp_path):
    """model.diodes: n 1N4148 in series per branch: u = n N V_T, so the output range grows n-fold;
    the compiled deck (cell hidden_diodes) solves, in ngspice as it is, to numpy's equilibrium."""
    import re
    import subprocess

    from click.testing import CliRunner

    from analogep.cli.app import main
    from tests.test_hopfield84 import TINY, _deck_voltages

    one, three = h84.DiodeUnits(1), h84.DiodeUnits(1, diodes=3)
    c = np.array([[20.0]])
    assert 2.5 < three.transfer(c)[0, 0] / one.transfer(c)[0, 0] < 3.0  # about n times (log compression)
    assert three.cell == ("hidden_diodes", {"r": h84.INPUT_GAIN, "nd": 3}) and one.cell[0] == "hidden_diode"
    config = tmp_path / "chain.yaml"
    config.write_text(TINY.read_text().replace("sizes: [64, 16, 16]", "sizes: [64, 6, 6]\n  diodes: 3\n  init_gain: 2.0"))
    out = tmp_path / "decks"
    result = CliRunner().invoke(main, ["compile", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    deck = (out / "free.cir").read_text()
    assert "hidden_diodes" in deck and "nd=3" in deck
    nodeset = {k: float(v) for k, v in re.findall(r"v\((\w+)\)=([-\d.e+]+)", deck)}
    assert max(abs(v) for k, v in nodeset.items() if re.fullmatch(r"h\d_\d+", k)) > 0.5  # beyond one diode's range
    run = subprocess.run(["ngspice", "-b", "free.cir"], cwd=out, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    got = _deck_voltages(run.stdout)
    err = max(abs(got[k] - v) for k, v in nodeset.items() if k in got and re.fullmatch(r"h\d_\d+", k))
    assert err < 2e-5, err


def test_diodes_on_another_family_is_one_line(tmp_path):
    from click.testing import CliRunner

    from analogep.cli.app import main

    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  sizes: [64, 8, 8]\n  diodes: 2\n")
    result = CliRunner().invoke(main, ["train", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.diodes" in lines[0] and "hopfield84" in lines[0], result.stderr
    assert not (tmp_path / "run").exists()
