"""The digital ways the circuit is compared with (method.md section 8): the FLOPs and
memory traffic of the same work (accounting/flops.py) priced with a GPU's energy per FLOP
and per byte (physics.yaml: H100 figures), for the paper's Euler relaxation, the fast
solver's measured sweeps and backpropagation through a feed-forward network with as many
parameters; and this machine's CPU time of a real training step and of real sampling."""

from __future__ import annotations

import time

import numpy as np

from analogep.accounting.estimate import Estimate
from analogep.accounting.flops import BACKPROP_FLOPS_PER_PARAM, BYTES_PER_UNIT_STEP, OPTIMIZER_FLOPS
from analogep.backends.numpy_backend import NumpyBackend
from analogep.config.spec import Spec
from analogep.data import load_dataset
from analogep.ep.step import gradep_step
from analogep.model.energy import EnergyModel, Params
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective
from analogep.objectives.flow_sampling import generate
from analogep.runtime import blas_threads
from analogep.training.optim import build_optimizer, clip_by_global_norm


def euler_steps(spec: Spec) -> int:
    """Steps the paper's Euler relaxation is priced at: the config's free_steps when it
    relaxes by Euler, else 300."""
    return spec.relax.free_steps if spec.relax.solver == "euler" else 300


def gpu_estimate(spec: Spec, label: str, flops: float, bytes_: float, kernels: float, notes: dict) -> Estimate:
    """FLOPs and bytes priced at the GPU's energy per FLOP and per byte; time: the longest
    of compute, memory and the kernels launched one after another."""
    p = spec.physics
    seconds = max(flops / p.gpu_flops_per_s, bytes_ / p.gpu_bandwidth, kernels * p.gpu_kernel_launch)
    breakdown = {"arithmetic": flops * p.gpu_flop_energy, "memory traffic": bytes_ * p.gpu_byte_energy}
    return Estimate(label, seconds, sum(breakdown.values()),
                    breakdown, {"flops": flops, "bytes": bytes_, "kernels": kernels, **notes})


def gpu_training(
    spec: Spec,
    model: EnergyModel,
    n_phases: int,
    relax_flops: int,
    kernels_per_step: int,
    step_flops: int,
    sweeps: tuple[float, int],
) -> dict[str, Estimate]:
    """One training step on a GPU three ways: the paper's Euler relaxation, the fast solver
    at its measured `sweeps` (mean, max per point over the phases), and backpropagation
    through a feed-forward net of as many parameters."""
    sizes, batch_size = model.sizes, spec.train.batch
    n_units, n_params = sum(sizes), model.n_params
    T = euler_steps(spec)
    steps = batch_size * n_phases * T
    sweeps_mean, sweeps_max = sweeps
    return {
        "gpu_euler": gpu_estimate(
            spec, f"GPU, the paper's Euler relaxation ({T} steps x {n_phases} phases)",
            steps * relax_flops + step_flops, steps * BYTES_PER_UNIT_STEP * n_units, n_phases * T * kernels_per_step,
            {"relaxation_steps_per_point": n_phases * T},
        ),
        "gpu_fast": gpu_estimate(
            spec, "GPU, the fast solver (block sweeps, measured)",
            batch_size * sweeps_mean * relax_flops + step_flops, batch_size * sweeps_mean * BYTES_PER_UNIT_STEP * n_units,
            sweeps_max * kernels_per_step, {"sweeps_per_point": sweeps_mean},
        ),
        "gpu_backprop": gpu_estimate(
            spec, "GPU, backpropagation through a feed-forward net of as many parameters",
            BACKPROP_FLOPS_PER_PARAM * n_params * batch_size + OPTIMIZER_FLOPS * n_params,
            4.0 * (6 * n_units * batch_size + 4 * n_params), 9 * len(model.circuit_rules().couplings),
            {"note": "another model (the velocity computed by a forward pass), the usual way to train flow matching"},
        ),
    }


def _per_sample(est: Estimate, samples: int) -> Estimate:
    """A batch of `samples` on the GPU, per sample (the time is the batch's, shared)."""
    scale = 1.0 / samples
    return Estimate(est.label, est.seconds * scale, est.joules * scale, {k: v * scale for k, v in est.breakdown.items()},
                    {**est.notes, "batch_seconds": est.seconds})


def gpu_sampling(
    spec: Spec,
    model: EnergyModel,
    samples: int,
    steps: int,
    sweeps: float,
    relax_flops: int,
    kernels_per_step: int,
) -> dict[str, Estimate]:
    """Per sample of a batch of `samples` on a GPU, `steps` velocities each: by the paper's
    Euler relaxation, by the fast solver at the `sweeps` measured over the steps, and by a
    feed-forward net of as many parameters."""
    n_units = sum(model.sizes)
    out = {}
    T = euler_steps(spec)
    bytes_step = BYTES_PER_UNIT_STEP * n_units
    for key, label, relax_steps in (("gpu_euler", f"GPU, Euler relaxation ({T} steps per velocity)", T),
                                    ("gpu_fast", "GPU, the fast solver (sweeps measured)", sweeps / steps)):
        est = gpu_estimate(spec, label, samples * steps * relax_steps * relax_flops, samples * steps * relax_steps * bytes_step,
                           steps * relax_steps * kernels_per_step, {"relaxation_steps_per_velocity": relax_steps})
        out[key] = _per_sample(est, samples)
    n_params = model.n_params
    out["gpu_backprop"] = _per_sample(gpu_estimate(spec, "GPU, a feed-forward net of as many parameters (forward passes)",
                                                   samples * steps * 2 * n_params, 4.0 * samples * steps * 2 * n_units,
                                                   steps * 6, {}),
                                      samples)
    return out


def cpu_training_step(spec: Spec, params: Params, solver: str, seed: int) -> Estimate:
    """One real training step of the config on this machine (numpy, one BLAS thread), timed."""
    s = spec if solver == spec.relax.solver else spec.replace(
        relax={"solver": solver, "tol": 0.0 if solver == "euler" else spec.relax.tol, "free_steps": 300, "nudge_steps": 300},
        train={"max_residual": 1e9, "max_asymmetry": 1.0, "max_dropped": 1.0})
    model = build_energy(s.model)
    data = load_dataset(s.train.dataset, source=s.data)
    objective = build_objective(s)
    batch = objective.batch(data, s.train.batch, np.random.default_rng(seed))
    backend = NumpyBackend(model, s.gradep, s.relax)
    work = {k: v.copy() for k, v in params.items()}
    optimizer = build_optimizer(s.train.optimizer, work)
    with blas_threads(1):
        t0 = time.perf_counter()
        result = gradep_step(model, backend, backend.program(work), batch, objective, s.gradep, s.train)
        grad, _ = clip_by_global_norm(result.grad, s.train.grad_clip)
        optimizer.step(work, grad)
        seconds = time.perf_counter() - t0
    joules = seconds * spec.physics.cpu_watts_per_core
    return Estimate(f"this CPU, measured ({solver} solver, numpy, 1 core)", seconds, joules, {"1 core": joules})


def cpu_sampling(spec: Spec, params: Params, samples: int, seed: int) -> Estimate:
    """Per sample, flow-matching generation of up to 100 samples in a batch on this machine
    (numpy, one BLAS thread, the config's solver), timed."""
    p, gen = spec.physics, spec.generate
    n = min(samples, 100)
    m32 = build_energy(spec.model)
    backend = NumpyBackend(m32, spec.gradep, spec.relax)
    backend.program({k: v.astype(m32.dtype) for k, v in params.items()})
    with blas_threads(1):
        t0 = time.perf_counter()
        generate(m32, backend, spec.gradep, n=n, t1=gen.t1, dt=gen.dt, mode=gen.mode, seed=seed)
        sec = (time.perf_counter() - t0) / n
    return Estimate(f"this CPU, measured ({spec.relax.solver} solver, {n} samples in a batch, 1 core)", sec,
                    sec * p.cpu_watts_per_core, {"1 core": sec * p.cpu_watts_per_core})
