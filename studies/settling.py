"""Measure the circuit's settling with ngspice transients against the linearised prediction.

For a few training points of a config or run: each phase's transient (spice/transient.py,
from the phase's start, no .nodeset) against ngspice's `.op` of the same circuit (with the
numpy equilibrium as .nodeset): the end state's largest difference, full scale; the
waveform's tail time constant against tau = C / (g0 lambda_min) at the equilibrium; the
settling time to physics.settle_tolerance against the numpy simulation of the same flow
(accounting/settling.py), which `analogep energy` uses. ngspice transients of the digits
circuit take minutes each.

    .venv/bin/python studies/settling.py [CONFIG|RUN_DIR] [--points 3] [--phases free,nudge_plus]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from analogep import api
from analogep.backends.spring import Nudge
from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.spring import phase_spring
from analogep.spice.compiler import build_netlist, state_nodes
from analogep.devices.mapping import effective_params
from analogep.spice.netlist import render
from analogep.spice.run.ngspice import SubprocessNgspice, ngspice_info
from analogep.spice.transient import run_transient, start_state
from analogep.data import load_dataset
from analogep.ep.phases import nudge_anchor
from analogep.accounting.settling import settle
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective
from analogep.runtime import blas_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default=None)
    ap.add_argument("--points", type=int, default=3)
    ap.add_argument("--phases", default="free,nudge_plus", help="of free, nudge_plus, nudge_minus")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    spec, params, origin = api.load_model(args.source)
    c = spec.circuit.capacitance if spec.circuit.capacitance > 0 else spec.physics.capacitance
    spec = spec.replace(circuit={"capacitance": c})
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    p64, _ = effective_params(model, {k: np.asarray(v, np.float64) for k, v in params.items()}, spec)
    batch = build_objective(spec).batch(load_dataset(dtype=np.float64), args.points, np.random.default_rng(args.seed))
    numpy = NumpyBackend(model, spec.gradep, api.DECK_RELAX)
    numpy.program(p64)
    tol, unit = spec.physics.settle_tolerance, c / spec.circuit.g0
    print(f"{origin}: C = {c:g} F, g0 = {spec.circuit.g0:g} S, ngspice {ngspice_info().version}; settling to {tol:g}")
    print(f"{'point':>5s} {'phase':12s} {'lambda_min':>10s} {'tau pred':>10s} {'tau tail':>10s} {'ratio':>6s} "
          f"{'settle spice':>12s} {'settle numpy':>12s} {'end vs .op':>10s} {'spice s':>8s}")
    for i in range(args.points):
        xt = batch.x_t[i : i + 1]
        anchor = nudge_anchor(xt, batch.target[i : i + 1], spec.gradep)
        free = numpy.equilibrium(xt, None, None).state
        for phase in args.phases.split(","):
            beta = None if phase == "free" else (spec.gradep.beta if phase == "nudge_plus" else -spec.gradep.beta)
            nudge = None if beta is None else Nudge(beta, anchor)
            anchors = {"xt": xt} if beta is None else {"xt": xt, "a": anchor}
            eq = free if beta is None else numpy.equilibrium(xt, nudge, free).state
            start = start_state(phase, anchors, free, model.sizes)
            tr = run_transient(spec, model, p64, phase, anchors, start, eq)
            net = build_netlist(spec, model, p64, phase, anchors, sweep=False, nodeset=eq)
            net.saves = [f"v({n})" for layer in state_nodes(model.sizes) for n in layer]
            op = SubprocessNgspice().run(render(net, include=None), 900)
            v_op = np.array([op.vectors[n][0] for layer in state_nodes(model.sizes) for n in layer])
            v_end = np.concatenate(tr.end, axis=1)[0]
            with blas_threads(1):
                flow = settle(model, p64, start, phase_spring(spec.gradep, xt, nudge), tol=tol)
            print(f"{i:5d} {phase:12s} {tr.lambda_min:10.4g} {tr.predicted_tau:10.3e} {tr.tail_tau:10.3e} "
                  f"{tr.tail_tau / tr.predicted_tau:6.3f} {tr.settling_time(tol):12.3e} {flow.time[0] * unit:12.3e} "
                  f"{np.max(np.abs(v_end - v_op)) / np.max(np.abs(v_op)):10.2e} {tr.seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()
