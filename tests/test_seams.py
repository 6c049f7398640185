"""The extension seams: a new family, objective name or runner is one module plus one line
in analogep.registry; backends are programmed; the public API runs end to end."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep import registry
from analogep.backends import NumpyBackend
from analogep.spice.netlist import render
from analogep.config import ConfigError, load_spec
from analogep.errors import CircuitError
from analogep.ep.measurement import ep_gradient
from analogep.ep.phases import run_phases
from analogep.model import build_energy
from analogep.objectives import build_objective

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "examples" / "tiny.yaml"

TOY_FAMILY = '''
"""A test family: the hopfield energy with every weight read at half strength."""

import numpy as np

from analogep.model.families.hopfield import HopfieldEnergy


class HalfHopfield(HopfieldEnergy):
    def init_params(self, rng):
        return {k: (v * 0.5).astype(self.dtype) for k, v in super().init_params(rng).items()}
'''


def test_a_new_family_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    (tmp_path / "toy_family.py").write_text(TOY_FAMILY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.FAMILIES, "half", "toy_family:HalfHopfield")  # the one line
    config = tmp_path / "toy.yaml"
    config.write_text(TINY.read_text().replace("model:\n", "model:\n  family: half\n"))
    spec = analogep.load_config(config)
    assert type(build_energy(spec.model)).__name__ == "HalfHopfield"
    result = analogep.train(spec.replace(train={"steps": 3, "batch": 32}), tmp_path / "run")
    assert result.step == 3 and np.isfinite(result.records[-1]["loss"])
    x = analogep.sample(spec, result.params, n=4, t1=0.1, dt=0.05)
    assert x.shape == (4, 64) and np.all(np.isfinite(x))
    files, _ = analogep.compile_circuit(spec, result.params)
    assert "free.cir" in files
    assert analogep.gradcheck(spec, result.params, batch=4)["cosine"] > 0.999


# A family of its own parts, as a physical family is (method.md section 8): its own units
# (tanh amplifiers) and its own interaction, a conductance between every pair of units of two
# layers with the co-content of a resistor (Kendall et al. 2020), beside the library's
# couplings and biases. No circuit element realises the conductances yet, so it runs in
# numpy only.
TOY_PHYSICAL_FAMILY = '''
"""A test family: tanh units, the hopfield chain, and a resistive skip from x to the top
hidden layer, E_G = 1/2 sum_ji G_ji (a_j - x_i)^2, whose EP term is 1/2 (dV)^2."""

import numpy as np

from analogep.model import Bias, Coupling, Interaction, Layer, LinearUnits, Network


class TanhUnits(Layer):
    """E_l = 1/2 |s|^2 - tanh(s) . c, one safeguarded Newton step per update."""

    def __init__(self, size):
        self.size = size

    def activity(self, s, order):
        a = np.tanh(s)
        d1 = 1.0 - a * a
        return (a, d1, -2.0 * a * d1)[: order + 1]

    def energy(self, s):
        return 0.5 * np.sum(s * s, axis=1)

    def block_slope(self, s, drive, derivs, spring):
        return s - derivs[1] * drive

    def block_update(self, s, drive, derivs, spring, omega):
        slope = self.block_slope(s, drive, derivs, spring)
        s -= omega * np.clip(slope / np.maximum(1.0 - derivs[2] * drive, 0.3), -2.0, 2.0)
        return slope

    def hessian_vector(self, s, v, drive, derivs, dv_drive):
        return v - derivs[2] * v * drive - derivs[1] * dv_drive


class Conductances(Interaction):
    """A resistor G_ji between unit i of `pre` and unit j of `post`."""

    def __init__(self, name, pre, post):
        self.name, self.pre, self.post, self.layers = name, pre, post, (pre, post)

    def shape(self, sizes):
        return (sizes[self.post], sizes[self.pre])

    def init(self, rng, sizes, dtype):
        return (0.01 * rng.random(self.shape(sizes))).astype(dtype)

    def _drops(self, acts):
        return acts[self.post][:, :, None] - acts[self.pre][:, None, :]

    def energy(self, params, acts):
        return 0.5 * np.einsum("ji,nji->n", params[self.name], self._drops(acts) ** 2)

    def drive(self, layer, params, acts, transposed=None):
        g = params[self.name]
        if layer == self.post:
            return acts[self.pre] @ g.T - acts[self.post] * g.sum(axis=1)
        return acts[self.post] @ g - acts[self.pre] * g.sum(axis=0)

    def drive_jvp(self, layer, params, dacts):
        return self.drive(layer, params, dacts)  # linear in the activities

    def param_term(self, acts, weights, batch):
        squares = 0.5 * self._drops(acts) ** 2
        return (squares if weights is None else squares * weights[:, :, None]).sum(axis=0) / batch

    def param_term_jvp(self, acts, dacts, batch):
        return (self._drops(acts) * self._drops(dacts)).sum(axis=0) / batch


class ResistiveSkip(Network):
    def __init__(self, spec):
        n = len(spec.sizes) - 1
        layers = [LinearUnits(spec.sizes[0])] + [TanhUnits(k) for k in spec.sizes[1:]]
        table = [Bias("b_x", 0)]
        for l in range(n):
            table += [Coupling(f"W{l}", l, l + 1, spec.init_gain), Bias(f"b{l}", l + 1)]
        super().__init__(layers, table + [Conductances("G", 0, n)], spec.dtype)
'''


def test_a_family_of_its_own_layers_and_interactions_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    (tmp_path / "toy_physical.py").write_text(TOY_PHYSICAL_FAMILY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.FAMILIES, "resistive", "toy_physical:ResistiveSkip")  # the one line
    config = tmp_path / "toy.yaml"
    config.write_text(TINY.read_text().replace("model:\n", "model:\n  family: resistive\n"))
    spec = analogep.load_config(config)
    model = build_energy(spec.model)
    assert model.param_names == ("b_x", "W0", "b0", "W1", "b1", "G") and model.param_shapes()["G"] == (16, 64)
    # the parts compose: the field is the energy's gradient, at a random float64 state
    model64 = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    rng = np.random.default_rng(0)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in model64.init_params(rng).items()}
    state = [rng.standard_normal((3, n)) for n in model64.sizes]
    grads, h = model64.state_grad(params, state), 1e-6
    for layer, i in ((0, 5), (1, 3), (2, 7)):
        up, down = [s.copy() for s in state], [s.copy() for s in state]
        up[layer][:, i] += h
        down[layer][:, i] -= h
        fd = (model64.energy(params, up) - model64.energy(params, down)) / (2 * h)
        np.testing.assert_allclose(grads[layer][:, i], fd, rtol=1e-6, atol=1e-8)
    # and GradEP runs on it end to end, its EP gradient the exact one (second derivatives)
    result = analogep.train(spec.replace(train={"steps": 3, "batch": 32}), tmp_path / "run")
    assert result.step == 3 and np.isfinite(result.records[-1]["loss"])
    x = analogep.sample(spec, result.params, n=4, t1=0.1, dt=0.05)
    assert x.shape == (4, 64) and np.all(np.isfinite(x))
    assert analogep.gradcheck(spec, result.params, batch=4)["cosine"] > 0.999
    with pytest.raises(CircuitError, match=r"realises G \(Conductances\), layer 1 \(TanhUnits\)"):
        analogep.compile_circuit(spec, result.params)


def test_registered_names_are_what_the_config_accepts(tmp_path):
    bad = tmp_path / "bad.yaml"
    for section, key, value in (("model", "family", "ising"), ("relax", "solver", "newton"), ("train", "objective", "gan"),
                                ("circuit", "runner", "xyce")):
        bad.write_text(f"{section}:\n  {key}: {value}\n")
        with pytest.raises(ConfigError) as err:
            load_spec(bad)
        assert f"{section}.{key}" in str(err.value) and "must be one of" in str(err.value) and "\n" not in str(err.value)
    assert load_spec(None).train.objective in registry.names("objective")


def test_replace_merges_nested_sections():
    spec = load_spec(TINY)
    changed = spec.replace(train={"optimizer": {"lr": 0.5}})
    assert changed.train.optimizer.lr == 0.5
    assert changed.train.optimizer.betas == spec.train.optimizer.betas
    assert changed.train.steps == spec.train.steps


def test_per_point_weights_scale_each_points_share_of_the_ep_gradient():
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    data = np.asarray(__import__("analogep.data", fromlist=["load_dataset"]).load_dataset(dtype=model.dtype))
    batch = build_objective(spec).batch(data, 8, np.random.default_rng(1))
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    phases = run_phases(backend, batch.x_t, batch.target, spec.gradep)
    plain = ep_gradient(model, params, phases)
    ones = ep_gradient(model, params, phases, weights=np.ones(8))
    mask = np.arange(8) < 3
    masked = ep_gradient(model, params, phases, weights=mask.astype(float))
    subset = ep_gradient(model, params, phases, keep=mask)
    for k in plain:
        np.testing.assert_allclose(ones[k], plain[k], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(masked[k], subset[k] * 3 / 8, rtol=1e-4, atol=1e-6)


def test_the_numpy_backend_solves_what_it_was_programmed_with():
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    x = np.random.default_rng(2).standard_normal((2, 64)).astype(model.dtype)
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    before = backend.equilibrium(x, None, None).state[1]
    backend.program({k: v * 2 for k, v in params.items()})
    after = backend.equilibrium(x, None, None).state[1]
    assert not np.allclose(before, after)


@pytest.mark.spice
def test_backend_decks_are_self_contained_and_run_anywhere(tmp_path):
    """No .include of this machine's library: the deck runs from a folder that holds nothing else."""
    from analogep.spice.compiler import build_netlist

    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed")
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    x = np.zeros((1, 64))
    net = build_netlist(spec, model, params, "free", {"xt": x}, sweep=False)
    net.control = ["op", "print v(h1_0)", "quit"]
    deck = render(net, include=None)
    assert ".include" not in deck and ".subckt visible" in deck
    (tmp_path / "free.cir").write_text(deck)
    proc = subprocess.run(["ngspice", "-b", "free.cir"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "h1_0" in proc.stdout.lower()


def test_auto_runner_is_a_registered_one_and_unknown_runners_are_refused():
    from analogep.spice.run.ngspice import NgspiceError
    from analogep.spice.run.runners import choose_runner, runner_choices

    assert runner_choices() == ("auto",) + registry.names("runner")
    if shutil.which("ngspice") is not None:
        assert choose_runner("auto") in registry.names("runner")
    with pytest.raises(NgspiceError):
        choose_runner("xyce")


def test_importing_analogep_does_not_load_the_api():
    code = "import sys, analogep; print('analogep.api' in sys.modules, 'analogep.training.loop' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_notebook_example_of_the_readme(tmp_path):
    spec = analogep.load_config(TINY).replace(train={"steps": 2, "batch": 32})
    result = analogep.train(spec, tmp_path / "run")
    x = analogep.sample(spec, result.params, n=20)
    report = analogep.evaluate(x)
    assert 0 <= report.confidence <= 1 and "Fr" in report.format()
    spec2, params, origin = analogep.load_model(tmp_path / "run")
    assert spec2 == spec and "step 2" in origin
    for k in params:
        np.testing.assert_array_equal(params[k], result.params[k])
    compared = analogep.compare([tmp_path / "run", tmp_path / "run"])
    assert compared["against_first"][0]["max_abs_loss_difference"] == 0.0


SCRIPTS = sorted((REPO / "benchmarks").glob("*.py")) + sorted((REPO / "studies").glob("*.py"))


def test_every_script_is_named_by_a_results_page_and_every_named_script_exists():
    """A study or benchmark regenerates numbers of docs/results/; the docs name only scripts that exist."""
    results = "\n".join(p.read_text() for p in (REPO / "docs" / "results").glob("*.md"))
    unnamed = [f"{p.parent.name}/{p.name}" for p in SCRIPTS if f"{p.parent.name}/{p.name}" not in results]
    assert not unnamed, f"scripts no results page names: {unnamed}"
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "analogep").rglob("*.py")),
            *sorted((REPO / "examples").glob("*.yaml"))]
    named = {m for p in docs for m in re.findall(r"\b(?:benchmarks|studies)/\w+\.py", p.read_text())}
    missing = sorted(m for m in named if not (REPO / m).is_file())
    assert not missing, f"scripts the docs name but the repository lacks: {missing}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_benchmark_and_study_scripts_load_against_the_current_api(script):
    """Benchmarks and studies are not tests, but they must still import what exists (--help loads them)."""
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]


@pytest.mark.spice
def test_spice_check_counts_the_solves_of_the_phases_it_ran():
    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed")
    spec = load_spec(TINY).replace(gradep={"phases": 2})
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    report, numpy_v, spice_v = analogep.check_circuit(spec, params, n=4, workers=1)
    assert report.solves_per_s * report.spice_seconds == pytest.approx(2 * 4)
    assert numpy_v.size == spice_v.size and report.passed


@pytest.mark.spice
def test_spice_training_leaves_no_ngspice_worker_behind(tmp_path):
    import multiprocessing

    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed")
    spec = load_spec(TINY).replace(train={"steps": 1, "batch": 8})
    result = analogep.train(spec, tmp_path / "run", backend="spice")
    assert result.step == 1
    assert multiprocessing.active_children() == []
