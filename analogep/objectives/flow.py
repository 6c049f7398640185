"""Flow matching with minibatch optimal-transport coupling (method.md section 4).

Lipman et al. 2023 (conditional flow matching): x_t = (1 - t) x0 + t x1, target
u = x1 - x0. Tong et al. 2024: pair noise and data by the exact OT plan of the batch,
which for equal uniform batches is an assignment problem (scipy's
linear_sum_assignment, Crouse 2016).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from analogep.backends.base import EquilibriumBackend
from analogep.config.sections import GenerateSpec, GradEPSpec
from analogep.config.spec import Spec
from analogep.model.energy import EnergyModel
from analogep.objectives.flow_sampling import generate
from analogep.objectives.flow_time import TimeCode, time_condition


@dataclass
class FlowBatch:
    """One batch of flow-matching training points."""

    x0: np.ndarray  # noise
    x1: np.ndarray  # data, reordered by the coupling
    t: np.ndarray  # (batch, 1)
    x_t: np.ndarray
    u: np.ndarray  # target velocity x1 - x0
    level: np.ndarray | None = None  # (batch,) time level of each point (train.time_conditioning: time-bias)
    codes: np.ndarray | None = None  # (levels, K) the time codes, when the energy depends on t

    def groups(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """(time code, rows) per time level present, in level order; None for a
        time-independent energy (one pass, ep/levels.py)."""
        if self.codes is None:
            return None
        return [(self.codes[i], np.flatnonzero(self.level == i)) for i in np.unique(self.level)]

    def subset(self, rows: np.ndarray) -> "FlowBatch":
        """The batch of some of its points."""
        return FlowBatch(self.x0[rows], self.x1[rows], self.t[rows], self.x_t[rows], self.u[rows],
                         None if self.level is None else self.level[rows], self.codes)

    @property
    def target(self) -> np.ndarray:
        """What the spring read-out should produce: the velocity u."""
        return self.u

    @property
    def weight(self) -> None:
        """Every point counts alike in the flow-matching loss."""
        return None


def ot_pairing(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Column order of x1 minimising sum_i |x0_i - x1_perm(i)|^2 (exact assignment).

    |a - b|^2 = |a|^2 + |b|^2 - 2 a.b and the norms add a constant to every complete
    assignment, so maximising sum a.b gives the same plan with one matrix product.
    Subtracting a constant from a row or a column also shifts every complete assignment
    equally, so the cost is reduced first (row maxima, then column minima: the Hungarian
    method's start). Same plan, and scipy's solver finds it faster from there; rows
    first, since columns first is slower than no reduction (docs/results/speed.md).
    """
    cost = x0.astype(np.float64) @ x1.astype(np.float64).T
    np.subtract(cost.max(axis=1, keepdims=True), cost, out=cost)
    cost -= cost.min(axis=0, keepdims=True)
    _, cols = linear_sum_assignment(cost)
    return cols


def _draw(
    data: np.ndarray, batch: int, rng: np.random.Generator, time: TimeCode | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Every random draw of one batch, in a fixed order: data subset, noise, times (t ~ U[0, 1];
    with a time code, a level per point, uniform over its grid)."""
    n = data.shape[0]
    x1 = data if batch >= n else data[rng.choice(n, size=batch, replace=False)]
    x0 = rng.standard_normal(x1.shape).astype(data.dtype)
    if time is None:
        return x0, x1, rng.random((x1.shape[0], 1)).astype(data.dtype), None
    level = rng.integers(0, time.levels, size=x1.shape[0])
    return x0, x1, time.grid[level][:, None].astype(data.dtype), level


def _assemble(x0: np.ndarray, x1: np.ndarray, t: np.ndarray, level: np.ndarray | None, ot: bool,
              codes: np.ndarray | None = None) -> FlowBatch:
    if ot:
        x1 = x1[ot_pairing(x0, x1)]
    return FlowBatch(x0=x0, x1=x1, t=t, x_t=(1 - t) * x0 + t * x1, u=x1 - x0, level=level, codes=codes)


def sample_flow_batch(
    data: np.ndarray, batch: int, rng: np.random.Generator, ot: bool, time: TimeCode | None = None
) -> FlowBatch:
    """Draw data (the whole set when batch >= N), noise and times; couple; interpolate."""
    return _assemble(*_draw(data, batch, rng, time), ot, None if time is None else time.codes)


class FlowBatchStream:
    """The training batches, with the OT pairing of the next batch computed in a worker
    thread while the current step relaxes (scipy's assignment solver releases the GIL).

    The pairing depends only on the random draws, never on the parameters, so the
    batches are exactly those of sample_flow_batch called in sequence. `rng_state` is the
    generator's state after the draws of the last batch handed out: a checkpoint that
    stores it resumes with the next batch.
    """

    def __init__(self, data: np.ndarray, batch: int, rng: np.random.Generator, ot: bool, remaining: int,
                 time: TimeCode | None = None):
        self.data, self.batch, self.rng, self.ot, self.remaining = data, batch, rng, ot, remaining
        self.time, self.codes = time, None if time is None else time.codes
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ot") if ot else None
        self._pending: tuple[Future | FlowBatch, dict] | None = None
        self.rng_state = rng.bit_generator.state
        self._prefetch()

    def _prefetch(self) -> None:
        if self.remaining <= 0:
            self._pending = None
            return
        self.remaining -= 1
        draws = _draw(self.data, self.batch, self.rng, self.time)
        state = self.rng.bit_generator.state
        if self._pool is None:
            self._pending = (_assemble(*draws, self.ot, self.codes), state)
        else:
            self._pending = (self._pool.submit(_assemble, *draws, self.ot, self.codes), state)

    def next(self) -> FlowBatch:
        if self._pending is None:
            raise StopIteration("no batches left")
        item, self.rng_state = self._pending
        batch = item.result() if isinstance(item, Future) else item
        self._prefetch()
        return batch

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)




def flow_loss(v: np.ndarray, u: np.ndarray) -> float:
    """Mean over batch and pixels of (v - u)^2 (the gradient is of 1/2 sum over pixels)."""
    return float(np.mean(np.square(v - u, dtype=np.float64)))


class FlowMatching:
    """The flow-matching objective of FlowEqProp (Gower 2026; method.md sections 4 and 5):
    batches of (x_t, u) with exact minibatch OT coupling, the loss mean (v - u)^2, and
    generation by Euler integration of the learned velocity."""

    name = "flow"
    label = "flow-matching"
    kind = "flow-matching"
    # Its settings: train.ot_coupling pairs the batches; generate.t1 and generate.dt steer
    # its sampler, and `analogep sample --t1/--dt` sets them.
    sampler_options = {"t1": "generate.t1", "dt": "generate.dt"}
    sampling = "Euler integration (--t1, --dt)"
    sampler_choice = None

    def __init__(self, gradep: GradEPSpec, ot: bool, batch_size: int, time: TimeCode | None = None):
        self.gradep, self.ot, self.batch_size, self.time = gradep, ot, batch_size, time

    @classmethod
    def from_spec(cls, spec: Spec) -> "FlowMatching":
        return cls(spec.gradep, spec.train.ot_coupling, spec.train.batch, TimeCode.from_train(spec.train))

    def batches(self, data: np.ndarray, rng: np.random.Generator, remaining: int) -> FlowBatchStream:
        return FlowBatchStream(data, self.batch_size, rng, self.ot, remaining, self.time)

    def batch(self, data: np.ndarray, size: int, rng: np.random.Generator) -> FlowBatch:
        return sample_flow_batch(data, size, rng, self.ot, self.time)

    def loss(self, readout: np.ndarray, batch: FlowBatch) -> float:
        return flow_loss(readout, batch.u)

    def sample(
        self,
        model: EnergyModel,
        backend: EquilibriumBackend,
        generate_spec: GenerateSpec,
        on_step: Callable[[int, int], None] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        g = generate_spec
        return generate(
            model, backend, self.gradep, n=g.n, t1=g.t1, dt=g.dt, mode=g.mode, seed=g.seed, on_step=on_step, out=out,
            condition=time_condition(self.time, backend),
        )

    def sampler_label(self, generate_spec: GenerateSpec, *, run: bool = False) -> str:
        """End time, time step and read-out; a finished run's title leaves out the step."""
        g = generate_spec
        return f"t1={g.t1}, {g.mode}" if run else f"t1={g.t1}, dt={g.dt}, {g.mode}"

    def sampler_summary(self, generate_spec: GenerateSpec) -> dict:
        return {"t1": generate_spec.t1, "dt": generate_spec.dt}
