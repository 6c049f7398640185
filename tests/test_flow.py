"""Flow matching with exact minibatch OT coupling (method.md section 4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from analogep.data import load_dataset
from analogep.objectives.flow import FlowBatchStream, ot_pairing, sample_flow_batch


def cost(x0: np.ndarray, x1: np.ndarray, perm) -> float:
    """Total squared Euclidean cost of pairing x0[i] with x1[perm[i]]."""
    return float(np.sum((x0.astype(np.float64) - x1[np.asarray(perm)].astype(np.float64)) ** 2))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ot_pairing_is_the_brute_force_optimum(n, seed):
    rng = np.random.default_rng(100 * n + seed)
    x0, x1 = rng.standard_normal((n, 5)), rng.standard_normal((n, 5))
    perm = ot_pairing(x0, x1)
    assert sorted(perm.tolist()) == list(range(n))  # a permutation
    best = min(cost(x0, x1, p) for p in itertools.permutations(range(n)))
    assert cost(x0, x1, perm) == pytest.approx(best, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n, dim", [(10, 64), (40, 8), (64, 2)])
def test_ot_pairing_matches_the_assignment_on_the_explicit_cost(n, dim):
    rng = np.random.default_rng(n)
    x0 = rng.standard_normal((n, dim)).astype(np.float32)
    x1 = rng.uniform(-1, 1, (n, dim)).astype(np.float32)
    perm = ot_pairing(x0, x1)
    explicit = np.sum((x0[:, None, :].astype(np.float64) - x1[None, :, :].astype(np.float64)) ** 2, axis=2)
    rows, cols = linear_sum_assignment(explicit)
    assert np.array_equal(rows, np.arange(n))
    assert cost(x0, x1, perm) == pytest.approx(cost(x0, x1, cols), rel=1e-12)
    # random pairings are worse: the plan is not the identity by accident
    assert cost(x0, x1, perm) < cost(x0, x1, np.arange(n))


def test_ot_pairing_is_not_fooled_by_different_norms():
    """The dot-product trick is only valid because norms add a constant per complete plan."""
    x0 = np.array([[0.0, 0.0], [10.0, 0.0]])
    x1 = np.array([[9.0, 0.0], [100.0, 0.0]])  # a large-norm point that maximal dot alone would grab
    perm = ot_pairing(x0, x1)
    assert cost(x0, x1, perm) == min(cost(x0, x1, p) for p in itertools.permutations(range(2)))


@pytest.fixture(scope="module")
def data():
    return load_dataset(dtype=np.float32)


@pytest.mark.parametrize("ot", [True, False])
def test_sample_flow_batch_shapes_interpolation_and_target(data, ot):
    b = sample_flow_batch(data, 32, np.random.default_rng(0), ot=ot)
    assert b.x0.shape == b.x1.shape == b.x_t.shape == b.u.shape == (32, 64)
    assert b.t.shape == (32, 1)
    for a in (b.x0, b.x1, b.t, b.x_t, b.u):
        assert a.dtype == np.float32
    assert np.all((b.t >= 0) & (b.t < 1))
    np.testing.assert_allclose(b.x_t, (1 - b.t) * b.x0 + b.t * b.x1, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(b.u, b.x1 - b.x0)
    # every x1 is a distinct training image (drawn without replacement)
    rows = {r.tobytes() for r in data}
    assert all(r.tobytes() in rows for r in b.x1)
    assert len({r.tobytes() for r in b.x1}) == 32
    assert abs(float(b.x0.mean())) < 0.1 and abs(float(b.x0.std()) - 1) < 0.1  # noise is N(0, I)


def test_full_batch_uses_every_image(data):
    b = sample_flow_batch(data, 5000, np.random.default_rng(0), ot=False)
    assert b.x1.shape == data.shape
    np.testing.assert_array_equal(b.x1, data)  # no OT: data in its own order


def test_same_seed_same_batch_other_seed_other_batch(data):
    a = sample_flow_batch(data, 16, np.random.default_rng(7), ot=True)
    b = sample_flow_batch(data, 16, np.random.default_rng(7), ot=True)
    c = sample_flow_batch(data, 16, np.random.default_rng(8), ot=True)
    for name in ("x0", "x1", "t", "x_t", "u"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x0, c.x0)


def test_ot_coupling_only_reorders_the_data_and_lowers_the_transport_cost(data):
    """With the same seed, ot on/off draw the same noise, data and times; OT re-pairs them."""
    on = sample_flow_batch(data, 24, np.random.default_rng(3), ot=True)
    off = sample_flow_batch(data, 24, np.random.default_rng(3), ot=False)
    np.testing.assert_array_equal(on.x0, off.x0)
    np.testing.assert_array_equal(on.t, off.t)
    assert sorted(r.tobytes() for r in on.x1) == sorted(r.tobytes() for r in off.x1)
    ident = np.arange(24)
    assert cost(on.x0, on.x1, ident) < cost(off.x0, off.x1, ident)
    # and it is the optimal plan for that noise
    perm = ot_pairing(off.x0, off.x1)
    assert cost(on.x0, on.x1, ident) == pytest.approx(cost(off.x0, off.x1, perm), rel=1e-6)


@pytest.mark.parametrize("ot", [True, False])
def test_prefetching_stream_hands_out_the_sequential_batches(data, ot):
    """FlowBatchStream pairs the next batch in a worker thread; the batches must be exactly
    those of sample_flow_batch called in sequence, and rng_state must resume after them."""
    rng_seq = np.random.default_rng(11)
    expected = [sample_flow_batch(data, 16, rng_seq, ot=ot) for _ in range(4)]
    stream = FlowBatchStream(data, 16, np.random.default_rng(11), ot, remaining=4)
    try:
        got, states = [], []
        for _ in range(4):
            got.append(stream.next())
            states.append(stream.rng_state)
        with pytest.raises(StopIteration):
            stream.next()
    finally:
        stream.close()
    for a, b in zip(got, expected):
        for name in ("x0", "x1", "t", "x_t", "u"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # resuming from the state saved after batch 2 gives batches 3 and 4
    rng = np.random.default_rng()
    rng.bit_generator.state = states[1]
    resumed = FlowBatchStream(data, 16, rng, ot, remaining=2)
    try:
        for b in expected[2:]:
            np.testing.assert_array_equal(resumed.next().x_t, b.x_t)
    finally:
        resumed.close()
