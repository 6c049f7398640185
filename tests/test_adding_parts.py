"""The rows of docs/architecture.md's "to add X, touch Y" table that the other seam tests do
not cover, each checked by adding a throwaway part the way the table says and running it:

- a relaxation solver: one module, one line in analogep.registry.SOLVERS;
- an ngspice runner: one module (an engine), one line in analogep.registry.RUNNERS, and
  `analogep check` solves on it with real ngspice;
- a device effect: one key of DevicesSpec and one DeviceEffect in devices/crossbar.py's
  EFFECTS, and both backends (and a checkpoint) carry it;
- a config section: one frozen dataclass and one field of Spec, checked and dumped by the
  generic schema with no other code.

The other rows: an energy family (tests/test_seams.py), an objective
(tests/test_objective_settings.py), a backend (tests/test_backend_contract.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

import analogep
import analogep.config.spec as spec_module
from analogep import registry
from analogep.backends import NumpyBackend
from analogep.config import ConfigError, Spec, load_spec, to_dict
from analogep.config.schema import build, meta
from analogep.devices import crossbar
from analogep.model import build_energy
from analogep.solvers.base import VisibleSpring, free_start, total_grad
from analogep.solvers.factory import build_solver
from analogep.training.checkpoint import load_checkpoint

from clirun import invoke

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def needs_ngspice():
    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed")


# --- a relaxation solver -----------------------------------------------------------------------------

TOY_SOLVER = '''
"""A test solver: gradient descent with heavy-ball momentum (Polyak 1964) on the field plus
the springs, its step and tolerance read from the relax section."""

from dataclasses import dataclass

import numpy as np

from analogep.model.tensors import max_abs
from analogep.solvers.base import Equilibrium, sample_max_abs, total_grad


@dataclass(frozen=True)
class HeavyBallSolver:
    max_steps: int
    tol: float
    step: float
    momentum: float = 0.5

    @classmethod
    def from_spec(cls, relax, steps):
        return cls(max_steps=steps, tol=relax.tol, step=relax.step)

    def relax(self, field, params, start, spring, *, clamp_visible=False):
        state = [s.copy() for s in start]
        moves = [np.zeros_like(s) for s in state]
        grads, steps = total_grad(field, params, state, spring, clamp_visible), 0
        while steps < self.max_steps and not (self.tol > 0 and max_abs(grads) < self.tol):
            for s, m, g in zip(state, moves, grads):
                m *= self.momentum
                m -= self.step * g
                s += m
            steps += 1
            grads = total_grad(field, params, state, spring, clamp_visible)
        return Equilibrium(state, sample_max_abs(grads), steps)
'''


def test_a_new_solver_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    (tmp_path / "toy_solver.py").write_text(TOY_SOLVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.SOLVERS, "heavyball", "toy_solver:HeavyBallSolver")  # the one line
    config = tmp_path / "toy.yaml"
    config.write_text(TINY.read_text().replace("  solver: fast\n", "  solver: heavyball\n  step: 0.12\n"))
    spec = analogep.load_config(config)
    solver = build_solver(spec.relax, spec.relax.free_steps)
    assert type(solver).__name__ == "HeavyBallSolver" and solver.step == 0.12 and solver.tol == spec.relax.tol
    # it finds the equilibrium the default solver finds
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    x_t = np.random.default_rng(1).uniform(-1, 1, (4, 64)).astype(model.dtype)
    spring = VisibleSpring(spec.gradep.lam, x_t)
    ours = solver.relax(model, params, free_start(model, x_t), spring)
    fast = build_solver(spec.relax.__class__(solver="fast", tol=1e-7), 1000).relax(model, params, free_start(model, x_t), spring)
    assert ours.residual < spec.relax.tol
    assert np.max(np.abs(total_grad(model, params, ours.state, spring)[1])) < spec.relax.tol
    for a, b in zip(ours.state, fast.state):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # and training relaxes with it
    result = analogep.train(spec.replace(train={"steps": 2, "batch": 16}), tmp_path / "run")
    assert result.step == 2 and all(np.isfinite(r["loss"]) for r in result.records)


# --- an ngspice runner -------------------------------------------------------------------------------

TOY_RUNNER = '''
"""A test runner: an engine that runs each deck with `ngspice -b` and notes, in a log beside
this module, how many rows (training points of a sweep) each run answered."""

from pathlib import Path

from analogep.spice.run.ngspice import SubprocessNgspice

LOG = Path(__file__).with_suffix(".log")


class LoggedNgspice:
    enforces_timeout = True  # ngspice -b stops a run at its timeout itself

    @staticmethod
    def unavailable():
        return SubprocessNgspice.unavailable()

    def __init__(self):
        self.engine = SubprocessNgspice()

    def run(self, deck, timeout):
        result = self.engine.run(deck, timeout)
        with LOG.open("a") as log:
            log.write(f"{result.rows}\\n")
        return result
'''


@pytest.mark.spice
def test_a_new_runner_is_one_module_and_one_registry_line_and_check_solves_on_it(tmp_path, monkeypatch):
    needs_ngspice()
    (tmp_path / "toy_runner.py").write_text(TOY_RUNNER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.RUNNERS, "logged", "toy_runner:LoggedNgspice")  # the one line
    config = tmp_path / "toy.yaml"
    config.write_text(TINY.read_text() + "\ncircuit:\n  runner: logged\n")
    result = invoke("check", config, "--n", 3, "--workers", 1, "--json", "--plot", tmp_path / "check.png")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runner"] == "logged" and report["passed"] and report["max_rel_error"] < 1e-6
    rows = [int(r) for r in (tmp_path / "toy_runner.log").read_text().split()]
    assert sum(rows) == 3 * load_spec(config).gradep.phases  # every point of every phase went through the new engine
    # a name the registry does not hold is refused when the config is read
    config.write_text(TINY.read_text() + "\ncircuit:\n  runner: logged2\n")
    refused = invoke("check", config, "--n", 3)
    assert refused.exit_code == 2 and "circuit.runner" in refused.stderr and "'logged'" in refused.stderr


# --- a device effect ---------------------------------------------------------------------------------

# In the package this is one field added to DevicesSpec (config/hardware.py) and one class added
# to devices/crossbar.py with its entry in EFFECTS; here the field comes in a subclass swapped in
# for DevicesSpec, and the class in the EFFECTS tuple.


@dataclass(frozen=True)
class RetentionDevicesSpec(crossbar.DevicesSpec):
    retention: float = field(  # the key
        default=0.0, metadata=meta("largest share of a device's programmed conductance lost, per device (frozen)", ge=0, le=1)
    )


class Retention(crossbar.DeviceEffect):
    """Retention loss: each device keeps a frozen share 1 - r of its conductance above gmin,
    r ~ retention U(0, 1)."""

    name = "retention"

    def draw(self, d, rng, shape):
        return None if d.retention == 0 else d.retention * rng.random(shape)

    def apply(self, g, drawn, devices):
        return devices.gmin + (1.0 - drawn) * (g - devices.gmin)


@pytest.fixture
def retention(monkeypatch):
    monkeypatch.setattr(spec_module, "DevicesSpec", RetentionDevicesSpec)  # the key of DevicesSpec
    monkeypatch.setattr(crossbar, "EFFECTS", crossbar.EFFECTS + (Retention(),))  # the effect's entry


def test_a_new_device_effect_is_a_key_and_an_effect_and_both_backends_carry_it(retention, tmp_path):
    config = tmp_path / "retention.yaml"
    config.write_text(TINY.read_text() + "\ndevices:\n  preset: ideal\n  retention: 0.5\n")
    spec = load_spec(config)
    assert spec.devices.retention == 0.5 and not spec.devices.ideal
    assert load_spec(TINY).replace(devices={"preset": "ideal", "retention": 0.0}).devices.ideal

    # the numpy backend realises it: each weight keeps between half and all of itself
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(0))
    backend = NumpyBackend.from_spec(spec, model)
    realised = backend.program(params)
    for name in ("W0", "W1"):
        kept = realised[name].astype(np.float64) / params[name]
        assert np.all((kept >= 0.5 - 1e-6) & (kept <= 1 + 1e-6)) and np.std(kept) > 0.05
    assert backend.devices.frozen["retention/W0/0/plus"].shape == (16, 64)

    # training on the devices keeps the draws in the checkpoint, with the other device state
    result = analogep.train(spec.replace(train={"steps": 2, "batch": 16}), tmp_path / "run")
    assert result.step == 2 and np.isfinite(result.records[-1]["loss"])
    arrays, _ = load_checkpoint(tmp_path / "run").devices
    np.testing.assert_array_equal(arrays["frozen/retention/W1/0/minus"], backend.devices.frozen["retention/W1/0/minus"])

    # a value out of range is one line naming the key, exit code 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices:\n  retention: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: devices\.retention: 2\.0 is not allowed; must be <= 1$"):
        load_spec(bad)
    refused = invoke("train", bad, "--out", tmp_path / "refused")
    assert refused.exit_code == 2 and len(refused.stderr.splitlines()) == 1, refused.output
    assert refused.stderr.rstrip().endswith("devices.retention: 2.0 is not allowed; must be <= 1")
    assert not (tmp_path / "refused").exists()


@pytest.mark.spice
def test_the_spice_backend_solves_the_circuit_of_a_new_device_effect(retention, tmp_path):
    """`check` programs the same devices into both backends: ngspice agrees with numpy on the
    circuit with the effect, whose equilibria differ from the ideal circuit's."""
    needs_ngspice()
    spec = load_spec(TINY).replace(devices={"preset": "ideal", "retention": 0.5})
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    report, numpy_v, spice_v = analogep.check_circuit(spec, params, n=2, workers=1, runner="subprocess")
    assert report.passed and report.devices == "ideal", report
    _, ideal_v, _ = analogep.check_circuit(load_spec(TINY), params, n=2, workers=1, runner="subprocess")
    assert np.max(np.abs(numpy_v - ideal_v)) > 1e-3


# --- a config section ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    """A test section."""

    rate: float = field(default=0.5, metadata=meta("a share", gt=0, le=1))
    mode: str = field(default="off", metadata=meta("a name", pattern=r"off|on", pattern_help="must be 'off' or 'on'"))


@dataclass(frozen=True)
class ProbedSpec(Spec):
    probe: ProbeSpec = field(default_factory=ProbeSpec, metadata=meta("a test section"))  # the one field of Spec


def test_a_new_config_section_is_a_dataclass_and_a_field_of_spec():
    data = yaml.safe_load(TINY.read_text() + "\nprobe:\n  rate: 0.25\n")
    spec = build(ProbedSpec, data, "")
    assert spec.probe == ProbeSpec(rate=0.25) and spec.model.sizes == (64, 16, 16)
    assert build(ProbedSpec, yaml.safe_load(yaml.safe_dump(to_dict(spec))), "") == spec  # dumped and read back
    for section, message in (
        ({"rate": 2}, "probe.rate: 2.0 is not allowed; must be <= 1"),
        ({"mode": "maybe"}, "probe.mode: 'maybe' is not allowed; must be 'off' or 'on'"),
        ({"rates": 0.1}, "probe.rates: unknown key; allowed keys: rate, mode"),
    ):
        with pytest.raises(ConfigError) as err:
            build(ProbedSpec, {**data, "probe": section}, "")
        assert str(err.value) == message
