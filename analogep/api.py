"""The Python API: what the CLI does, as functions that return objects and print nothing.

    import analogep
    spec = analogep.load_config("examples/tiny.yaml")
    result = analogep.train(spec, "runs/tiny")
    x = analogep.sample(spec, result.params, n=100)
    report = analogep.evaluate(x)                      # .confidence, .frechet, .format()
    grads = analogep.gradcheck(spec, result.params)    # EP vs the exact gradient
    files, clipped = analogep.compile_circuit(spec, result.params)
    check, _, _ = analogep.check_circuit(spec, result.params, n=8)   # needs ngspice

Errors are AnalogepError subclasses whose message is one line (ConfigError for a bad
config, CheckpointError for a bad run folder, CircuitError for a circuit).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from analogep.backends.spring import Nudge
from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.factory import make_backend
from analogep.spice.decks import DeckPoint, compile_decks
from analogep.devices.crossbar import Devices
from analogep.devices.programmed import Programmed, program
from analogep.config.load import load_spec
from analogep.config.sections import RelaxSpec
from analogep.config.spec import Spec
from analogep.data import DEFAULT_NOISE, MODES, load_dataset, mode_radius, reference_split
from analogep.ep.phases import nudge_anchor
from analogep.evaluation import gradcheck as gc
from analogep.evaluation.compare import compare_runs, load_run
from analogep.evaluation.crosscheck import NO_ENERGY_RELAX, CheckReport, crosscheck
from analogep.accounting.report import EnergyReport, account
from analogep.evaluation.quality import QualityReport, evaluate_samples
from analogep.evaluation.twosample import DataQuality, evaluate_data
from analogep.evaluation.robustness import RobustnessReport
from analogep.evaluation.robustness import robustness as run_robustness
from analogep.model.energy import Params
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective, first_level_code
from analogep.runtime import blas_threads
from analogep.training.checkpoint import ensure_finite, load_checkpoint
from analogep.training.loop import TrainResult
from analogep.training.loop import train as _train

# The reviewed decks carry the numpy equilibrium as .nodeset: relaxed to print precision.
DECK_RELAX = RelaxSpec(solver="fast", free_steps=5000, nudge_steps=5000, tol=1e-12)


def load_config(path: str | Path | None = None) -> Spec:
    """A model.yaml, validated (None: the packaged paper config)."""
    return load_spec(path)


def load_model(source: str | Path | None = None) -> tuple[Spec, Params, str]:
    """(spec, params, origin) from a RUN_DIR or checkpoint (a .npz archive), or from a
    CONFIG (the initial weights of its seed; None: the packaged paper config)."""
    p = None if source is None else Path(source)
    if p is not None and (p.is_dir() or p.suffix == ".npz" or (p.is_file() and zipfile.is_zipfile(p))):
        ckpt = load_checkpoint(source)  # checked whole (training/checkpoint.py)
        return ckpt.spec, ckpt.params, f"{source} (step {ckpt.step})"
    spec = load_spec(source)
    params = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
    return spec, params, f"{source or 'default config'} (initial weights, seed {spec.model.seed})"


def train(
    spec: Spec,
    out_dir: str | Path,
    *,
    resume: bool | str = False,
    backend: str | None = None,
    on_step: Callable[[int, dict], None] | None = None,
    init_params: Params | None = None,
) -> TrainResult:
    """Train spec's model with GradEP into `out_dir` (config.yaml, metrics.jsonl,
    checkpoint.npz), under spec.train.threads BLAS threads. `resume`: True continues the
    run there, False starts one (refused when the folder holds a run), "auto" continues
    the run there if there is one, else starts (a script that runs again picks up where
    it stopped). `backend` sets train.backend (None: the spec's). `on_step(step, record)`
    sees every step's metrics. `init_params`: a fresh run starts from these weights (a
    deployed model fine-tuned in situ)."""
    with blas_threads(spec.train.threads):
        return _train(spec, out_dir, resume=resume, backend_name=backend, on_step=on_step, init_params=init_params)


def sample(
    spec: Spec,
    params: Params,
    *,
    n: int | None = None,
    t1: float | None = None,
    dt: float | None = None,
    mode: str | None = None,
    seed: int | None = None,
    dsm: dict | None = None,
    backend: str = "numpy",
    spice_runner: str | None = None,
    threads: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
    out: np.ndarray | None = None,
    device_state: tuple[dict, dict] | None = None,
) -> np.ndarray:
    """Samples (n, n_visible) by the objective's sampler on the named backend; unset
    options take spec.generate's values, and the settings are checked as model.yaml's
    generate section is (config/rules.py, integration_problem). `dsm`: changes to the dsm
    section for a score-matching model (sampler, steps_per_level, ode_steps, ...), checked
    as model.yaml's are. `threads`: BLAS threads (default train.threads). `out`: an
    (n, n_visible) array to write the samples into (a numpy.lib.format.open_memmap for
    more samples than memory holds). With non-ideal spec.devices, `params` are programmed
    onto them: onto fresh devices (a deployment), or with `device_state` (an in-situ run's
    checkpoint) onto the devices it trained."""
    changes = dict(n=n, t1=t1, dt=dt, mode=mode, seed=seed)
    spec = spec.replace(generate={k: v for k, v in changes.items() if v is not None}, **({"dsm": dsm} if dsm else {}))
    g = spec.generate
    ensure_finite(params, "params")
    model = build_energy(spec.model)
    options = {"runner": spice_runner} if backend == "spice" else {}
    with blas_threads(spec.train.threads if threads is None else threads):
        hardware = make_backend(spec, model, backend, **options)
        try:
            if hardware.devices is not None and device_state is not None:
                hardware.devices.load_state_dict(*device_state, where="the run's device state")
            hardware.program(params)
            return build_objective(spec).sample(model, hardware, g, on_step, out)
        finally:
            hardware.close()


def evaluate(samples: np.ndarray, spec: Spec | None = None) -> QualityReport | DataQuality:
    """Sample quality: against the real digits (confidence, class shares, Frechet distance,
    nearest-training-image distance) when `spec` is None or trains on digits; else, with no
    classifier, against the held-out part of spec's data (MMD, sliced Wasserstein,
    Frechet, nearest-train distance, share out of range, and mode coverage of the 8
    Gaussians and the checkerboard), each beside the held-out data's own figure."""
    if spec is None or spec.train.dataset == "digits":
        return evaluate_samples(samples)
    name, source = spec.train.dataset, spec.data
    train, held = reference_split(name, source)
    modes, radius = None, 0.0
    if name in MODES:
        modes = source.scale * MODES[name]()
        radius = source.scale * mode_radius(name, DEFAULT_NOISE[name] if source.noise is None else source.noise)
    return evaluate_data(samples, train, held, name, modes, radius)


def gradcheck(spec: Spec, params: Params, *, batch: int = 32, seed: int = 0, beta_sweep: np.ndarray | None = None) -> dict:
    """The EP gradient as training measures it, and in float64 with tight relaxation,
    against the exact gradient (implicit differentiation); with `beta_sweep` (betas), the
    relative error of two- and three-phase EP per beta."""
    ensure_finite(params, "params")
    data = load_dataset(spec.train.dataset, dtype=np.float64, source=spec.data)
    points = build_objective(spec).batch(data, batch, np.random.default_rng(seed))
    model64, params64 = gc.as_float64(spec, params)
    exact = gc.exact_gradient(model64, params64, points, spec.gradep)
    as_trained = gc.compare(gc.ep_estimate(build_energy(spec.model), params, points, spec.gradep, spec.relax), exact)
    tight = gc.compare(gc.ep_estimate(model64, params64, points, spec.gradep, gc.REFERENCE_RELAX), exact)
    result = {
        "batch": batch,
        "beta": spec.gradep.beta,
        "phases": spec.gradep.phases,
        "cosine": as_trained.cosine,
        "rel_error": as_trained.rel_error,
        "per_tensor": as_trained.per_tensor,
        "float64_tight": tight.to_dict(),
    }
    if beta_sweep is not None:
        errors = gc.beta_sweep(model64, params64, points, spec.gradep, beta_sweep)
        result["beta_sweep"] = {"betas": [float(b) for b in beta_sweep], **errors}
    return result


def programmed_circuit(spec: Spec, params: Params, device_state: tuple[dict, dict] | None = None) -> Programmed:
    """The circuit `params` program: ideal, or on the devices of spec.devices (fresh ones,
    their seeded draws; with `device_state`, an in-situ run's), what `analogep compile`
    draws (devices/programmed.py)."""
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    devices = None if spec.devices.ideal else Devices(spec, model)
    if devices is not None and device_state is not None:
        devices.load_state_dict(*device_state, where="the run's device state")
    return program(spec, model, params, devices)


def study(kind: str, spec: Spec, params: Params, **options) -> dict:
    """One measurement of the bias study (evaluation/study.py): "unbiasedness" (error vs
    beta, couplings and biases apart), "budget" (cosine vs relaxation iterations) or
    "bias-variance" (error vs beta with noisy read-outs); `options` go to that function."""
    from analogep.evaluation import study as st

    ensure_finite(params, "params")
    run = {"unbiasedness": st.unbiasedness, "budget": st.relaxation_budget, "bias-variance": st.bias_variance}
    if kind not in run:
        raise ValueError(f"unknown study {kind!r}; allowed: {', '.join(run)}")
    return {"objective": build_objective(spec).label, **run[kind](spec, params, **options)}


def deck_points(spec: Spec, params: Params, drawn: Programmed | None = None) -> dict[str, DeckPoint]:
    """The points the reviewed decks solve, with their numpy equilibria: the first training
    point of train.seed for the GradEP phases, the first noise sample of generate.seed for
    the inference circuit (relaxed by plain block descent, omega 1). The equilibria are
    of the programmed circuit `drawn` (default `programmed_circuit`): on devices, numpy's
    model of the realised circuit, line resistance included (devices/wires.py)."""
    drawn = programmed_circuit(spec, params) if drawn is None else drawn
    model, realised = drawn.solver, drawn.params
    data = load_dataset(spec.train.dataset, dtype=np.float64, source=spec.data)
    objective = build_objective(spec)
    batch = objective.batch(data, 1, np.random.default_rng(spec.train.seed))
    code = deck_level(spec)
    if code is not None:  # a level-dependent energy (ideal devices only): the training point's level
        model.condition(code)
    # No energy (devices: mismatched copies, drivers, wires): the circuit's own dynamics (Euler
    # steps on its KCL) reach its stable fixed points, where block descent can cycle.
    relax_spec = DECK_RELAX if drawn.has_energy else dataclasses.replace(NO_ENERGY_RELAX, tol=DECK_RELAX.tol)
    numpy = NumpyBackend(model, spec.gradep, relax_spec)
    numpy.program(realised)
    free = numpy.equilibrium(batch.x_t, None, None)
    anchor = nudge_anchor(batch.x_t, batch.target, spec.gradep)
    plus = numpy.equilibrium(batch.x_t, Nudge(spec.gradep.beta, anchor), free.state)
    minus = numpy.equilibrium(batch.x_t, Nudge(-spec.gradep.beta, anchor), free.state)
    inference = NumpyBackend(model, spec.gradep, dataclasses.replace(DECK_RELAX, omega=1.0) if drawn.has_energy else relax_spec)
    inference.program(realised)
    x_gen = np.random.default_rng(spec.generate.seed).standard_normal((1, model.sizes[0]))
    gen, _ = inference.clamped(x_gen, None)
    when = f", t = {float(batch.t[0, 0]):.4f}" if hasattr(batch, "t") else ""
    if hasattr(batch, "sigma"):  # score matching: the level and the point's weight in the loss
        when = f", sigma = {float(batch.sigma[0, 0]):.4f}, weight {float(batch.weight[0]):.4g}"
    point = f"x_t and target u of {objective.label} draw 0 (seed train.seed = {spec.train.seed}{when})"
    return {
        "free": DeckPoint({"xt": batch.x_t}, free.state, point),
        "nudge_plus": DeckPoint({"xt": batch.x_t, "a": anchor}, plus.state, point),
        "nudge_minus": DeckPoint({"xt": batch.x_t, "a": anchor}, minus.state, point),
        "generate": DeckPoint({"xc": x_gen}, gen.state, f"x ~ N(0, I), first noise sample of generate.seed = {spec.generate.seed}"),
    }


def compile_circuit(
    spec: Spec, params: Params, origin: str = "given weights", *, transient: bool = False,
    device_state: tuple[dict, dict] | None = None,
) -> tuple[dict[str, str], dict[str, int]]:
    """ngspice decks of the four circuits (free, +beta, -beta, generate) and the library
    copy, as file name -> text, with the clip counts per weight matrix. With `transient`
    (needs circuit.capacitance > 0), each circuit's transient deck too (<phase>_tran.cir:
    relaxation in time from the phase's start). With non-ideal spec.devices, the decks are
    of the realised circuit: on fresh devices, or with `device_state` (an in-situ run's
    checkpoint) on the devices it trained. Writes nothing."""
    ensure_finite(params, origin)
    drawn = programmed_circuit(spec, params, device_state)
    return compile_decks(spec, params, origin, deck_points(spec, params, drawn), transient=transient, drawn=drawn,
                         level_code=deck_level(spec))


def deck_level(spec: Spec) -> np.ndarray | None:
    """The level code of the decks' training point (draw 0 of train.seed), which every deck
    of a level-dependent energy is drawn at; None for an energy without one."""
    return first_level_code(spec)


def check_circuit(
    spec: Spec, params: Params, *, n: int = 16, seed: int = 0, runner: str | None = None, workers: int = 0
) -> tuple[CheckReport, np.ndarray, np.ndarray]:
    """The same n training points solved by ngspice and by numpy: (report, numpy node
    voltages, ngspice node voltages)."""
    ensure_finite(params, "params")
    return crosscheck(spec, params, n=n, seed=seed, runner=runner, workers=workers)


def energy(
    spec: Spec, params: Params, origin: str = "given weights", *, points: int = 32, samples: int = 1000,
    sample_points: int = 8, measure_cpu: bool = True, cpu_euler: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EnergyReport:
    """Time and energy per training step and per generated sample, on the circuit (its
    settling simulated on `points` training points) and digitally (GPU estimates from
    FLOPs and bytes; this CPU measured unless `measure_cpu` is False). Constants:
    spec.physics (config/physics.yaml)."""
    with blas_threads(1):  # small matrices: one BLAS thread is the fastest, and the CPU timing wants one
        return account(spec, params, origin, points=points, samples=samples, sample_points=sample_points,
                       measure_cpu=measure_cpu, cpu_euler=cpu_euler, progress=progress)


def robustness(
    spec: Spec, params: Params, *, devices: dict | None = None, sweeps: dict[str, list] | None = None,
    n: int = 500, threads: int | None = None, on_row: Callable[[str, object, dict], None] | None = None,
) -> RobustnessReport:
    """Deploy `params` (ideally trained) on non-ideal devices and judge the samples, one
    non-ideality at a time: each sweep sets one devices key over its values on top of the
    base `devices` (a devices mapping; default: ideal with w_max 1), programming fresh
    devices and sampling `n` digits through the numpy backend for each (method.md section
    7, 'Devices')."""
    ensure_finite(params, "params")

    def draw(s: Spec) -> np.ndarray:
        import warnings

        with warnings.catch_warnings():  # wire resistance: said once by the caller, not per row
            warnings.simplefilter("ignore")
            return sample(s, params, n=n, threads=threads)

    return run_robustness(spec, params, draw, base=devices, sweeps=sweeps, on_row=on_row)


def compare(run_dirs: list[str | Path]) -> dict:
    """Runs side by side, each against the first (see `analogep compare --help`)."""
    return compare_runs([load_run(r) for r in run_dirs])


__all__ = [
    "check_circuit", "compare", "compile_circuit", "deck_points", "energy", "evaluate", "gradcheck", "load_config",
    "load_model", "robustness", "sample", "study", "train",
]
