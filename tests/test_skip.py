"""The rank-k skip coupling (model.skip_rank; method.md section 1): k bottleneck neurons z
coupled to the visible layer by U and to the top hidden layer by V.

Its derivatives are checked with the others in test_energy.py; here: what it adds to the
parameters and the config, that block descent still descends and lands where euler does
on the layer graph with a cycle, that EP measures U and V as it measures every W, that
the circuit carries O((n_0 + n_L) k) more devices and solves like numpy, and resume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import analogep
from analogep.cli.app import main
from analogep.config import ModelSpec, load_spec
from analogep.model.families.hopfield import HopfieldEnergy
from analogep.model.factory import build_energy
from analogep.solvers.base import VisibleSpring
from analogep.solvers.euler import EulerSolver
from analogep.solvers.fast import FastSolver

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"
LAM = 15.0


def skip_spec(k: int = 4, **train):
    return load_spec(TINY).replace(model={"skip_rank": k}, train={"batch": 32, "checkpoint_every": 3, **train})


def test_the_skip_adds_its_crossbars_and_leaves_the_chain_as_it_was():
    plain = HopfieldEnergy(ModelSpec(sizes=(64, 16, 16)))
    skip = HopfieldEnergy(ModelSpec(sizes=(64, 16, 16), skip_rank=4))
    assert skip.sizes == (64, 16, 16, 4)
    assert skip.param_names == plain.param_names + ("U", "V", "b_z")
    assert skip.param_shapes()["U"] == (4, 64) and skip.param_shapes()["V"] == (4, 16)
    assert skip.n_params - plain.n_params == (64 + 16 + 1) * 4
    a, b = plain.init_params(np.random.default_rng(0)), skip.init_params(np.random.default_rng(0))
    assert all(np.array_equal(a[name], b[name]) for name in a)  # the chain's draws come first
    assert np.std(b["U"]) > 0 and np.std(b["V"]) > 0 and not np.any(b["b_z"])
    rules = skip.circuit_rules()
    assert rules.couplings[-2:] == (("U", 0, 3), ("V", 2, 3)) and rules.biases[-1] == ("b_z", 3)


@pytest.mark.parametrize("value, fragment", [(-1, "must be >= 0"), (17, "min(64, 16) = 16")])
def test_a_skip_rank_out_of_range_is_one_line_and_exit_2(tmp_path, value, fragment):
    config = tmp_path / "bad.yaml"
    config.write_text(TINY.read_text().replace("model:\n", f"model:\n  skip_rank: {value}\n"))
    result = CliRunner().invoke(main, ["train", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "model.skip_rank" in lines[0] and fragment in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def _skip_model(sizes, k, seed=0, gain=0.75):
    """float64, trained-like weights (gain 0.75: the std tiny.yaml's weights reach in 400 steps) and
    non-zero biases. Much stronger weights make E multistable, and then two descent paths from
    one start can end in different minima (test_relax.py)."""
    model = HopfieldEnergy(ModelSpec(sizes=sizes, init_gain=gain, dtype="float64", skip_rank=k))
    rng = np.random.default_rng(seed)
    params = model.init_params(rng)
    for name in params:
        if name.startswith("b"):
            params[name] = 0.3 * rng.standard_normal(params[name].shape)
    x = rng.standard_normal((6, sizes[0]))
    return model, params, x


# One hidden layer and three: the cycle x - h1 .. hL - z - x has odd length L + 2 and the
# layer graph is not two-coloured; with two it is (z sits with h1).
GRAPHS = [((16, 12), 3), ((16, 12, 8), 3), ((16, 12, 8, 8), 4)]


@pytest.mark.parametrize("sizes, k", GRAPHS, ids=lambda p: "-".join(map(str, p)) if isinstance(p, tuple) else str(p))
def test_each_block_sweep_lowers_the_energy_with_the_skip(sizes, k):
    """The fast solver updates its layers one after another with fresh drives (Gauss-Seidel),
    so each layer's update is a descent step given its current neighbours, whatever the
    colouring; the total energy falls sweep by sweep (omega 1: plain block descent)."""
    model, params, x = _skip_model(sizes, k)
    spring = VisibleSpring(LAM, x)
    state = [s.copy() for s in model.zeros_state(x.shape[0])]
    state[0][...] = x

    def total(s):
        return model.energy(params, s) + 0.5 * LAM * np.sum((s[0] - x) ** 2, axis=1)

    energies = [total(state)]
    sweep = FastSolver(1, tol=0.0, omega=1.0)
    for _ in range(40):  # one sweep at a time
        state = sweep.relax(model, params, state, spring).state
        energies.append(total(state))
    steps = np.diff(np.stack(energies), axis=0)
    assert np.all(steps <= 1e-12), steps.max()
    assert max(np.max(np.abs(s)) for s in state[1:]) > 0.2  # the hidden units and z really move


@pytest.mark.parametrize("sizes, k", GRAPHS, ids=lambda p: "-".join(map(str, p)) if isinstance(p, tuple) else str(p))
@pytest.mark.parametrize("beta_sign", [0.0, -1.0])
def test_fast_and_euler_reach_the_same_equilibrium_with_the_skip(sizes, k, beta_sign):
    """Free phase and the -beta phase (the softest visible curvature), over-relaxed."""
    model, params, x = _skip_model(sizes, k, seed=1)
    spring = VisibleSpring(LAM, x)
    if beta_sign:
        anchor = x + 0.1 * np.random.default_rng(5).standard_normal(x.shape)
        spring = VisibleSpring.combine(spring, VisibleSpring(beta_sign * 1.25e-3 * (2.0 * LAM) ** 2, anchor))
    start = model.zeros_state(x.shape[0])
    start[0][...] = x
    e = EulerSolver(50000, tol=1e-11).relax(model, params, [s.copy() for s in start], spring)
    f = FastSolver(50000, tol=1e-11, omega=1.4).relax(model, params, [s.copy() for s in start], spring)
    assert e.residual < 1e-11 and f.residual < 1e-11
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(e.state, f.state)) < 1e-8
    assert np.max(np.abs(f.state[-1])) > 0.05  # z is active


@pytest.mark.parametrize("objective", ["flow", "dsm"])
def test_ep_measures_u_and_v_like_the_exact_gradient(objective):
    spec = skip_spec(objective=objective)
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    report = analogep.gradcheck(spec, params, batch=8)
    assert report["cosine"] > 0.999
    for name in ("U", "V", "b_z"):
        tight = report["float64_tight"]["per_tensor"][name]
        assert tight["cosine"] > 0.9999 and tight["rel_error"] < 0.02, (name, tight)


def test_the_circuit_has_the_skip_crossbars_and_counts_them():
    spec, plain = skip_spec(), load_spec(TINY)
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    chain = {k: v for k, v in params.items() if k not in ("U", "V", "b_z")}
    with_skip = analogep.compile_circuit(spec, params)[0]["free.cir"]
    without = analogep.compile_circuit(plain, chain)[0]["free.cir"]

    def resistors(deck):
        return sum(1 for line in deck.splitlines() if line.startswith("R"))

    extra = 2 * (64 + 16) * 4  # every weight one device (gmin 0), read forward and transposed
    assert resistors(with_skip) - resistors(without) == extra
    assert f"(64 + 16) * 4 = 320 weights, {extra} devices in both reads" in with_skip
    assert "64-16-16 + skip rank 4: free" in with_skip.splitlines()[0]
    assert "Xh3_3 h3_3 " in with_skip and "RUpT_" in with_skip or "RUmT_" in with_skip
    assert "skip" not in without  # nothing changes without a skip


@pytest.mark.spice
def test_the_spice_circuit_with_the_skip_solves_like_numpy():
    spec = skip_spec()
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    report, _, _ = analogep.check_circuit(spec, params, n=4)
    assert report.max_rel_error <= 1e-6 and report.velocity_rel_error <= 1e-6
    assert report.grad_cosine >= 1 - 1e-6


def test_a_run_with_the_skip_resumes_bit_for_bit(tmp_path):
    full = analogep.train(skip_spec(steps=6), tmp_path / "full")
    analogep.train(skip_spec(steps=3), tmp_path / "split")
    with pytest.warns(Warning):
        resumed = analogep.train(skip_spec(steps=6), tmp_path / "split", resume=True)
    assert list(resumed.params) == list(full.params) and "U" in full.params
    assert all(np.array_equal(full.params[k], resumed.params[k]) for k in full.params)
    assert load_spec(tmp_path / "split" / "config.yaml").model.skip_rank == 4
