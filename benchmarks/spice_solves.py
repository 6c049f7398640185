"""DC solves per second: ngspice (one process, all cores) against numpy relaxation.

Solves the free phase of the same flow-matching training points on the tiny (64-16-16)
and the paper (64-128-128) circuits:

    .venv/bin/python benchmarks/spice_solves.py [--n-tiny 256] [--n-paper 64] [--runner auto] [--json]

One "solve" is one training point in one phase (what one ngspice DC operating point
is). numpy figures are for the config's own solver and for the tight float64 reference
the check uses. Timings include deck rendering and the process pool's traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.spice_backend import SpiceBackend
from analogep.circuit.ngspice import ngspice_info
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.evaluation.gradcheck import REFERENCE_RELAX, as_float64
from analogep.model.registry import build_energy
from analogep.objectives.flow import sample_flow_batch

ROOT = Path(__file__).resolve().parents[1]


def bench(config: Path, n: int, runner: str, workers: list[int]) -> dict:
    spec = load_spec(config)
    model, params = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed)))
    batch = sample_flow_batch(load_dataset(dtype=np.float64), n, np.random.default_rng(0), spec.train.ot_coupling)
    out = {"config": spec.name, "sizes": list(spec.model.sizes), "points": n}
    for name, relax_spec in (("numpy_" + spec.relax.solver, spec.relax), ("numpy_tight", REFERENCE_RELAX)):
        backend = NumpyBackend(model, spec.gradep, relax_spec)
        backend.program(params)
        t0 = time.perf_counter()
        backend.equilibrium(batch.x_t, None, None)
        out[f"{name}_solves_per_s"] = n / (time.perf_counter() - t0)
    for w in workers:
        backend = SpiceBackend.from_spec(spec, model, runner=runner, workers=w)
        backend.program(params)
        backend.equilibrium(batch.x_t[:2], None, None)  # start the workers and load ngspice
        t0 = time.perf_counter()
        eq = backend.equilibrium(batch.x_t, None, None)
        seconds = time.perf_counter() - t0
        out[f"spice_{w}proc_solves_per_s"] = n / seconds
        out[f"spice_{w}proc_s_per_point"] = seconds / n
        out[f"spice_{w}proc_residual"] = eq.residual
        out["runner"] = backend.pool.runner
        backend.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-tiny", type=int, default=256)
    ap.add_argument("--n-paper", type=int, default=64)
    ap.add_argument("--runner", default="auto", choices=["auto", "shared", "subprocess"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    workers = sorted({1, cores})
    info = ngspice_info()
    results = {"ngspice": info.version, "klu": info.klu, "cores": cores, "runs": []}
    for config, n in ((ROOT / "examples" / "tiny.yaml", args.n_tiny), (ROOT / "examples" / "digits.yaml", args.n_paper)):
        if n > 0:
            results["runs"].append(bench(config, n, args.runner, workers))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"ngspice {info.version} (KLU: {info.klu}), {cores} cores")
    for r in results["runs"]:
        print(f"{r['config']} {'-'.join(map(str, r['sizes']))}, {r['points']} training points, free phase, runner {r['runner']}:")
        for k, v in r.items():
            if k.endswith("solves_per_s"):
                print(f"  {k[:-13]:>16s}: {v:9.2f} solves/s")
        for w in workers:
            print(f"  spice {w} process(es): {r[f'spice_{w}proc_s_per_point']:.4f} s per point per phase")


if __name__ == "__main__":
    main()
