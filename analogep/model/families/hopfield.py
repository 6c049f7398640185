"""The paper's layered Hopfield-like energy (method.md section 1; Gower 2026, FlowEqProp).

    E(s) = sum_l 1/2 |s_l|^2 - b_x . x - sum_l rho(s_{l+1}) . (W_l a_l + b_l)

with s_0 = x the visible units, a_0 = x (x enters linearly) and a_l = rho(s_l) for the
hidden layers. Parameters: b_x, then W_l (n_{l+1} x n_l) and b_l for each layer pair.

With `model.skip_rank` k > 0 a skip coupling joins the visible layer to the top hidden
layer h_L through k bottleneck neurons z, one more hidden layer of the state (the last,
index L+1), coupled to x by the crossbar U (k x n_0) and to h_L by V (k x n_L):

    E_skip(s) = E(s) + 1/2 |z|^2 - rho(z) . (U x + V rho(h_L) + b_z)

so x and h_L interact through a rank-k channel with O((n_0 + n_L) k) couplings instead of
the n_0 n_L of a full skip matrix (method.md section 1; De 2026, arXiv 2604.14332). The
layer graph then has the cycle x - h_1 - ... - h_L - z - x; in the network's table the
skip is three more rows (model/network.py).

With `model.level_features` K > 0 (set by dsm.conditioning: level-bias) the biases
depend on the noise level: a clamped level code c (K,) drives a K x n crossbar into x
(lb_x) and into each hidden layer h_{l+1} (lb_l), E_level = -x . c^T lb_x - sum_l
rho(s_{l+1}) . c^T lb_l (method.md section 6.3).
"""

from __future__ import annotations

from analogep.config.sections import ModelSpec
from analogep.model.activations import Activation
from analogep.model.interactions import Bias, Coupling, Interaction, LevelBias
from analogep.model.layers import ActivationUnits, Layer, LinearUnits
from analogep.model.network import Network


class HopfieldEnergy(Network):
    """Layered energy with quadratic leaks, visible units linear, hidden units through rho.

    Weights are drawn Xavier-normal with the configured gain, biases start at zero (paper:
    gain 0.5); the skip crossbars U and V too (at zero they would stay there: their EP
    terms are products with rho(z), which is 0 while nothing drives z)."""

    def __init__(self, spec: ModelSpec):
        self.rho = Activation(spec.activation, spec.clamp)
        gain, chain = spec.init_gain, len(spec.sizes) - 1  # chain: the number of weight matrices W_l
        layers: list[Layer] = [LinearUnits(spec.sizes[0])] + [ActivationUnits(n, self.rho) for n in spec.sizes[1:]]
        table: list[Interaction] = [Bias("b_x", 0)]
        for l in range(chain):
            table += [Coupling(f"W{l}", l, l + 1, gain), Bias(f"b{l}", l + 1)]
        if spec.skip_rank:  # the bottleneck z is the state's last layer (index L + 1)
            z = len(layers)
            layers.append(ActivationUnits(spec.skip_rank, self.rho))
            table += [Coupling("U", 0, z, gain), Coupling("V", chain, z, gain), Bias("b_z", z)]
        if spec.level_features:  # noise-level biases into x and every hidden layer h_l (method.md 6.3)
            table += [LevelBias("lb_x", 0, spec.level_features)]
            table += [LevelBias(f"lb{l}", l + 1, spec.level_features) for l in range(chain)]
        super().__init__(layers, table, spec.dtype)
