"""Measurement: crossbar line resistance (IR drop) on the digits circuit. Not a test.
Results: docs/results/devices.md.

For each line resistance R_wire (ohm per crossbar segment), on a trained model, against the
ideal circuit (R_wire = 0, the same conductance window):

- equilibrium error of the free phase over --points flow-matching training points: max
  and RMS |s_wired - s_ideal| (volts = state units);
- velocity error |v_wired - v_ideal| / |v_ideal| (the spring read-out, method.md 2);
- EP-gradient cosine between the gradient measured on the wired and on the ideal circuit;
- the weight distortion of each read, |W_eff - W| / |W| (devices/wires.py);
- with --samples N: the quality of N digits sampled through the wired circuit
  (analogep evaluate's figures).

The wired circuit is the netlist SPICE gets (every row and column line a ladder of R_wire
segments, compiler._wired). Its drivers are ideal sources and its sense lines exact
virtual grounds, so each wired array is a linear multiport: the neurons see it only
through its effective conductances, and the wired circuit's equilibria are the KCL fixed
points of the realised circuit with those (forward and transposed differ: no energy).
That reduction is exact (tests/test_spice_wires.py: ngspice on the full ladders agrees
with it to 1e-7 V); it is what makes the digits circuit measurable here: ngspice on the
full wired digits netlist (~200k tap nodes, 250k elements) needs minutes per solve.
--spice-points K solves K training points' free phase that way too, at --spice-r, and
reports the largest difference to the reduction.

Windows: `circuit` (the config's: gmin 0, gmax 1 mS, g0 100 uS) and `rram` (the rram
preset's: gmin 10 uS, gmax 100 uS, |W| = 1 spans it, g0 90 uS): IR drop scales with
R_wire times the conductances, and a window with gmin > 0 adds gmin of current per device.

    .venv/bin/python studies/wire_resistance.py --checkpoint RUN_DIR [--points 64]
        [--r 0.03,0.1,0.3,1,3] [--windows circuit,rram] [--samples 300 --sample-r 0,0.1,1]
        [--spice-points 1 --spice-r 1] [--json OUT] [--plot PNG]   (or --replot OUT.json --plot PNG)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.devices.crossbar import Devices
from analogep.devices.programmed import program
from analogep.config.sections import RelaxSpec
from analogep.data import load_dataset
from analogep.backends.spring import velocity
from analogep.ep.measurement import ep_gradient
from analogep.ep.phases import run_phases
from analogep.evaluation.crosscheck import NO_ENERGY_RELAX
from analogep.evaluation.quality import evaluate_samples
from analogep.model.factory import build_energy
from analogep.model.tensors import params_dot, params_norm
from analogep.objectives.factory import build_objective
from analogep.runtime import blas_threads
from analogep.training.checkpoint import load_checkpoint

# The ideal circuit: block descent, tight. The wired circuit has no energy: its own dynamics
# (Euler steps on its KCL), which reach its stable fixed points (evaluation/crosscheck.py).
TIGHT = RelaxSpec(solver="fast", free_steps=5000, nudge_steps=5000, tol=1e-10, omega=1.0)
WINDOWS = {
    "circuit": {},
    "rram": {"gmin": 1.0e-5, "gmax": 1.0e-4, "w_max": 1.0},
}


def circuit_backend(spec, model, params):
    """A numpy backend on the programmed circuit of spec.devices (line resistance through
    the arrays' effective conductances), and the programmed circuit."""
    devices = None if spec.devices.ideal else Devices(spec, model)
    drawn = program(spec, model, params, devices)
    backend = NumpyBackend(drawn.solver, spec.gradep, TIGHT if drawn.has_energy else dataclasses.replace(NO_ENERGY_RELAX, tol=1e-10))
    backend.program(drawn.params)
    return backend, drawn


def measure(spec, model, params, batch, r_wire, window, ref, samples):
    wired = spec.replace(devices={**WINDOWS[window], "wire_resistance": r_wire})
    t0 = time.perf_counter()
    backend, drawn = circuit_backend(wired, model, params)
    t_program = time.perf_counter() - t0
    phases = run_phases(backend, batch.x_t, batch.target, spec.gradep)
    weight = None if batch.weight is None else batch.weight.astype(np.float64)
    grad = ep_gradient(model, params, phases, weights=weight)
    row = {"window": window, "r_wire": r_wire, "program_seconds": round(t_program, 2),
           "residual": float(max(e.residual for e in phases.all)), "clipped": int(sum(drawn.clipped.values()))}
    if ref is not None:
        err = np.concatenate([(a - b).ravel() for a, b in zip(phases.free.state, ref["free"])])
        v, v0 = velocity(phases.free.state[0], batch.x_t, spec.gradep), ref["velocity"]
        row.update(
            eq_max_abs=float(np.max(np.abs(err))),
            eq_rms=float(np.sqrt(np.mean(err**2))),
            velocity_rel=float(np.linalg.norm(v - v0) / np.linalg.norm(v0)),
            grad_cosine=float(params_dot(grad, ref["grad"]) / (params_norm(grad) * params_norm(ref["grad"]))),
            grad_norm_ratio=float(params_norm(grad) / params_norm(ref["grad"])),
        )
        transposed = getattr(drawn.solver, "transposed", None)  # the transposed reads' effective weights
        for name in drawn.copies:
            w = ref["weights"][name]
            row[f"{name}_fwd_distortion"] = float(np.linalg.norm(drawn.params[name] - w) / np.linalg.norm(w))
            if transposed is not None:
                row[f"{name}_bwd_distortion"] = float(np.linalg.norm(transposed[name] - w) / np.linalg.norm(w))
    if samples:
        # Sampling relaxes as the config does (spec.relax); the circuit without an energy by
        # plain block descent (omega 1), as many sweeps: Euler on its KCL, which always
        # converges there, costs ~30x the time per sample.
        loose = spec.relax if drawn.has_energy else dataclasses.replace(spec.relax, omega=1.0)
        sampler = NumpyBackend(drawn.solver, spec.gradep, loose)
        sampler.program(drawn.params)
        g = spec.generate
        t0 = time.perf_counter()
        x = build_objective(spec).sample(model, sampler, dataclasses.replace(g, n=samples), None, None)
        row["sample_seconds"] = round(time.perf_counter() - t0, 1)
        q = evaluate_samples(np.asarray(x)).to_dict()
        row.update(confidence=q["confidence"], frechet=q["frechet"], classes_covered=q["classes_covered"],
                   outside_range=q["outside_range"])
    return row, phases, grad, drawn


def spice_validation(spec, model, params, batch, r_wire, window, k, timeout):
    """ngspice on the full wired netlist for k training points' free phase vs the reduction."""
    from analogep.backends.spice_backend import SpiceBackend

    wired = spec.replace(devices={**WINDOWS[window], "wire_resistance": r_wire}, circuit={"timeout": timeout})
    backend, _ = circuit_backend(wired, model, params)
    ref = backend.equilibrium(batch.x_t[:k], None, None).state
    spice = SpiceBackend.from_spec(wired, model, workers=1)
    try:
        spice.program(params)
        t0 = time.perf_counter()
        got = spice.equilibrium(batch.x_t[:k], None, None)
        seconds = time.perf_counter() - t0
    finally:
        spice.close()
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(got.state, ref))
    return {"window": window, "r_wire": r_wire, "points": k, "spice_vs_reduction_max_abs": diff,
            "spice_residual": float(got.residual), "spice_seconds": round(seconds, 1)}


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for color, window in zip(("C0", "C1", "C2"), dict.fromkeys(r["window"] for r in rows)):
        rs = [r for r in rows if r["window"] == window and r["r_wire"] > 0]
        x = [r["r_wire"] for r in rs]
        axes[0].loglog(x, [r["eq_rms"] for r in rs], "o-", color=color, label=f"{window}: rms node error (V)")
        axes[0].loglog(x, [r["velocity_rel"] for r in rs], "s--", color=color, label=f"{window}: velocity rel. error")
        axes[1].loglog(x, [max(1 - r["grad_cosine"], 1e-12) for r in rs], "o-", color=color, label=window)
        judged = [r for r in rs if "frechet" in r]
        base = next(r for r in rows if r["window"] == window and r["r_wire"] == 0)
        if judged and "frechet" in base:
            axes[2].semilogx([r["r_wire"] for r in judged], [r["frechet"] for r in judged], "o-", color=color, label=window)
            axes[2].axhline(base["frechet"], ls=":", color=color)
    axes[0].set(xlabel="R_wire (ohm per segment)", ylabel="error against R = 0", title="free equilibrium")
    axes[1].set(xlabel="R_wire (ohm per segment)", ylabel="1 - cos(EP grad, ideal circuit)", title="EP gradient")
    axes[2].set(xlabel="R_wire (ohm per segment)", ylabel="Frechet distance (dotted: R = 0)", title="samples")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--r", default="0.03,0.1,0.3,1,3")
    ap.add_argument("--windows", default="circuit,rram")
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--sample-r", default="0,0.1,1", help="the R_wire values whose samples are judged")
    ap.add_argument("--spice-points", type=int, default=0)
    ap.add_argument("--spice-r", type=float, default=1.0)
    ap.add_argument("--spice-timeout", type=float, default=3600.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--plot")
    ap.add_argument("--replot", help="a --json result to plot again (nothing is measured)")
    args = ap.parse_args()
    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f)["rows"], args.plot)
        return
    warnings.simplefilter("ignore")
    ckpt = load_checkpoint(args.checkpoint)
    spec = ckpt.spec.replace(model={"dtype": "float64"})
    model = build_energy(spec.model)
    params = {k: np.asarray(v, np.float64) for k, v in ckpt.params.items()}
    data = load_dataset(spec.train.dataset, dtype=np.float64)
    batch = build_objective(spec).batch(data, args.points, np.random.default_rng(0))
    rows, spice_rows = [], []
    with blas_threads(args.threads):
        for window in args.windows.split(","):
            # R = 0: the same window without wires (its devices exact), the reference.
            ideal_spec = spec.replace(devices=WINDOWS[window]) if WINDOWS[window] else spec
            sample_r = [float(v) for v in args.sample_r.split(",")]
            n_samples = args.samples if 0.0 in sample_r else 0
            row, phases, grad, drawn = measure(ideal_spec, model, params, batch, 0.0, window, None, n_samples)
            ref = {"free": phases.free.state, "velocity": velocity(phases.free.state[0], batch.x_t, spec.gradep),
                   "grad": grad, "weights": {k: drawn.params[k] for k in drawn.copies}}
            rows.append(row)
            print(json.dumps(row), flush=True)
            for r in [float(v) for v in args.r.split(",")]:
                row = measure(spec, model, params, batch, r, window, ref, args.samples if r in sample_r else 0)[0]
                rows.append(row)
                print(json.dumps(row), flush=True)
        if args.spice_points:
            spice_rows.append(spice_validation(spec, model, params, batch, args.spice_r, args.windows.split(",")[0],
                                               args.spice_points, args.spice_timeout))
            print(json.dumps(spice_rows[-1]), flush=True)
    out = {"checkpoint": args.checkpoint, "step": ckpt.step, "points": args.points, "rows": rows, "spice": spice_rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
