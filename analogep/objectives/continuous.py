"""Generation as the circuit's own dynamics: no clamp, no Euler steps (Gower 2026, section 5
and discussion: "hidden neurons equilibrate rapidly while visible neurons evolve slowly
under the energy gradient ... an adiabatic regime").

The circuit of method.md section 7 with a capacitor on every neuron node and nothing on the
visible nodes but the network itself (no spring, no clamp) is the gradient flow

    C_v dx/dt = -g0 dE/dx,    C_h dh/dt = -g0 dE/dh,

started with the visible nodes at noise voltages and the hidden nodes at 0 V. In the flow
time tau = t g0 / (alpha C_v) the visible units follow dx/dtau = -alpha dE/dx, the Euler
sampler's velocity (flow_sampling.py, energy mode), and the hidden units relax
`ratio` = C_v / C_h times faster: dh/dtau = -alpha ratio dE/dh. As the ratio grows the
hidden layer follows its equilibrium h*(x) adiabatically and the visible trajectory tends
to the exact flow the Euler sampler discretises; at a small ratio the hidden layer lags.
The sample is x at tau = t1, which is t1 alpha C_v / g0 seconds of the circuit.

Precharge (optional): the hidden nodes start at 0 V, far from h*(x0), and while they catch
up the visible nodes drift under a wrong field (docs/results/generation.md measures this
hidden lag). With `precharge` N > 0 the DACs that set the noise hold the visible nodes for
N hidden time constants C_h / g0 first (flow time N / (alpha ratio)), the hidden layer
relaxes towards h*(x0), and then the visible nodes are released.

Here the flow is integrated in numpy (both timescales explicit, float64, an adaptive
Runge-Kutta method, Dormand & Prince 1980, scipy's RK45); spice/generation.py runs the
same circuit as an ngspice transient.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.integrate import solve_ivp

from analogep.config.spec import Spec
from analogep.devices.crossbar import Devices
from analogep.devices.programmed import program
from analogep.model.energy import EnergyModel, Params, State
from analogep.model.field import LayeredField
from analogep.model.factory import build_energy
from analogep.objectives.sampling import sample_in_chunks
from analogep.spice.generation import physical_time

__all__ = ["flow", "float64_model", "generate_continuous", "physical_time", "precharge_time"]

# Integration tolerances of the numpy flow: far below the 1e-4 agreement asked of ngspice.
RTOL, ATOL = 1e-7, 1e-9


def float64_model(spec: Spec, params: Params) -> tuple[EnergyModel, Params]:
    """The model and parameters in float64 (the flow is compared with ngspice's at 1e-4)."""
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    return model, {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


def _split(y: np.ndarray, sizes: tuple[int, ...], points: int) -> State:
    state, at = [], 0
    for k in sizes:
        state.append(y[at : at + points * k].reshape(points, k))
        at += points * k
    return state


def precharge_time(precharge: float, ratio: float, alpha: float) -> float:
    """Flow time of a precharge of `precharge` hidden time constants C_h / g0."""
    return precharge / (alpha * ratio)


def flow(
    model: LayeredField,
    params: Params,
    x0: np.ndarray,
    *,
    t1: float,
    ratio: float,
    alpha: float,
    times: np.ndarray | None = None,
    hidden: list[np.ndarray] | None = None,
    rtol: float = RTOL,
    precharge: float = 0.0,
    visible_held: bool = False,
) -> tuple[np.ndarray, list[State]]:
    """The circuit's flow from visible x0 (points, D) and hidden `hidden` (default 0 V) over
    flow time [0, t1]: (times, the state at each time; by default only t1). With
    `precharge` N > 0 the visible nodes are first held at x0 for N hidden time constants
    (the times count from their release); `visible_held` integrates only such a hold."""
    points = x0.shape[0]
    hidden = hidden if hidden is not None else [np.zeros((points, k)) for k in model.sizes[1:]]
    if precharge > 0:
        _, held = flow(model, params, x0, t1=precharge_time(precharge, ratio, alpha), ratio=ratio, alpha=alpha,
                       hidden=hidden, rtol=rtol, visible_held=True)
        hidden = held[-1][1:]
    y0 = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in [x0] + list(hidden)])
    rates = np.concatenate([np.full(points * k, 0.0 if layer == 0 and visible_held else alpha * (1.0 if layer == 0 else ratio))
                            for layer, k in enumerate(model.sizes)])

    def field(_t: float, y: np.ndarray) -> np.ndarray:
        grads = model.state_grad(params, _split(y, model.sizes, points))
        return -rates * np.concatenate([g.ravel() for g in grads])

    times = np.array([t1]) if times is None else np.asarray(times, dtype=np.float64)
    sol = solve_ivp(field, (0.0, t1), y0, method="RK45", t_eval=times, rtol=rtol, atol=ATOL * rtol / RTOL)
    if not sol.success:
        raise ArithmeticError(f"the continuous flow did not integrate: {sol.message}")
    return sol.t, [_split(sol.y[:, k], model.sizes, points) for k in range(sol.y.shape[1])]


def generate_continuous(
    spec: Spec, params: Params, *, n: int, t1: float, ratio: float, seed: int, rtol: float = RTOL, precharge: float = 0.0,
    device_state: tuple[dict, dict] | None = None,
) -> np.ndarray:
    """n samples (n, D) of the circuit's continuous generation from the Euler sampler's
    noise of the same seed (objectives/sampling.py), in the model's dtype. With non-ideal
    spec.devices, `params` are programmed onto fresh devices and the flow is the realised
    circuit's (its energy, or its Kirchhoff currents where it has none: devices/realised.py).
    `precharge`: hidden time constants the visible nodes are held at the noise first.
    `device_state` (an in-situ run's checkpoint): the devices it trained, not fresh ones."""
    model, p64 = float64_model(spec, params)
    if not spec.devices.ideal:  # the realised circuit's flow: fresh devices, or the run's own
        devices = Devices(spec, model)
        if device_state is not None:
            devices.load_state_dict(*device_state, where="the run's device state")
        drawn = program(spec, model, p64, devices)
        model, p64 = drawn.solver, drawn.params
    alpha = spec.gradep.alpha
    dtype = build_energy(spec.model).dtype

    def run(x, _rng, tick):
        _, states = flow(model, p64, x.astype(np.float64), t1=t1, ratio=ratio, alpha=alpha, rtol=rtol,
                          precharge=precharge)
        if tick is not None:
            tick(1)
        return states[-1][0].astype(dtype)

    return sample_in_chunks(build_energy(spec.model), n, seed, 1, None, run, None)
