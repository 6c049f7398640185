"""The dask runner: ngspice on the workers of a real distributed.LocalCluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.ep.phases import run_phases
from analogep.model.factory import build_energy
from analogep.objectives.flow import sample_flow_batch

pytestmark = pytest.mark.spice
TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"


def _needs_dask_and_ngspice():
    pytest.importorskip("distributed")
    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed")


def _kill_when_busy(client, stop: threading.Event, killed: list) -> None:
    """SIGKILL one worker process (started by this test's cluster) once it holds a deck."""
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    while not stop.is_set():
        if client.processing().get(victim):
            time.sleep(0.05)  # let it start the sweep
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)
            return
        time.sleep(0.005)


def test_a_worker_killed_mid_sweep_leaves_the_step_as_the_local_runner_computes_it():
    from analogep.backends.spice_backend import SpiceBackend

    _needs_dask_and_ngspice()
    spec = load_spec(TINY)
    model = build_energy(spec.model)
    params = model.init_params(np.random.default_rng(spec.model.seed))
    batch = sample_flow_batch(load_dataset(dtype=model.dtype), 64, np.random.default_rng(5), True)

    local = SpiceBackend.from_spec(spec, model, runner="shared", workers=2)
    try:
        local.program(params)
        want = run_phases(local, batch.x_t, batch.target, spec.gradep)
    finally:
        local.close()

    backend = SpiceBackend.from_spec(spec, model, runner="dask", workers=2)
    stop, killed = threading.Event(), []
    try:
        assert backend.pool.workers == 2
        backend.program(params)
        pool_map, answers = backend.pool.map, []
        backend.pool.map = lambda decks, timeout: answers.append(pool_map(decks, timeout)) or answers[-1]
        killer = threading.Thread(target=_kill_when_busy, args=(backend.pool.client, stop, killed), daemon=True)
        killer.start()
        got = run_phases(backend, batch.x_t, batch.target, spec.gradep)
        stop.set()
        killer.join()
    finally:
        stop.set()
        backend.close()
    assert killed, "no worker was killed while it held a deck"
    # The killed worker's chunk was run again elsewhere: one complete map (one sweep of all
    # phases per chunk), no point left for the backend's one-point fallback.
    assert [[r.rows for r in a] for a in answers] == [[96, 96]]
    for g, w in zip(got.all, want.all):
        for a, b in zip(g.state, w.state):
            np.testing.assert_array_equal(a, b)


def test_an_unreachable_scheduler_is_one_line_with_exit_2(tmp_path):
    from click.testing import CliRunner

    from analogep.cli.app import main

    _needs_dask_and_ngspice()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    res = CliRunner().invoke(main, ["check", str(TINY), "--n", "2", "--scheduler", address, "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and address in line and line.startswith("error:")


def test_a_cluster_needs_a_runner_that_runs_on_one():
    from analogep.spice.run.ngspice import NgspiceError
    from analogep.spice.run.runners import choose_runner, make_runner

    _needs_dask_and_ngspice()
    assert choose_runner("auto") != "dask"
    assert choose_runner("auto", "tcp://127.0.0.1:8786") == "dask"
    with pytest.raises(NgspiceError, match="circuit.scheduler"):
        make_runner("shared", 1, "tcp://127.0.0.1:8786")
