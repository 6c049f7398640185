"""The hopfield84 family's op-amp transient (ngspice, spice/transient.py) against the lagged
circuit `analogep energy` simulates (accounting/amplified.py), for one training point and
phase: settling time to 1e-4 V, the waveform's tail time constant against the predicted
slowest mode, and the end state against the lagged circuit's (docs/results/physical.md).

    .venv/bin/python studies/op_amp_transient.py CONFIG|RUN_DIR [free|nudge_plus|nudge_minus]
"""

from __future__ import annotations

import dataclasses
import json
import argparse

import numpy as np
from analogep.api import deck_points
from analogep.config import load_spec
from analogep.model.factory import build_energy
from analogep.spice.transient import amplifier_lags, amplifier_row_lags, run_transient, start_drive, start_state
from analogep.accounting.amplified import settle_lagged
from analogep.backends.spring import Nudge, phase_spring
from analogep.training.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a config (initial weights, seed 0) or a run folder")
    parser.add_argument("phase", nargs="?", default="free", choices=("free", "nudge_plus", "nudge_minus"))
    args = parser.parse_args()
    src, phase = args.source, args.phase
    if src.endswith(".yaml"):
        spec = load_spec(src)
        model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
        params = {k: v.astype(np.float64) for k, v in build_energy(spec.model).init_params(np.random.default_rng(0)).items()}
    else:
        ck = load_checkpoint(src)
        spec = ck.spec
        model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
        params = {k: np.asarray(v, dtype=np.float64) for k, v in ck.params.items()}
    points = deck_points(spec, params)
    point, free = points[phase], points["free"]
    start = start_state(phase, point.anchors, free.nodeset, model.sizes)
    tr = run_transient(spec, model, params, phase, point.anchors, start, point.nodeset, timeout=900)
    lags = amplifier_lags(spec, model, params)
    beta = None if phase == "free" else (spec.gradep.beta if phase == "nudge_plus" else -spec.gradep.beta)
    nudge = None if beta is None else Nudge(beta, point.anchors["a"])
    spring = phase_spring(spec.gradep, point.anchors["xt"], nudge)
    drive = start_drive(spec, model, params, phase, point.anchors, start)
    unit = max(float(np.max(t)) for t in lags)
    s = settle_lagged(model, params, start, spring, lags, drive, amplifier_row_lags(model), tol=1e-4)
    end_err = max(float(np.max(np.abs(a[-1] - b[0]))) for a, b in zip(tr.states, s.end))
    out = {"phase": phase, "spice_settle_s": tr.settling_time(1e-4), "lagged_settle_s": float(s.time[0] * unit),
           "spice_tail_tau_s": tr.tail_tau, "predicted_tau_s": tr.predicted_tau, "end_max_abs_diff_V": end_err,
           "spice_seconds": tr.seconds, "slowest_lag_s": unit}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
