"""The backend contract (analogep/backends/base.py): a backend implements `from_spec`,
`program`, `equilibrium` and `clamped`, and everything else callers ask of it (the phases
of a step, its devices, its readout, what it clipped, its device metrics) comes from the
base class; no caller asks a backend whether it has something."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep import registry
from analogep.backends import EquilibriumBackend, NumpyBackend, Nudge
from analogep.config import load_spec
from analogep.model import build_energy

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"

SOFTWARE_BACKEND = '''
"""A test backend: the ideal energy relaxed by the configured solver, and nothing but the
core contract (no devices, no readout, no phases of its own)."""

from analogep.backends.base import EquilibriumBackend
from analogep.backends.numpy_backend import phase_spring
from analogep.solvers.base import free_start
from analogep.solvers.factory import build_solver


class SoftwareBackend(EquilibriumBackend):
    def __init__(self, spec, model):
        self.spec, self.model, self.params = spec, model, None

    @classmethod
    def from_spec(cls, spec, model, **options):
        return cls(spec, model)

    def program(self, params):
        self.params = params
        return params

    def _relax(self, start, spring, max_steps, clamp_visible=False):
        solver = build_solver(self.spec.relax, max_steps)
        return solver.relax(self.model, self.params, start, spring, clamp_visible=clamp_visible)

    def equilibrium(self, x_t, nudge, start):
        start = free_start(self.model, x_t) if start is None else start
        steps = self.spec.relax.free_steps if nudge is None else self.spec.relax.nudge_steps
        return self._relax(start, phase_spring(self.spec.gradep, x_t, nudge), steps)

    def clamped(self, x, hidden):
        hidden = hidden if hidden is not None else self.model.zeros_state(x.shape[0])[1:]
        eq = self._relax([x.astype(self.model.dtype, copy=True)] + list(hidden), None, self.spec.relax.free_steps,
                         clamp_visible=True)
        return eq, self.model.state_grad(self.params, eq.state)[0]
'''


@pytest.fixture
def software(tmp_path, monkeypatch):
    (tmp_path / "software_backend.py").write_text(SOFTWARE_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.BACKENDS, "software", "software_backend:SoftwareBackend")  # the one line
    return "software"


def test_a_backend_of_the_core_contract_alone_trains_and_samples_as_the_numpy_backend(software, tmp_path):
    """Through the base class's defaults: one equilibrium per phase, nudged phases from the
    free one, exact readout, no devices, nothing clipped; the numpy backend on ideal devices
    is the same computation, so the runs agree to the bit."""
    spec = analogep.load_config(TINY).replace(train={"steps": 4, "batch": 16, "log_every": 1})
    ours = analogep.train(spec, tmp_path / "software", backend=software)
    numpy_run = analogep.train(spec, tmp_path / "numpy", backend="numpy")
    assert ours.step == 4 and len(ours.records) == 4
    assert [r["loss"] for r in ours.records] == [r["loss"] for r in numpy_run.records]
    assert all(np.isfinite(r["loss"]) for r in ours.records)
    for k in numpy_run.params:
        np.testing.assert_array_equal(ours.params[k], numpy_run.params[k])
    assert not {"clipped", "pulses", "pulses_total", "adc_clipped", "dac_clipped"} & set(ours.records[-1])
    x = analogep.sample(spec, ours.params, n=4, t1=0.1, dt=0.05, backend=software)
    np.testing.assert_array_equal(x, analogep.sample(spec, ours.params, n=4, t1=0.1, dt=0.05, backend="numpy"))


def test_the_defaults_of_a_backend_without_devices(software):
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    backend = registry.resolve("backend", software).from_spec(spec, model)
    params = model.init_params(np.random.default_rng(0))
    backend.program(params)
    assert backend.devices is None and backend.readout is None and backend.clipped is None
    assert backend.device_metrics() == {}
    backend.close()  # nothing held: the default does nothing
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(model.dtype)
    nudges = [Nudge(spec.gradep.beta, x + 0.1), Nudge(-spec.gradep.beta, x + 0.1)]
    free, plus, minus = backend.phases(x, nudges)
    # each nudged phase relaxes from the free equilibrium
    for got, nudge in ((plus, nudges[0]), (minus, nudges[1])):
        want = backend.equilibrium(x, nudge, free.state)
        for a, b in zip(got.state, want.state):
            np.testing.assert_array_equal(a, b)


def test_a_backend_must_implement_the_core_contract():
    class NoClampedCircuit(EquilibriumBackend):
        @classmethod
        def from_spec(cls, spec, model, **options):
            return cls()

        def program(self, params):
            return params

        def equilibrium(self, x_t, nudge, start):
            raise AssertionError("not called")

    with pytest.raises(TypeError, match="clamped"):
        NoClampedCircuit()


def test_the_numpy_backend_with_devices_reads_them_through_the_base_class():
    spec = load_spec(TINY)
    spec = spec.replace(devices={"preset": "rram", "wire_resistance": 0.0})
    model = build_energy(spec.model)
    backend = NumpyBackend.from_spec(spec, model)
    backend.program(model.init_params(np.random.default_rng(0)))
    assert backend.devices is not None and backend.readout is backend.devices.readout
    assert backend.clipped == backend.devices.last_clipped and backend.clipped is not backend.devices.last_clipped
    metrics = backend.device_metrics()
    assert metrics["pulses"] == backend.devices.last_pulses > 0
    # rram maps around its faults: the pairs it cannot write are counted too
    assert set(metrics) == {"pulses", "pulses_total", "adc_clipped", "dac_clipped", "both_stuck"}


# No probing ------------------------------------------------------------------------------------

PROBES = {"getattr", "hasattr"}


def _backend_names(function: ast.AST) -> set[str]:
    """Names a function binds to a backend: parameters annotated as one, names assigned
    from make_backend(...), a ...Backend(...) or ...Backend.from_spec(...) call."""
    names: set[str] = set()
    args = function.args
    for arg in args.posonlyargs + args.args + args.kwonlyargs:
        if arg.annotation is not None and "Backend" in ast.unparse(arg.annotation):
            names.add(arg.arg)
    for node in ast.walk(function):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            made = any(isinstance(call, ast.Call) and ("make_backend" in ast.unparse(call.func)
                                                       or "Backend" in ast.unparse(call.func))
                       for call in ast.walk(node.value))
            if made:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
    return names


def backend_probes(source: str, filename: str = "<source>") -> list[str]:
    """`getattr`/`hasattr` calls on a backend in `source`: on a name bound to one, on an
    expression that names a backend, or on `self` in a backend class."""
    tree = ast.parse(source, filename)
    found = []

    def visit(node: ast.AST, bound: set[str]) -> None:
        if isinstance(node, ast.ClassDef) and any("Backend" in ast.unparse(base) for base in node.bases):
            bound = bound | {"self", "cls"}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            bound = bound | _backend_names(node)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PROBES and node.args):
            target = node.args[0]
            text = ast.unparse(target)
            if (isinstance(target, ast.Name) and target.id in bound) or "backend" in text.lower():
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
        for child in ast.iter_child_nodes(node):
            visit(child, bound)

    visit(tree, set())
    return found


def test_the_probe_finder_finds_probes():
    """What the package held before the contract was declared: each of these is found."""
    source = '''
def run_phases(backend: EquilibriumBackend, x_t):
    together = getattr(backend, "phases", None)

def sample(spec, model):
    hardware = make_backend(spec, model, "numpy")
    devices = getattr(hardware, "devices", None)

def train(spec, model, backend=None):
    backend = backend or make_backend(spec, model)
    return hasattr(backend, "readout")

class Step:
    def run(self):
        return getattr(self.backend, "clipped", None)

class OtherBackend(EquilibriumBackend):
    def program(self, params):
        return getattr(self, "devices", None)

def fine(spec, exc):
    return getattr(spec, "train"), getattr(exc, "problem", None)
'''
    found = backend_probes(source)
    assert [line.split(":")[1] for line in found] == ["3", "7", "11", "15", "19"], found


def test_no_module_probes_a_backend():
    found = [probe for path in sorted((ROOT / "analogep").rglob("*.py"))
             for probe in backend_probes(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], "\n".join(found)
