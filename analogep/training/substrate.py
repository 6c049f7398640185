"""Learning on the substrate (train.update: substrate): the crossbar devices write EP's update
with their own pulses, per training point or per small group, with no float accumulator and no
optimizer.

EP's update of a coupling W (post x pre) is local: dW = lr / (B span) [post+ pre+^T - post- pre-^T]
per point (span = 2 beta for the symmetric phases; the one-sided form uses the free phase and
beta). It is written by stochastic pulse coincidence (Gokmen & Vlasov 2016, Front. Neurosci.
10, 333; aihwkit's STOCHASTIC_COMPRESSED with bit length BL): each row (pre) driver fires BL
pulse slots with probability C_x |x_i|, each column (post) driver with C_d |d_j|; a device
takes one pulse step (one programming level, dw_min = step / g0 in weight units) in each slot
where both fire, up or down by the sign of x_i d_j. The expected change is
BL C_x C_d dw_min x_i d_j, so C_x C_d = eta / (BL dw_min); the two scales are balanced per
point by the rows' and columns' largest activities (aihwkit's update management), so their
largest probabilities are equal, and clipped at 1 (counted: `p_sat`).

Two ways to form the difference of the phases' products (`train.substrate.difference`):

- `two_trains`: the +beta product as one coincidence pass that potentiates and the -beta
  product as one that depresses. Each product is ~1/(2 beta) times the update, so the pulse
  noise of both passes lands on the devices and the difference drowns in it.
- `held` (default): the -beta phase's row and column activities held on sample-and-hold
  capacitors; the drivers then encode differences and sums, and two passes write
  x+ d+ - x- d- = [(x+ - x-)(d+ + d-) + (x+ + x-)(d+ - d-)] / 2 exactly, each with one small
  factor that update management amplifies into the pulse range. Circuitry: per neuron of
  every crossbar edge, one hold capacitor and a difference/sum stage before its pulse driver.

The devices: each weight is a differential pair kept in canonical form (one device of the
pair at gmin; a net step moves the other, so one pulse is one level of the weight), through
the devices' own levels, window edges, write noise per pulse (each of the pulses fired at a
device, net or not), stuck faults and gain spread (devices/crossbar.py applies those when it
realises). A group's pulses are summed before they are applied (the same levels as applying
them one by one, except at a window edge). Biases (current sources b g0 from DACs) learn in
a small digital register per neuron: per point b += lr / (B span) (a+ - a-), counted
(`bias_adds`). The pulse streams are seeded (train.substrate.seed) and part of the
checkpoint, so a resumed run is bit-exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.spec import Spec
from analogep.devices.crossbar import Devices
from analogep.ep.step import StepResult, gradep_step
from analogep.errors import CheckpointError
from analogep.model.energy import EnergyModel, Params


def slice_batch(batch, index: np.ndarray):
    """The training points `index` of a batch (every array field with one row per point)."""
    n = batch.x_t.shape[0]
    changes = {f.name: getattr(batch, f.name)[index] for f in dataclasses.fields(batch)
               if isinstance(getattr(batch, f.name), np.ndarray) and getattr(batch, f.name).shape[:1] == (n,)}
    return dataclasses.replace(batch, **changes)


def activities(model: EnergyModel, state) -> list[np.ndarray]:
    """Each layer's activity at an equilibrium (the state itself on a linear layer): what
    its row and column pulse drivers encode."""
    out = []
    for layer, s in enumerate(state):
        a = model.activity(layer, s, 0)
        out.append(np.asarray(s if a is None else a[0], np.float64))
    return out


PASSES = 2  # coincidence passes per point, in either difference scheme (`coincidence_passes`)


def coincidence_passes(model: EnergyModel, phases, difference: str) -> tuple[list[tuple[int, list, list]], float]:
    """Per coincidence pass: (sign, the row factor's activities per layer, the column
    factor's), and the span of the EP difference (2 beta, or beta for the one-sided form).
    `two_trains`: (+1, plus, plus), (-1, other, other); `held`: the difference and the mean
    of the phases, (+1, dx, mean), (+1, mean, dd), whose products add up to
    x+ d+ - x- d- exactly."""
    plus = activities(model, phases.plus.state)
    if phases.minus is not None:
        other, span = activities(model, phases.minus.state), 2.0 * phases.beta
    else:
        other, span = activities(model, phases.free.state), phases.beta
    if difference == "two_trains":
        return [(1, plus, plus), (-1, other, other)], span
    diff = [a - b for a, b in zip(plus, other)]
    mean = [(a + b) / 2 for a, b in zip(plus, other)]
    return [(1, diff, mean), (1, mean, diff)], span


def pulse_probabilities(x: np.ndarray, d: np.ndarray, eta: np.ndarray, bl: int, dw: float):
    """Row (x: points x pre) and column (d: points x post) firing probabilities of one pass
    so that the expected change BL p_x p_d dw is eta x d per point, the two scales balanced
    by each point's largest row and column activity (aihwkit's update management), clipped
    at 1; and how many were clipped."""
    mx, md = np.abs(x).max(axis=1), np.abs(d).max(axis=1)
    live = (mx > 0) & (md > 0)
    k = eta / (bl * dw)  # C_x C_d per point
    safe_x, safe_d = np.where(live, mx, 1.0), np.where(live, md, 1.0)
    cx = np.where(live, np.sqrt(k * safe_d / safe_x), 0.0)
    cd = np.where(live, np.sqrt(k * safe_x / safe_d), 0.0)
    px, pd = cx[:, None] * np.abs(x), cd[:, None] * np.abs(d)
    saturated = int(np.count_nonzero(px > 1) + np.count_nonzero(pd > 1))
    return np.minimum(px, 1.0), np.minimum(pd, 1.0), saturated


def new_counts() -> dict:
    """A step's counts, at zero: pulses fired (device, drive, coincidences), probabilities
    (clipped, all), bias additions, points kept; and from the probabilities, the expected
    coincidences, their variance over the draws and the cells charged by driver pulses
    (what the energy accounting prices, accounting/substrate.py)."""
    return {"device_pulses": 0, "drive_pulses": 0, "coincidence_slots": 0, "p_sat": 0, "p_count": 0, "bias_adds": 0,
            "kept": 0, "expected_coincidences": 0.0, "coincidence_variance": 0.0, "expected_line_cells": 0.0}


class SubstrateUpdate:
    """Writes each group's EP update onto `devices` by stochastic pulse coincidence."""

    def __init__(self, spec: Spec, model: EnergyModel, devices: Devices):
        self.spec, self.model, self.devices = spec, model, devices
        self.s = spec.train.substrate
        self.rng = np.random.default_rng(np.random.SeedSequence([self.s.seed, 19]))
        rules = model.circuit_rules()
        self.couplings = list(rules.couplings)  # (name, pre layer, post layer)
        self.biases = list(rules.biases)  # (name, layer)
        self.top = devices.d.levels - 1
        self.last_counts: dict = {}  # the last step's counts (`step`)

    # --- checkpoint -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"pulse_rng": self.rng.bit_generator.state}

    def load_state_dict(self, meta: dict | None, where: str) -> None:
        if meta is None or "pulse_rng" not in meta:
            raise CheckpointError(f"{where}: holds no pulse stream of train.update: substrate (trained with the digital rule)")
        self.rng.bit_generator.state = meta["pulse_rng"]

    # --- one training step ----------------------------------------------------------------------

    def step(self, backend: EquilibriumBackend, params: Params, batch, objective, gradep, trust) -> StepResult:
        """The phases of each group on the devices as the previous groups left them, each
        group's pulses written before the next group's phases; `params` follows the devices
        (couplings: their levels; biases: the registers). The result's `grad` is the batch's
        EP gradient as measured group by group (for the record and the cosine)."""
        n = batch.x_t.shape[0]
        g = self.s.group_size
        v = np.zeros_like(batch.x_t)
        total_ideal = {name: np.zeros(params[name].shape) for name, _, _ in self.couplings}
        total_real = {name: np.zeros(params[name].shape) for name, _, _ in self.couplings}
        total_expected = {name: np.zeros(params[name].shape) for name, _, _ in self.couplings}
        grad_sum = {k: np.zeros(p.shape) for k, p in params.items()}
        counts = new_counts()
        self.last_counts = counts  # what this step fired and expected (the energy accounting prices it)
        keep_all = np.zeros(n, dtype=bool)
        troubles: list[str] = []
        metrics_last: dict = {}
        phases = None
        programmed = 0  # pulses program() counted itself
        for start in range(0, n, g):
            index = np.arange(start, min(start + g, n))
            sub = slice_batch(batch, index)
            realised = backend.program(params)
            self._sync(params)  # the first program rounds the initial weights to levels
            counts["device_pulses"] += self.devices.last_pulses  # the first program's full write (then none)
            programmed += self.devices.last_pulses
            result = gradep_step(self.model, backend, realised, sub, objective, gradep, trust)
            v[index] = result.v
            metrics_last, phases = result.metrics, result.phases
            if result.trouble:
                troubles.extend(t for t in result.trouble if t not in troubles)
                continue
            keep_all[index] = result.keep
            share = result.keep.sum() / n
            for k, gk in result.grad.items():
                grad_sum[k] += share * np.asarray(gk, np.float64)
            before = {name: self._weights(name) for name, _, _ in self.couplings}
            expected = self._write(result, sub, n, params, counts)
            for name, _, _ in self.couplings:
                total_real[name] += self._weights(name) - before[name]
                total_ideal[name] += -self.s.lr * share * np.asarray(result.grad[name], np.float64)
                total_expected[name] += expected[name]
            self._sync(params)
        self.devices.last_pulses = counts["device_pulses"]
        if not keep_all.any():  # every group troubled: nothing was written
            return StepResult(None, objective.loss(v, batch), v, phases, keep_all, dict(metrics_last), troubles)
        metrics = dict(metrics_last)
        metrics["loss"] = objective.loss(v, batch)
        metrics["grad_norm"] = float(np.sqrt(sum(float(np.sum(x * x)) for x in grad_sum.values())))
        metrics["dropped"] = int(n - keep_all.sum())
        metrics["groups_skipped"] = sum(1 for _ in range(0, n, g)) - len({i // g for i in np.flatnonzero(keep_all)})
        metrics.update(self._diagnostics(total_ideal, total_real, total_expected, counts, n))
        return StepResult({k: x.astype(params[k].dtype) for k, x in grad_sum.items()}, metrics["loss"], v, phases,
                          keep_all, metrics, [])

    def _diagnostics(self, ideal: dict, real: dict, expected: dict, counts: dict, n: int) -> dict:
        """How the written update compares with the SGD step it stands for."""
        flat = lambda d: np.concatenate([x.ravel() for x in d.values()])  # noqa: E731
        i, r, e = flat(ideal), flat(real), flat(expected)

        def cos(a, b):
            den = np.linalg.norm(a) * np.linalg.norm(b)
            return float(a @ b / den) if den > 0 else 0.0

        shapes = self.model.param_shapes()
        n_dev = sum(int(np.prod(shapes[name])) for name, _, _ in self.couplings)
        levels = np.concatenate([self.devices.state[f"level/{name}/{sign}"].ravel()
                                 for name, _, _ in self.couplings for sign in ("plus", "minus")])
        at_edge = float(np.mean(levels >= self.top))
        return {
            "update_cos": cos(r, i),
            "update_cos_expected": cos(e, i),
            "update_ratio": float(np.linalg.norm(r) / np.linalg.norm(i)) if np.linalg.norm(i) > 0 else 0.0,
            "p_sat": counts["p_sat"] / max(counts["p_count"], 1),
            "coincidences_per_device_point": counts["coincidence_slots"] / (n_dev * max(counts["kept"], 1)),
            "drive_pulses": counts["drive_pulses"],
            "bias_adds": counts["bias_adds"],
            "at_gmax": at_edge,
            "w_norm": float(np.sqrt(sum(float(np.sum(self._weights(name) ** 2)) for name, _, _ in self.couplings))),
        }

    # --- the devices ----------------------------------------------------------------------------

    def _levels(self, name: str) -> np.ndarray:
        st = self.devices.state
        return st[f"level/{name}/plus"] - st[f"level/{name}/minus"]

    def _dw(self, name: str) -> float:
        """One pulse, one level, in weight units (the coupling's scale fixed at the first write)."""
        return self.devices.step / self.devices.unit(name)

    def _weights(self, name: str) -> np.ndarray:
        """The weight the pair's conductances hold (the forward copy, before the devices'
        gain spread and faults): (G+ - G-) / unit, with the write model's steps and noise."""
        st = self.devices.state
        return (st[f"g/{name}/0/plus"] - st[f"g/{name}/0/minus"]) / self.devices.unit(name)

    def _sync(self, params: Params) -> None:
        """`params` as the devices hold them, and the devices' record of their targets as
        what program(params) reads from them, so programming them writes nothing."""
        d = self.devices
        for name, _, _ in self.couplings:
            params[name][...] = self._weights(name).astype(params[name].dtype)
            plus, minus, _ = d._targets(name, np.asarray(params[name], np.float64))
            for sign, target in (("plus", plus), ("minus", minus)):
                d.state[f"target/{name}/{sign}"] = d._levels(target)
                d.state[f"acc/{name}/{sign}"] = np.zeros_like(target)
            if f"pacc/{name}" in d.state:  # set-only pairs: the pair's accumulator
                d.state[f"pacc/{name}"] = np.zeros_like(plus)

    def _write(self, result: StepResult, sub, n: int, params: Params, counts: dict) -> dict:
        """Fire the group's pulses and apply them; the expected weight change (for the record)."""
        keep = result.keep
        passes, span = coincidence_passes(self.model, result.phases, self.s.difference)
        weight = np.ones(keep.size) if sub.weight is None else np.asarray(sub.weight, np.float64)
        eta = self.s.lr * weight[keep] / (n * span)  # per point: the SGD step of its EP term
        counts["kept"] += int(keep.sum())
        expected = {}
        for name, pre, post in self.couplings:
            up = np.zeros(params[name].shape)
            down = np.zeros(params[name].shape)
            exp = np.zeros(params[name].shape)
            for sign, rows_from, cols_from in passes:
                x = np.asarray(rows_from[pre][keep], np.float64)  # (P, n_pre): row drivers
                d = np.asarray(cols_from[post][keep], np.float64)  # (P, n_post): column drivers
                u, dn, e = self._coincide(x, d, eta, counts, self._dw(name))
                if sign > 0:
                    up, down = up + u, down + dn
                else:
                    up, down = up + dn, down + u
                exp += sign * e
            expected[name] = exp
            counts["device_pulses"] += self._pulse(name, up, down)
        for name, layer in self.biases:  # the digital bias registers
            ph = result.phases
            a_p = self._act(layer, ph.plus.state[layer][keep])
            a_o = self._act(layer, (ph.minus if ph.minus is not None else ph.free).state[layer][keep])
            step = (eta[:, None] * (a_p - a_o)).sum(axis=0)
            params[name][...] = (np.asarray(params[name], np.float64) + step).astype(params[name].dtype)
            counts["bias_adds"] += int(a_p.size)
        return expected

    def _act(self, layer: int, s: np.ndarray) -> np.ndarray:
        a = self.model.activity(layer, s, 0)
        return np.asarray(s if a is None else a[0], np.float64)

    def _coincide(self, x: np.ndarray, d: np.ndarray, eta: np.ndarray, counts: dict, dw: float):
        """Coincidences of the row trains (x) and column trains (d) of P points: per device
        the pulses up (x_i d_j > 0) and down, and the expected weight change."""
        bl = self.s.bl
        px, pd, saturated = pulse_probabilities(x, d, eta, bl, dw)
        counts["p_sat"] += saturated
        counts["p_count"] += px.size + pd.size
        # What the draws below fire in expectation, from their probabilities: per slot the
        # R fired rows and C fired columns (independent Poisson-binomial counts) coincide
        # R C times, E = E[R] E[C], Var = (Var R + E[R]^2)(Var C + E[C]^2) - E[R]^2 E[C]^2;
        # every pulse charges its line (a row line passes n_post cells, a column n_pre).
        m_r, m_c = px.sum(axis=1), pd.sum(axis=1)
        v_r, v_c = (px * (1 - px)).sum(axis=1), (pd * (1 - pd)).sum(axis=1)
        counts["expected_coincidences"] += bl * float(np.sum(m_r * m_c))
        counts["coincidence_variance"] += bl * float(np.sum((v_r + m_r**2) * (v_c + m_c**2) - (m_r * m_c) ** 2))
        counts["expected_line_cells"] += bl * float(np.sum(m_r) * d.shape[1] + np.sum(m_c) * x.shape[1])
        rows = self.rng.random((x.shape[0], x.shape[1], bl)) < px[:, :, None]  # (P, n_pre, BL)
        cols = self.rng.random((d.shape[0], d.shape[1], bl)) < pd[:, :, None]  # (P, n_post, BL)
        counts["drive_pulses"] += int(rows.sum() + cols.sum())
        xs, ds = np.sign(x)[:, :, None], np.sign(d)[:, :, None]
        r_pos, r_neg = (rows & (xs > 0)).astype(np.float64), (rows & (xs < 0)).astype(np.float64)
        c_pos, c_neg = (cols & (ds > 0)).astype(np.float64), (cols & (ds < 0)).astype(np.float64)
        flat = lambda a: a.transpose(1, 0, 2).reshape(a.shape[1], -1)  # noqa: E731  (n, P*BL)
        up = flat(c_pos) @ flat(r_pos).T + flat(c_neg) @ flat(r_neg).T
        down = flat(c_pos) @ flat(r_neg).T + flat(c_neg) @ flat(r_pos).T
        counts["coincidence_slots"] += int(up.sum() + down.sum())
        expected = dw * bl * (np.sign(d) * pd).T @ (np.sign(x) * px)
        return up, down, expected

    def _pulse(self, name: str, up: np.ndarray, down: np.ndarray) -> int:
        """Apply `up` and `down` pulses to each weight's pair through the devices' write
        model (Devices.apply_pulses: level steps, device step gain, soft bounds, up/down
        asymmetry, write noise, window edges). Set-only devices (PCM): up pulses SET G+,
        down pulses SET G- (their refresh runs in program). Otherwise the device that
        carries the weight's sign takes both: up then down on G+ for a positive weight,
        down then up on G- for a negative one (a crossing of zero within one write stops at
        zero). Returns the pulses applied."""
        d, st = self.devices, self.devices.state
        if d.d.set_only:
            return d.apply_pulses(name, "plus", up) + d.apply_pulses(name, "minus", down)
        n = st[f"level/{name}/plus"] - st[f"level/{name}/minus"]
        on_plus = (n > 0) | ((n == 0) & (up >= down))
        zero = np.zeros_like(up)
        fired = d.apply_pulses(name, "plus", np.where(on_plus, up, zero))
        fired += d.apply_pulses(name, "plus", -np.where(on_plus, down, zero))
        fired += d.apply_pulses(name, "minus", np.where(on_plus, zero, down))
        fired += d.apply_pulses(name, "minus", -np.where(on_plus, zero, up))
        return fired
