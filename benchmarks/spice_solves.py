"""ngspice's training solves on the paper circuit: solver, one sweep, and Dask.

Reports, in one run, on a flow-matching batch of training points at the config's initial
weights (default: the paper's 64-128-128 circuit):

1. seconds per training point per phase in one process on one core (CPU and wall
   seconds), for the installed ngspice and for each `--ngspice PREFIX` (another
   ngspice install, e.g. Debian's 39 unpacked beside 46: KLU against Sparse 1.3), with
   a step's phases solved per-phase (three sweeps) and in one interleaved sweep;
2. points per second (training points x phases per second of ngspice work) of the
   local worker pool and of the Dask runner (a LocalCluster) with 1 and 2 workers, and
   Dask's overhead, on the same decks;
3. numpy's free-phase solves per second, for scale.

The measurements alternate (rep by rep) so that a shared machine's load drifts over all
of them alike; medians are reported, and the ratios are what to compare.

    .venv/bin/python benchmarks/spice_solves.py [--config CONFIG] [--n 32] [--reps 3]
        [--ngspice /opt/ngspice39/usr] [--workers 1 2] [--json]

An ngspice 39 to compare with, unpacked without replacing the installed one (Debian):

    apt-get download ngspice=39.3+ds-1 libngspice0=39.3+ds-1
    for d in *.deb; do dpkg -x $d /opt/ngspice39; done     # then --ngspice /opt/ngspice39/usr
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# --- timing decks in one process (run as a child: one ngspice per process) ---------------------


def time_decks(folder: Path) -> dict:
    """CPU and wall seconds and Newton iterations of the per-phase decks (together) and of
    the one-sweep deck."""
    from analogep.spice.run.ngspice import SharedNgspice, ngspice_info

    engine = SharedNgspice()
    iterations = []
    command = engine.command

    def counting(cmd: str) -> str:  # ngspice's count, read before the run's circuit is removed
        if cmd == "destroy all":
            found = re.search(r"Total iterations = (\d+)", command("rusage totiter"))
            iterations.append(int(found.group(1)) if found else 0)
        return command(cmd)

    engine.command = counting
    out = {"ngspice": ngspice_info().version, "klu": ngspice_info().klu}
    for kind in ("per_phase", "one_sweep"):
        cpu = wall = 0.0
        iterations.clear()
        for deck in sorted(folder.glob(f"{kind}_*.cir")):
            text = deck.read_text()
            c0, w0 = time.process_time(), time.perf_counter()
            result = engine.run(text, 3600)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            if result.rows != int(deck.stem.split("_")[-1]):
                raise SystemExit(f"{deck.name}: {result.rows} rows ({result.message})")
        out[kind] = {"cpu": cpu, "wall": wall, "iterations": sum(iterations)}
    return out


def _ngspice_env(prefix: Path | None, scripts: Path) -> dict:
    """The environment that makes analogep load the ngspice under `prefix` (None: the installed one)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if prefix is None:
        return env
    libs = sorted(prefix.glob("lib/**/libngspice.so*"))
    if not (prefix / "bin" / "ngspice").exists() or not libs:
        raise SystemExit(f"--ngspice {prefix}: expected bin/ngspice and lib/.../libngspice.so* there")
    # A spinit of its own: the installed one would load another version's code models.
    env.update(PATH=f"{prefix / 'bin'}{os.pathsep}{env['PATH']}", NGSPICE_LIBRARY_PATH=str(libs[0]), SPICE_SCRIPTS=str(scripts))
    return env


def _time_in_child(folder: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--time-decks", str(folder)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"timing child failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


# --- decks as the backend renders them ---------------------------------------------------------


class _Recorder:
    """A pool wrapper that keeps every deck list it is given."""

    def __init__(self, pool):
        self.pool, self.calls = pool, []

    def __getattr__(self, name):
        return getattr(self.pool, name)

    def map(self, decks, timeout):
        self.calls.append(list(decks))
        return self.pool.map(decks, timeout)


def _decks(spec, model, params, batch, workers: int) -> tuple[list[str], list[str]]:
    """(per-phase decks, one-sweep decks) of one training step with `workers` chunks per sweep."""
    from analogep.backends.spring import Nudge
    from analogep.backends.spice_backend import SpiceBackend
    from analogep.ep.phases import nudge_anchor

    backend = SpiceBackend.from_spec(spec, model, runner="shared", workers=workers)
    backend.pool = recorder = _Recorder(backend.pool)
    try:
        backend.program(params)
        g = spec.gradep
        anchor = nudge_anchor(batch.x_t, batch.target, g)
        nudges = [Nudge(g.beta, anchor)] + ([Nudge(-g.beta, anchor)] if g.phases == 3 else [])
        free = backend.equilibrium(batch.x_t, None, None)
        for nudge in nudges:
            backend.equilibrium(batch.x_t, nudge, free.state)
        per_phase = [d for call in recorder.calls for d in call]
        recorder.calls = []
        backend.phases(batch.x_t, nudges)
        one_sweep = [d for call in recorder.calls for d in call]
    finally:
        backend.close()
    if len(per_phase) != (len(nudges) + 1) * workers or len(one_sweep) != workers:
        raise SystemExit("some points needed the one-point fallback; try another --seed")
    return per_phase, one_sweep


def _rows(deck: str) -> int:
    line = next(ln for ln in deck.splitlines() if ln.startswith(".dc "))
    return int(line.split()[3]) + 1


# --- the benchmark -----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="model.yaml [default: the paper config]")
    ap.add_argument("--n", type=int, default=32, help="training points")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians reported)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the batch")
    ap.add_argument("--ngspice", action="append", default=[], type=Path, metavar="PREFIX",
                    help="another ngspice install prefix to time too (bin/ngspice, lib/.../libngspice.so)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="worker counts for the pool comparison (none: skip it)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--time-decks", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.time_decks:
        print(json.dumps(time_decks(args.time_decks)))
        return

    from analogep.backends.numpy_backend import NumpyBackend
    from analogep.spice.run.runners import make_runner
    from analogep.config import load_spec
    from analogep.data import load_dataset
    from analogep.evaluation.gradcheck import as_float64
    from analogep.model.factory import build_energy
    from analogep.objectives.flow import sample_flow_batch

    spec = load_spec(args.config)
    model, params = as_float64(spec, build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed)))
    batch = sample_flow_batch(load_dataset(dtype=np.float64), args.n, np.random.default_rng(args.seed), spec.train.ot_coupling)
    phases = spec.gradep.phases
    solves = args.n * phases
    out: dict = {"config": spec.name, "sizes": list(spec.model.sizes), "points": args.n, "phases": phases,
                 "cores": len(os.sched_getaffinity(0)), "load_start": os.getloadavg()[0]}

    numpy = NumpyBackend(model, spec.gradep, spec.relax)
    numpy.program(params)
    t0 = time.perf_counter()
    numpy.equilibrium(batch.x_t, None, None)
    out["numpy_free_solves_per_s"] = args.n / (time.perf_counter() - t0)

    # 1. solvers and one sweep, one core, in alternating child processes
    per_phase, one_sweep = _decks(spec, model, params, batch, 1)
    with tempfile.TemporaryDirectory(prefix="analogep-bench-") as tmp:
        folder, scripts = Path(tmp) / "decks", Path(tmp) / "scripts"
        folder.mkdir()
        scripts.mkdir()
        (scripts / "spinit").write_text("* analogep benchmark: no code models\n")
        for k, deck in enumerate(per_phase):
            (folder / f"per_phase_{k}_{_rows(deck)}.cir").write_text(deck)
        (folder / f"one_sweep_0_{_rows(one_sweep[0])}.cir").write_text(one_sweep[0])
        envs = [_ngspice_env(None, scripts)] + [_ngspice_env(p.resolve(), scripts) for p in args.ngspice]
        runs: list[list[dict]] = [[] for _ in envs]
        for rep in range(args.reps):
            for k, env in enumerate(envs):
                runs[k].append(_time_in_child(folder, env))
                print(f"rep {rep}: ngspice {runs[k][-1]['ngspice']}: " + ", ".join(
                    f"{kind} {runs[k][-1][kind]['cpu']:.2f} s CPU" for kind in ("per_phase", "one_sweep")), file=sys.stderr)
    out["solvers"] = []
    for rows in runs:
        entry = {"ngspice": rows[0]["ngspice"], "solver": "KLU" if rows[0]["klu"] else "Sparse 1.3"}
        for kind in ("per_phase", "one_sweep"):
            for clock in ("cpu", "wall"):
                entry[f"{kind}_{clock}_s_per_point_phase"] = statistics.median(r[kind][clock] for r in rows) / solves
            # the fastest rep: a shared machine's load only ever adds time
            entry[f"{kind}_best_cpu_s_per_point_phase"] = min(r[kind]["cpu"] for r in rows) / solves
        entry["one_sweep_over_per_phase"] = statistics.median(r["one_sweep"]["cpu"] / r["per_phase"]["cpu"] for r in rows)
        for kind in ("per_phase", "one_sweep"):
            entry[f"{kind}_iterations_per_point_phase"] = rows[0][kind]["iterations"] / solves
        out["solvers"].append(entry)
    if len(runs) > 1:
        out["first_over_others_cpu"] = [
            statistics.median(a["per_phase"]["cpu"] / b["per_phase"]["cpu"] for a, b in zip(runs[0], other)) for other in runs[1:]
        ]

    # 2. the local pool against the Dask runner, same one-sweep decks
    out["pools"] = []
    for w in args.workers:
        _, decks = _decks(spec, model, params, batch, w)
        pools = {"local": make_runner("shared", w), "dask": make_runner("dask", w)}
        times: dict[str, list[float]] = {name: [] for name in pools}
        # Seconds of a map beyond its slowest deck's own solve (measured inside the worker):
        # what the pool's transport costs, nearly free of the machine's load noise.
        extra: dict[str, list[float]] = {name: [] for name in pools}
        try:
            for pool in pools.values():
                pool.map(decks, 3600)  # start the workers and load ngspice
            for rep in range(args.reps):
                for name, pool in pools.items():
                    t0 = time.perf_counter()
                    results = pool.map(decks, 3600)
                    times[name].append(time.perf_counter() - t0)
                    assert sum(r.rows for r in results) == solves, [r.message for r in results]
                    slowest = max(r.seconds for r in results)
                    extra[name].append((times[name][-1] - slowest) / slowest)
                print(f"rep {rep}: {w} worker(s): " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), file=sys.stderr)
        finally:
            for pool in pools.values():
                pool.close()
        entry = {"workers": w}
        for name, t in times.items():
            entry[f"{name}_points_per_s"] = solves / statistics.median(t)
        entry["dask_overhead"] = statistics.median(d / lo for d, lo in zip(times["dask"], times["local"])) - 1.0
        for name in pools:
            entry[f"{name}_transport"] = statistics.median(extra[name])
        out["pools"].append(entry)
    out["load_end"] = os.getloadavg()[0]

    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['config']} {'-'.join(map(str, out['sizes']))}: {args.n} training points x {phases} phases, "
          f"{args.reps} reps (medians), {out['cores']} cores, load average {out['load_start']:.1f} -> {out['load_end']:.1f}")
    print("\n| ngspice | solver | per-phase sweeps: s/point/phase CPU (fastest rep) / wall, Newton iterations | one sweep: the same | one sweep / per-phase (CPU) |")
    print("|---|---|---|---|---|")
    for e in out["solvers"]:
        cells = [f"{e[k + '_cpu_s_per_point_phase']:.3f} ({e[k + '_best_cpu_s_per_point_phase']:.3f}) / {e[k + '_wall_s_per_point_phase']:.3f}, "
                 f"{e[k + '_iterations_per_point_phase']:.2f}" for k in ("per_phase", "one_sweep")]
        print(f"| {e['ngspice']} | {e['solver']} | {cells[0]} | {cells[1]} | {e['one_sweep_over_per_phase']:.2f} |")
    for other, ratio in zip(out["solvers"][1:], out.get("first_over_others_cpu", [])):
        print(f"\nngspice {out['solvers'][0]['ngspice']} / ngspice {other['ngspice']} (per-phase, CPU): {ratio:.3f}")
    if out["pools"]:
        print("\n| workers | local pool, points/s | dask, points/s | dask / local time - 1 | transport beyond the slowest solve: local, dask |")
        print("|---|---|---|---|---|")
        for e in out["pools"]:
            print(f"| {e['workers']} | {e['local_points_per_s']:.2f} | {e['dask_points_per_s']:.2f} | {100 * e['dask_overhead']:+.1f}% | "
                  f"{100 * e['local_transport']:.1f}%, {100 * e['dask_transport']:.1f}% |")
    print(f"\nnumpy ({spec.relax.solver}), free phase: {out['numpy_free_solves_per_s']:.0f} solves/s")


if __name__ == "__main__":
    main()
