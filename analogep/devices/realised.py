"""The non-ideal circuit as the solvers see it: its Kirchhoff current law, through the
family's seams (method.md section 7, 'Devices').

With mismatched crossbar copies (the forward read through one device, the transposed read
through another) or with activation drivers that differ from the rho'(s) multipliers, the
circuit no longer minimises an energy: it settles where every node's currents balance,

    visible:  x - (b_x + W_T0^T a_1) = 0               (plus the springs)
    hidden:   s_l - rho'(s_l) (W_f{l-1} a_{l-1} + b_{l-1} + W_Tl^T a_{l+1}) = 0

with a_l = g_l rho(s_l) + o_l the driver outputs (a_0 = g_0 x + o_0), W_f the forward copy
and W_T the transposed one. `RealisedCircuit` is therefore a layered field (model/field.py)
and not an energy: its `activity` returns (driver output, multiplier rho', its slope rho'')
and its `layer_drive` reads the transposed copy from above, so the block solver's Newton
step on each unit's KCL and its residual (`block_slope`) are the family's own layers';
`state_grad` is the KCL residual (what the euler solver descends and the residual checks).
"""

from __future__ import annotations

import numpy as np

from analogep.devices.crossbar import Realisation
from analogep.model.field import LayeredField, Params, State
from analogep.model.network import Network


class RealisedCircuit(LayeredField):
    """The family network `model` with the realised crossbar copies and drivers of `realisation`."""

    def __init__(self, model: Network, realisation: Realisation, like: Params):
        self.model = model
        self.sizes, self.dtype = model.sizes, model.dtype
        self.transposed = None if realisation.bidirectional else realisation.params(like, "transposed")
        dt = model.dtype
        self.gain = [None if g is None else g.astype(dt) for g in realisation.gain]
        self.offset = [None if o is None else o.astype(dt) for o in realisation.offset]

    # The circuit's KCL -----------------------------------------------------------------------------

    def _driver(self, layer: int, a: np.ndarray) -> np.ndarray:
        g, o = self.gain[layer], self.offset[layer]
        if g is not None:
            a = a * g
        if o is not None:
            a = a + o
        return a

    def activity(self, layer: int, s: np.ndarray, order: int) -> tuple[np.ndarray, ...] | None:
        """(driver output, rho', rho''): the drivers carry gain and offset, the multiplier of
        the sensed current is the exact rho'. A linear layer with exact drivers: None."""
        derivs = self.model.activity(layer, s, order)
        if self.gain[layer] is None and self.offset[layer] is None:
            return derivs
        if derivs is None:  # a linear layer: the driver output is all the solver needs
            return (self._driver(layer, s),)
        return (self._driver(layer, derivs[0]),) + tuple(derivs[1:])

    def _acts(self, state: State, order: int) -> tuple[list[np.ndarray], list]:
        derivs = [self.activity(layer, s, order) for layer, s in enumerate(state)]
        return [s if d is None else d[0] for s, d in zip(state, derivs)], derivs

    def layer_drive(self, params: Params, state: State, layer: int, acts: list[np.ndarray] | None = None) -> np.ndarray:
        if acts is None:
            acts = self._acts(state, 0)[0]
        return self.model.layer_drive(params, state, layer, acts, self.transposed)

    def block_update(self, layer, s, drive, derivs, spring, omega) -> np.ndarray:
        return self.model.block_update(layer, s, drive, derivs, spring, omega)

    def block_slope(self, layer, s, drive, derivs, spring) -> np.ndarray:
        return self.model.block_slope(layer, s, drive, derivs, spring)

    def state_grad(self, params: Params, state: State) -> State:
        """The KCL residual per node (for an energy circuit this is dE/ds)."""
        acts, derivs = self._acts(state, 1)
        return [
            self.model.block_slope(layer, s, self.model.layer_drive(params, state, layer, acts, self.transposed), d, None)
            for layer, (s, d) in enumerate(zip(state, derivs))
        ]
