"""The SPICE equilibrium backend: ngspice finds the circuit's DC operating points.

Implements the `EquilibriumBackend` contract (backends/base.py), so training, sampling,
the check and the measurement layer use it exactly as they use numpy relaxation; it
returns equilibria and computes no update. `program(params)` maps the parameters to
conductances, ideal or through the devices of spec.devices (devices/crossbar.py: both
crossbar copies, biases, drivers, the measurement chain; line resistance draws the
arrays as ladders), and compiles the crossbars once per parameter set
(devices/programmed.py). EP on SPICE-simulated analog networks: Kendall et
al. 2020, "Training End-to-End Analog Neural Networks with Equilibrium Propagation".

Per equilibrium call (a phase of a batch of training points, or a generation step):
1. a numpy warm start (block-coordinate relaxation, loose tolerance) picks the basin:
   a DC solve finds any fixed point, saddles included, and with an unbounded energy
   ngspice fails only after tens of seconds, so a diverging warm start is reported at
   once instead;
2. the phase's training points are split into one contiguous chunk per worker; each
   chunk is one `.dc` sweep over an index source with the anchors tabled as pwl
   functions of the index, the warm start of its first point as `.nodeset`. A training
   step's phases go into one sweep (`phases`): each point's free, +beta and -beta
   solutions follow each other, the nudge strength a pwl table of the index too, so a
   nudged solve starts from its own point's free solution and ngspice parses and orders
   the circuit once per chunk instead of once per phase: fewer Newton iterations and less
   time than three per-phase sweeps (docs/results/spice.md; benchmarks/spice_solves.py);
3. a point where the sweep stopped, or whose solution left the warm start's basin, is
   solved alone by `.op` from its own warm start (ngspice applies gmin and source
   stepping there); if that fails too, one line names the phase, the point and
   ngspice's message.
The residual of each returned equilibrium is numpy's max |dE/ds| at the SPICE node
voltages (on devices without an energy: its KCL residual; with line resistance, through
the wired arrays' effective conductances): a convergence certificate independent of ngspice. And each is checked to be a
minimum of the energy (model/curvature.py: the Hessian of the numpy model at the ngspice
point is positive definite): a DC solve is a root finder and can converge to a saddle,
where the physical circuit, which descends the energy, never settles. A point that is
not a minimum is solved again alone by `.op` from its warm start; if that is a saddle
too, one line names the phase, the point and the eigenvalue.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.backends.spring import Nudge, phase_spring
from analogep.spice.compiler import INTERLEAVED, build_netlist, programmed_crossbar, state_nodes
from analogep.devices.crossbar import Devices
from analogep.devices.programmed import Programmed, program
from analogep.spice.graph import check_graph
from analogep.spice.netlist import render
from analogep.spice.run.ngspice import RunResult, ngspice_info
from analogep.spice.run.runners import Pool, make_runner
from analogep.config.sections import RelaxSpec
from analogep.config.spec import Spec
from analogep.errors import AnalogepWarning, CircuitError
from analogep.model.curvature import not_minima, smallest_eigen
from analogep.model.energy import EnergyModel, Params, State
from analogep.model.field import LayeredField
from analogep.model.factory import build_energy
from analogep.model.tensors import max_abs
from analogep.solvers.base import Equilibrium, VisibleSpring, free_start, sample_max_abs, total_grad
from analogep.solvers.fast import FastSolver

# Warm start: cheap numpy relaxation that only has to land in the right basin.
WARM = FastSolver(max_sweeps=400, tol=1e-6, omega=1.4)
# A SPICE solution farther than this (max |dV|, volts) from its warm start left the basin.
BASIN_TOL = 1e-2
# Smallest chunk worth its own ngspice run (each run re-orders the matrix once).
MIN_CHUNK = 8
# A warm start is taken as diverging (the energy unbounded for these weights) when a unit
# passes UNBOUNDED_STATE, or passes DIVERGING_STATE while still far from equilibrium
# (residual above 1). Bounded states of the soft-clamped families stay within a few tens:
# a unit's equilibrium is s = rho'(s) c with |rho| <= clamp (10).
UNBOUNDED_STATE = 1e6
DIVERGING_STATE = 50.0
# Crossbar elements above which a wired circuit is slow in ngspice (a warning says so).
WIRED_SLOW = 100_000


@dataclasses.dataclass
class _Phase:
    """One phase of a batch as ngspice is asked for it: the deck's phase and anchors (float64,
    as the DACs apply them), the nudge strength (None: none), the spring its residual is taken
    with, the stiffness its minima are judged with, and the numpy warm start that picks the basin."""

    name: str
    anchors: dict[str, np.ndarray]
    beta: float | None
    spring: VisibleSpring | None
    stiffness: float
    warm: Equilibrium
    clamp_visible: bool = False


class SpiceBackend(EquilibriumBackend):
    """Equilibria from ngspice DC sweeps of the compiled circuit (method.md section 7).

    The backend is handed its runner (a pool of ngspice workers, spice/run/runners.py) and
    closes it in `close`. Each phase goes warm start (and its precheck), sweep, minimum
    check and residual; the phases of a training step are swept together."""

    def __init__(self, spec: Spec, model: EnergyModel, pool: Pool, devices: Devices | None = None):
        self.spec, self.model, self.pool = spec, model, pool
        self.devices = devices
        self.model64 = build_energy(dataclasses.replace(spec.model, dtype="float64"))
        self.klu = ngspice_info().klu
        self._rules_klu = self.model64.circuit_rules().klu  # the family's cells may rule KLU out
        self._checked: set[str] = set()
        self.drawn: Programmed | None = None
        self._realised: Params | None = None
        self._solver: LayeredField = self.model64
        self._crossbar = None

    @classmethod
    def from_spec(cls, spec: Spec, model: EnergyModel, *, runner: str | None = None, workers: int = 0) -> "SpiceBackend":
        """A backend with a pool of the named runner (default circuit.runner) on circuit.scheduler,
        on the devices of spec.devices (none when ideal)."""
        pool = make_runner(runner or spec.circuit.runner, workers, spec.circuit.scheduler, spec.circuit.connect_timeout)
        return cls(spec, model, pool, None if spec.devices.ideal else Devices(spec, model))

    @property
    def runner(self) -> str:
        return self.pool.runner

    @property
    def wire_resistance(self) -> float:
        return 0.0 if self.drawn is None else self.drawn.wire_resistance

    @property
    def clipped(self) -> dict[str, int]:
        """Weights the last `program` clipped to the conductance range, per parameter: by the
        ideal circuit (circuit.clip) or by the devices."""
        return {} if self.drawn is None else dict(self.drawn.clipped)

    # --- the contract ----------------------------------------------------------------------------

    def program(self, params: Params) -> Params:
        """Map the parameters to conductances (ideal: clipping counted in `clipped`; with
        devices: written through them, devices/crossbar.py) and compile the crossbars;
        returns the realised parameters in the model's dtype (with line resistance: the
        effective weights of the forward reads, devices/wires.py)."""
        first = self.drawn is None
        self.drawn = program(self.spec, self.model64, params, self.devices)
        self._realised, self._solver = self.drawn.params, self.drawn.solver
        self._crossbar = programmed_crossbar(self.drawn, self.model64)
        taps = sum(len(elements) for _, elements in self._crossbar)
        if first and self.drawn.wire_resistance > 0 and taps > WIRED_SLOW:
            warnings.warn(AnalogepWarning(
                f"devices.wire_resistance: the wired crossbars have {taps} elements; ngspice needs minutes per solve at "
                f"this size (the digits circuit: ~19 min per point on 2 cores)"
            ))
        return {k: v.astype(self.model.dtype) for k, v in self._realised.items()}

    def equilibrium(self, x_t: np.ndarray, nudge: Nudge | None, start: State | None) -> Equilibrium:
        x64 = self._dac(x_t)
        start64 = free_start(self.model64, x64) if start is None else [np.asarray(s, np.float64) for s in start]
        phase = self._training_phase(x64, self._dac_nudge(nudge), start64)
        state, _ = self._solve(phase)
        return self._settled(phase, state)

    def phases(self, x_t: np.ndarray, nudges: list[Nudge]) -> list[Equilibrium]:
        """The free equilibrium and, from it, one per nudge, in one sweep per chunk of
        training points: each point's phases follow each other (free, +beta, -beta), so
        a nudged phase starts from its own point's free solution and ngspice parses and
        orders the circuit once instead of once per phase."""
        x64 = self._dac(x_t)
        free = self._training_phase(x64, None, free_start(self.model64, x64))
        nudges64 = [self._dac_nudge(nd) for nd in nudges]
        together = [free] + [self._training_phase(x64, nd, free.warm.state) for nd in nudges64]
        return [self._settled(phase, state) for phase, state in zip(together, self._solve_together(together))]

    def clamped(self, x: np.ndarray, hidden: list[np.ndarray] | None) -> tuple[Equilibrium, np.ndarray]:
        """The inference circuit: the clamp currents over g0 equal -dE/dx (method.md 2, 7)."""
        x64 = self._dac(x)
        hidden = hidden if hidden is not None else self.model64.zeros_state(x.shape[0])[1:]
        start = [x64] + [np.asarray(h, np.float64) for h in hidden]
        phase = self._warmed("generate", {"xc": x64}, start, None, 0.0, clamp_visible=True)
        state, currents = self._solve(phase)
        eq = self._settled(phase, state, currents)
        de_dx = -currents / self.drawn.spec.circuit.g0
        readout = self.readout
        if readout is not None:
            de_dx = readout.read(de_dx)
        return eq, de_dx.astype(self.model.dtype)

    def condition(self, code: np.ndarray | None) -> None:
        """The level code of both the solved model and its float64 twin (warm starts, residuals,
        and the deck, whose level-bias current sources are drawn from it at each solve)."""
        self.model.condition(code)
        self.model64.condition(code)

    def close(self) -> None:
        self.pool.close()

    # --- a phase: warm start, solve, minimum check, residual -------------------------------------

    def _dac(self, x: np.ndarray) -> np.ndarray:
        """An anchor voltage as the circuit is given it (through the DAC with devices), float64."""
        readout = self.readout
        return np.asarray(x if readout is None else readout.dac(x), dtype=np.float64)

    def _dac_nudge(self, nudge: Nudge | None) -> Nudge | None:
        return None if nudge is None else Nudge(nudge.beta, self._dac(nudge.anchor))

    def _training_phase(self, x64: np.ndarray, nudge: Nudge | None, start: State) -> _Phase:
        """A GradEP phase: the spring lambda at x_t, plus `nudge` (None: the free phase)."""
        g = self.spec.gradep
        spring = phase_spring(g, x64, nudge)
        if nudge is None:
            return self._warmed("free", {"xt": x64}, start, spring, g.lam)
        stiffness = g.lam + nudge.beta * (g.alpha * g.lam) ** 2
        return self._warmed(_phase_name(nudge.beta), {"xt": x64, "a": nudge.anchor}, start, spring, stiffness, beta=nudge.beta)

    def _warmed(self, name: str, anchors: dict, start: State, spring: VisibleSpring | None, stiffness: float, *,
                beta: float | None = None, clamp_visible: bool = False) -> _Phase:
        """The phase with its numpy warm start, refused at once when that diverges."""
        warm = self._warm(start, spring, clamp_visible=clamp_visible)
        self._precheck(warm, name)
        return _Phase(name, anchors, beta, spring, stiffness, warm, clamp_visible)

    def _warm(self, start: State, spring, clamp_visible: bool) -> Equilibrium:
        """The numpy warm start (plain block descent with the visible units clamped or
        when the circuit has no energy, where over-relaxation can cycle; over-relaxed as
        WARM says otherwise)."""
        solver = dataclasses.replace(WARM, omega=1.0) if clamp_visible or not self.drawn.has_energy else WARM
        return solver.relax(self._solver, self._realised, start, spring, clamp_visible=clamp_visible)

    def _precheck(self, warm: Equilibrium, phase: str) -> None:
        size = max_abs(warm.state)
        if not np.isfinite(size) or size > UNBOUNDED_STATE or (warm.residual > 1.0 and size > DIVERGING_STATE):
            raise CircuitError(
                f"{phase} phase: the energy looks unbounded for these weights (numpy relaxation diverges, "
                f"max |s| = {size:.3g}); ngspice would fail slowly. Use smaller weights (model.init_gain) "
                f"or the soft_silu activation"
            )

    def _solve(self, phase: _Phase) -> tuple[State, np.ndarray]:
        """Node voltages and clamp currents (NaN unless the phase clamps) of every point of one phase."""
        return self._sweep(phase.name, phase.anchors, phase.warm.state, beta=phase.beta, want_clamp=phase.clamp_visible)

    def _solve_together(self, phases: list[_Phase]) -> list[State]:
        """Node voltages of every point of training phases of the same x_t, in one sweep
        (phase INTERLEAVED): point i, phase p is row i*k + p, the nudge strength tabled per row."""
        k = len(phases)
        x64 = phases[0].anchors["xt"]
        anchors = {"xt": np.repeat(x64, k, axis=0), "a": _interleave([p.anchors.get("a", x64) for p in phases])}
        betas = np.tile([0.0 if p.beta is None else p.beta for p in phases], x64.shape[0])
        start = [_interleave([p.warm.state[layer] for p in phases]) for layer in range(len(self.model.sizes))]
        state, _ = self._sweep(INTERLEAVED, anchors, start, betas=betas, group=k)
        return [[s[p::k].copy() for s in state] for p in range(k)]

    def _settled(self, phase: _Phase, state: State, currents: np.ndarray | None = None) -> Equilibrium:
        """The equilibrium of `state`, its saddles replaced (in place, `currents` too), with
        numpy's max |dE/ds| at the node voltages as its convergence certificate."""
        self._ensure_minima(phase, state, currents)
        residual = sample_max_abs(total_grad(self._solver, self._realised, state, phase.spring,
                                             clamp_visible=phase.clamp_visible))
        return Equilibrium([s.astype(self.model.dtype) for s in state], residual, 1)

    def _ensure_minima(self, phase: _Phase, state: State, currents: np.ndarray | None) -> None:
        """Replace (in place) each point that is not a minimum by an `.op` solve from its
        warm start; raise if that is not a minimum either. A circuit with no energy
        (mismatched copies, driver mismatch, line resistance) has no Hessian to judge by:
        its fixed points are taken as ngspice finds them from the warm start."""
        if not self.drawn.has_energy:
            return
        stiffness, clamp_visible = phase.stiffness, phase.clamp_visible
        bad, _ = not_minima(self.model64, self._realised, state, stiffness, clamp_visible)
        want_clamp = currents is not None
        for i in bad.tolist():
            point = {k: v[i:i + 1] for k, v in phase.anchors.items()}
            res = self._op(phase.name, point, [s[i:i + 1] for s in phase.warm.state], beta=phase.beta, want_clamp=want_clamp)
            if self._solved_rows(res, want_clamp, 1):
                voltages, clamp = _node_values(res.vectors, 0, state_nodes(self.model.sizes), want_clamp)
                if not not_minima(self.model64, self._realised, [v[None] for v in voltages], stiffness, clamp_visible)[0].size:
                    for layer, values in zip(state, voltages):
                        layer[i] = values
                    if want_clamp:
                        currents[i] = clamp
                    continue
            eig = smallest_eigen(self.model64, self._realised, [s[i:i + 1] for s in state], stiffness, clamp_visible)[0][0]
            raise CircuitError(
                f"ngspice's {phase.name} equilibrium at training point {i} of the batch is a saddle of the energy, not a "
                f"minimum (smallest Hessian eigenvalue {eig:.3g}), also when solved alone from its warm start; "
                f"the circuit would not settle there"
            )

    # --- ngspice runs: sweeps of chunks of points, and the points solved again ------------------

    def _sweep(self, phase: str, anchors: dict, warm: State, *, beta=None, want_clamp=False, betas=None,
               group=1) -> tuple[State, np.ndarray]:
        """Node voltages (and clamp currents) of every point of one phase, or with phase
        INTERLEAVED of every row (`group` rows per training point, kept together in
        order, `betas` the nudge strength of each row): one sweep per chunk of points,
        where a sweep stopped the rest of its chunk solved again, and each point that
        left its warm start's basin solved alone."""
        rows = _Rows(phase, anchors, warm, self.model.sizes, beta=beta, want_clamp=want_clamp, betas=betas, group=group)
        chunks = self._chunks(rows.points, group)
        results = self._run([self._sweep_deck(rows, a, b) for a, b in chunks])
        stopped = [(self._take(rows, a, b, res), b) for (a, b), res in zip(chunks, results)]
        self._finish_chunks(rows, [(a, b) for a, b in stopped if a < b])
        for i in rows.left_basin():
            self._solve_alone(rows, int(i))
        return rows.in_batch_order()

    def _chunks(self, points: int, group: int) -> list[tuple[int, int]]:
        """Row ranges of whole training points, one per worker, of at least MIN_CHUNK points
        where the batch has enough."""
        k = max(1, min(self.pool.workers, -(-points // MIN_CHUNK)))
        bounds = np.linspace(0, points, k + 1).round().astype(int) * group
        return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _finish_chunks(self, rows: "_Rows", pending: list[tuple[int, int]]) -> None:
        """Rows a..b-1 where a sweep stopped: row a solved alone, then the rest of the chunk
        in one more sweep from the next row, as often as sweeps stop (the last stop first)."""
        while pending:
            a, b = pending.pop()
            self._solve_alone(rows, a)
            if a + 1 < b:
                rest = self._take(rows, a + 1, b, self._run([self._sweep_deck(rows, a + 1, b)])[0])
                if rest < b:
                    pending.append((rest, b))

    def _take(self, rows: "_Rows", a: int, b: int, res: RunResult) -> int:
        """Store the rows that a sweep over rows a..b-1 solved (it may have stopped early);
        returns the first row it did not solve (b: none)."""
        solved = self._solved_rows(res, rows.want_clamp, b - a)
        for r in range(solved):
            rows.store(a + r, res.vectors, r)
        return a + solved

    def _solve_alone(self, rows: "_Rows", i: int) -> None:
        """Row i by .op from its own warm start (ngspice's gmin and source stepping apply);
        an interleaved row by the deck of its own phase."""
        phase, beta, anchors = rows.phase_of(i)
        res = self._op(phase, anchors, rows.warm_of(i), beta=beta, want_clamp=rows.want_clamp)
        if not self._solved_rows(res, rows.want_clamp, 1):
            msg = res.message or "no solution"
            raise CircuitError(f"ngspice could not solve the {phase} phase at training point {rows.point(i)} of the batch: {msg}")
        rows.store(i, res.vectors, 0)

    def _sweep_deck(self, rows: "_Rows", a: int, b: int) -> str:
        """The `.dc` sweep over rows a..b-1, the warm start of row a as its `.nodeset`."""
        return self._deck(rows.phase, rows.anchors_of(a, b), rows.warm_of(a), sweep=True, beta=rows.beta,
                          want_clamp=rows.want_clamp, betas=rows.betas_of(a, b))

    def _op(self, phase: str, anchors: dict, warm: State, *, beta, want_clamp: bool) -> RunResult:
        """One point's `.op` run from its own warm start."""
        return self._run([self._deck(phase, anchors, warm, sweep=False, beta=beta, want_clamp=want_clamp)])[0]

    def _run(self, decks: list[str]) -> list[RunResult]:
        return self.pool.map(decks, self.spec.circuit.timeout)

    def _solved_rows(self, res: RunResult, want_clamp: bool, limit: int) -> int:
        """How many rows (at most `limit`) a run solved: none when it lacks a vector."""
        names = state_nodes(self.model.sizes)
        need = [nm for layer in names for nm in layer]
        complete = all(nm in res.vectors for nm in need) and (not want_clamp or "vclamp0#branch" in res.vectors)
        return min(res.rows, limit) if complete else 0

    def _deck(self, phase, anchors, nodeset, *, sweep, beta, want_clamp, betas=None) -> str:
        net = build_netlist(
            self.drawn.spec, self.model64, self._realised, phase, anchors, sweep=sweep, nodeset=nodeset, beta=beta,
            crossbar=self._crossbar, betas=betas, drivers=self.drawn.drivers,
        )
        if self.klu and self._rules_klu:
            net.options["klu"] = None
        names = [n for layer in state_nodes(self.model.sizes) for n in layer]
        net.saves = [f"v({n})" for n in names]
        if want_clamp:
            net.saves += [f"i(vclamp{i})" for i in range(self.model.sizes[0])]
        deck = render(net, include=None)  # self-contained: runs on any host
        if phase not in self._checked:
            check_graph(deck, f"{phase} circuit")
            self._checked.add(phase)
        return deck


class _Rows:
    """The rows of one solve in sweep order, and the node voltages found for them so far.

    The training points are in chain order (consecutive points close, so that each Newton
    iteration of a sweep starts near its answer), the `group` rows of a point together."""

    def __init__(self, phase: str, anchors: dict, warm: State, sizes: tuple[int, ...], *, beta, want_clamp: bool,
                 betas, group: int):
        points = chain_order([w[::group] for w in warm])
        self.order = (points[:, None] * group + np.arange(group)).ravel()
        self.phase, self.beta, self.want_clamp, self.group = phase, beta, want_clamp, group
        self.anchors = {k: v[self.order] for k, v in anchors.items()}
        self.warm = [w[self.order] for w in warm]
        self.betas = None if betas is None else np.asarray(betas)[self.order]
        self.names = state_nodes(sizes)
        n = warm[0].shape[0]
        self.state = [np.full((n, k), np.nan) for k in sizes]
        self.currents = np.full((n, sizes[0]), np.nan)

    @property
    def points(self) -> int:
        return self.state[0].shape[0] // self.group

    def point(self, i: int) -> int:
        """The training point of row i, as the batch numbers it."""
        return self.order[i] // self.group

    def anchors_of(self, a: int, b: int) -> dict:
        return {k: v[a:b] for k, v in self.anchors.items()}

    def warm_of(self, i: int) -> State:
        return [s[i:i + 1] for s in self.warm]

    def betas_of(self, a: int, b: int) -> np.ndarray | None:
        return None if self.betas is None else self.betas[a:b]

    def phase_of(self, i: int) -> tuple[str, float | None, dict]:
        """Row i's own phase, nudge strength and anchors (an interleaved row's, by its beta)."""
        anchors = self.anchors_of(i, i + 1)
        if self.betas is None:
            return self.phase, self.beta, anchors
        beta = self.betas[i]
        return _phase_name(beta), None if beta == 0 else float(beta), anchors if beta else {"xt": anchors["xt"]}

    def store(self, i: int, vectors: dict, row: int) -> None:
        """Row `row` of an ngspice run's vectors as row i's solution."""
        voltages, clamp = _node_values(vectors, row, self.names, self.want_clamp)
        for layer, values in zip(self.state, voltages):
            layer[i] = values
        if self.want_clamp:
            self.currents[i] = clamp

    def left_basin(self) -> np.ndarray:
        """Rows whose solution is farther than BASIN_TOL from their warm start (the clamped
        visible units of the generate phase aside: they are its anchors)."""
        layers = slice(1, None) if self.phase == "generate" else slice(None)
        far = np.zeros(len(self.order), dtype=bool)
        for s, w in zip(self.state[layers], self.warm[layers]):
            far |= np.max(np.abs(s - w), axis=1) > BASIN_TOL
        return np.flatnonzero(far)

    def in_batch_order(self) -> tuple[State, np.ndarray]:
        back = np.argsort(self.order)
        return [s[back] for s in self.state], self.currents[back]


def _node_values(vectors: dict, row: int, names: list[list[str]], want_clamp: bool) -> tuple[State, np.ndarray | None]:
    """Row `row` of an ngspice run's vectors: the node voltages per layer (`names` its nodes),
    and the clamp currents when asked for."""
    voltages = [np.array([vectors[nm][row] for nm in layer]) for layer in names]
    clamp = np.array([vectors[f"vclamp{j}#branch"][row] for j in range(len(names[0]))]) if want_clamp else None
    return voltages, clamp


def _interleave(arrays: list[np.ndarray]) -> np.ndarray:
    """Rows of several (points, n) arrays taken in turn: point 0 of each, point 1 of each, ..."""
    return np.stack(arrays, axis=1).reshape(-1, arrays[0].shape[1])


def _phase_name(beta: float) -> str:
    """The phase a signed nudge strength belongs to (0: free)."""
    return "free" if beta == 0 else ("nudge_plus" if beta > 0 else "nudge_minus")


def chain_order(warm: State) -> np.ndarray:
    """Order the points so that consecutive ones are close (greedy nearest-neighbour chain).

    A sweep starts each point's Newton iteration from the previous point's solution, so
    the closer consecutive points are, the fewer iterations each needs
    (docs/results/spice.md).
    """
    s = np.concatenate([np.asarray(w, dtype=np.float64) for w in warm], axis=1)
    n = s.shape[0]
    sq = np.sum(s * s, axis=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * (s @ s.T)
    order = np.empty(n, dtype=int)
    free = np.ones(n, dtype=bool)
    order[0], free[0] = 0, False
    for k in range(1, n):
        row = np.where(free, dist[order[k - 1]], np.inf)
        order[k] = int(np.argmin(row))
        free[order[k]] = False
    return order
