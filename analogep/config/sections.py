"""The sections of model.yaml that describe the model and its training: the energy network
(`model`), equilibrium propagation (`gradep`), the relaxation (`relax`), the training run
(`train`, with its `optimizer`) and sampling (`generate`).

Each is a frozen dataclass read by config/schema.py; what a key holds and its bounds are its
field's type and metadata. Rules that involve keys of several sections are in config/rules.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from analogep.config.schema import meta
from analogep.config.substrate import SubstrateSpec

# Machine epsilon of each model.dtype (numpy.finfo(dtype).eps).
DTYPE_EPS = {"float32": 2.0**-23, "float64": 2.0**-52}

# The nudge must move the visible units by at least this many eps of (a - x*) (see GradEPSpec.min_beta).
NUDGE_RESOLUTION = 1e4


@dataclass(frozen=True)
class ModelSpec:
    """The energy network (method.md section 1)."""

    family: str = field(default="hopfield", metadata=meta("energy family", registry="family"))
    sizes: tuple[int, ...] = field(
        default=(64, 128, 128), metadata=meta("layer sizes, visible first", min=1, min_len=2)
    )
    activation: Literal["soft_silu", "silu"] = field(
        default="soft_silu",
        metadata=meta("rho: soft_silu = clamp*tanh(silu(u)/clamp) (reference code), or plain silu"),
    )
    clamp: float = field(default=10.0, metadata=meta("soft clamp level of soft_silu", gt=0))
    init_gain: float = field(default=0.5, metadata=meta("Xavier-normal gain of the weights", ge=0))
    seed: int = field(default=0, metadata=meta("seed of the weight initialisation", ge=0))
    dtype: Literal["float32", "float64"] = field(default="float32", metadata=meta("floating point type"))
    skip_rank: int = field(
        default=0,
        metadata=meta(
            "rank k of the skip coupling between the visible and the top hidden layer, through k bottleneck "
            "neurons (method.md section 1); 0: none",
            ge=0,
        ),
    )
    diodes: int = field(
        default=1,
        metadata=meta(
            "family hopfield84: 1N4148 diodes in series in each branch of a hidden neuron's limiter; n sets the "
            "output range (about n x 0.5 V; docs/results/physical.md); 1 for every other family",
            ge=1,
            le=8,
            omit_default=True,
        ),
    )
    level_features: int = field(
        default=0,
        metadata=meta(
            "size of the noise-level code that drives a level-bias crossbar into every layer (method.md section 6.3); "
            "0: none; always set from dsm.conditioning level-bias or train.time_conditioning time-bias, a value given "
            "is replaced",
            ge=0,
        ),
    )


@dataclass(frozen=True)
class GradEPSpec:
    """Spring-clamped equilibrium propagation (method.md section 3)."""

    lam: float = field(default=15.0, metadata=meta("spring stiffness lambda", gt=0, yaml="lambda"))
    alpha: float = field(default=2.0, metadata=meta("output scale alpha", gt=0))
    beta: float = field(
        default=1.25e-3,
        metadata=meta(
            "nudge strength beta; beta*(alpha*lambda)^2/(1 + lambda + beta*(alpha*lambda)^2) must be >= 1e4 * "
            "model.dtype's eps (the nudge must be resolvable) and beta < (1 + lambda)/(alpha*lambda)^2 (stable -beta phase)",
            gt=0,
        ),
    )
    phases: Literal[2, 3] = field(default=3, metadata=meta("2 (free, +beta) or 3 (symmetric: free, +beta, -beta)"))

    @property
    def nudge_stiffness(self) -> float:
        """Curvature the nudge adds to each visible unit: beta (alpha lambda)^2."""
        return self.beta * (self.alpha * self.lam) ** 2

    @property
    def max_stable_beta(self) -> float:
        """The -beta phase needs a positive visible curvature 1 + lambda - beta (alpha lambda)^2."""
        return (1.0 + self.lam) / (self.alpha * self.lam) ** 2

    @property
    def nudge_gain(self) -> float:
        """How far the +beta phase moves a visible unit, as a fraction of (a - x*):
        beta (alpha lambda)^2 / (1 + lambda + beta (alpha lambda)^2) (the nudge spring against
        the unit's own curvature 1 + lambda, method.md sections 1 and 3)."""
        return self.nudge_stiffness / (1.0 + self.lam + self.nudge_stiffness)

    def min_beta(self, dtype: str) -> float:
        """The smallest beta whose nudge a `dtype` state resolves: nudge_gain >= 1e4 eps
        (method.md section 3).

        EP differences states at |x| ~ 0.5-3 that the nudge moves by nudge_gain * |a - x*|,
        where |a - x*| = |v - u| / (alpha lambda) ~ 0.01-0.05 on the digits models. Below about
        one ulp of x the nudged states round to the free one and the gradient is zero (beta
        1e-12 in float32) or noise. Measured in float32 on examples/tiny.yaml against the exact
        gradient, relaxed to convergence: the relative error is about 5 eps / nudge_gain at the
        initial weights and 30 eps / nudge_gain after 200 training steps (|a - x*| shrinks as
        v approaches u), and the gradient collapses (cosine < 0.9) below 5-50 eps. At 1e4 eps
        rounding stays under ~0.5%; in float32 at lambda 15, alpha 2 that is beta >= 2.1e-5,
        60x below the paper's 1.25e-3.
        """
        k = NUDGE_RESOLUTION * DTYPE_EPS[dtype]
        return k * (1.0 + self.lam) / ((1.0 - k) * (self.alpha * self.lam) ** 2)


@dataclass(frozen=True)
class RelaxSpec:
    """How equilibria are found (method.md section 3, 'Paper relaxation')."""

    solver: str = field(
        default="fast",
        metadata=meta("euler (the paper's explicit Euler) or fast (block coordinate descent)", registry="solver"),
    )
    step: float = field(default=0.1, metadata=meta("Euler step size eps", gt=0))
    free_steps: int = field(default=300, metadata=meta("maximum iterations of the free phase", ge=1))
    nudge_steps: int = field(default=300, metadata=meta("maximum iterations of each nudged phase", ge=1))
    omega: float = field(
        default=1.4,
        metadata=meta("over-relaxation of the fast solver's hidden updates (1: plain block descent)", gt=0, lt=2),
    )
    tol: float = field(
        default=1e-5,
        metadata=meta("stop when max |dE/ds| < tol (0: run every step, as the paper does)", ge=0),
    )


@dataclass(frozen=True)
class OptimizerSpec:
    """Adam with the paper's settings (beta1 0.9, beta2 0.95, lr 1e-3)."""

    name: Literal["adam", "sgd"] = field(default="adam", metadata=meta("optimizer"))
    lr: float = field(default=1e-3, metadata=meta("learning rate", gt=0))
    betas: tuple[float, ...] = field(
        default=(0.9, 0.95), metadata=meta("Adam moment decay rates, each in [0, 1)", ge=0, lt=1, len=2)
    )
    eps: float = field(default=1e-8, metadata=meta("Adam epsilon", gt=0))
    schedule: Literal["constant", "cosine"] = field(
        default="constant",
        metadata=meta(
            "learning-rate schedule: constant (lr every step, the paper's) or cosine (from lr at the first step down "
            "a half cosine to final_lr at train.steps; a resume that raises train.steps stretches what is left)",
            omit_default=True,
        ),
    )
    final_lr: float = field(
        default=0.0, metadata=meta("cosine: the rate the schedule ends at, below lr", ge=0, omit_default=True)
    )


@dataclass(frozen=True)
class TrainSpec:
    """The GradEP training run (method.md sections 4 and 6)."""

    dataset: Literal["digits", "eight_gaussians", "moons", "circles", "checkerboard", "swiss_roll", "file"] = field(
        default="digits",
        metadata=meta("training data: digits, a 2-D benchmark or file (a .npy/.npz; the data section says which)"),
    )
    objective: str = field(
        default="flow",
        metadata=meta("what the equilibria learn: flow (flow matching) or dsm (denoising score matching)", registry="objective"),
    )
    backend: str = field(
        default="numpy",
        metadata=meta(
            "where training's equilibria come from: numpy (relaxation) or spice (ngspice DC solves of the circuit); "
            "part of the run, kept by --resume",
            registry="backend",
        ),
    )
    steps: int = field(default=2000, metadata=meta("optimizer steps", ge=1))
    batch: int = field(default=1797, metadata=meta("batch size (1797 = the full digits set)", ge=1))
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec, metadata=meta("optimizer settings"))
    grad_clip: float = field(default=1.0, metadata=meta("global gradient-norm clip (0: off)", ge=0))
    update: Literal["digital", "substrate"] = field(
        default="digital",
        metadata=meta(
            "digital: the measured EP gradient goes through the optimizer, then the devices are written; substrate: "
            "the devices write their own update by stochastic pulse coincidence (train.substrate; needs devices.bits)",
            omit_default=True,
        ),
    )
    substrate: SubstrateSpec = field(
        default_factory=SubstrateSpec,
        metadata=meta("the on-substrate update (train.update: substrate)", omit_default=True),
    )
    # flow matching's (objectives/flow.py reads it; the other objectives ignore it)
    ot_coupling: bool = field(default=True, metadata=meta("pair noise and data by exact minibatch OT"))
    weight_noise: float = field(
        default=0.0,
        metadata=meta("hardware-aware training: each step's equilibria see the couplings plus Gaussian noise of this "
                      "std relative to each coupling's max|W| (aihwkit weight modifier ADD_NORMAL)", ge=0),
    )
    weight_drop: float = field(
        default=0.0,
        metadata=meta("hardware-aware training: share of the weights set to 0 in each step's equilibria (stuck "
                      "devices; aihwkit weight modifier pdrop)", ge=0, lt=1),
    )
    # flow matching's time input (objectives/flow.py; docs/time-conditioning.md); the keys are
    # left out of a dumped config at their defaults, so a run without them dumps as before
    time_conditioning: Literal["none", "time-bias"] = field(
        default="none",
        metadata=meta(
            "flow matching: none, the velocity field is time independent (method.md section 5); time-bias, every "
            "layer gets a bias driven by a time code (the level-bias crossbar of dsm.conditioning level-bias), t is "
            "drawn from time_levels levels and the sampler sets the code at every Euler step",
            omit_default=True,
        ),
    )
    time_levels: int = field(
        default=10,
        metadata=meta("time-bias: training times, t_k = k/(time_levels-1), k = 0..time_levels-1", ge=2,
                      omit_default=True),
    )
    time_code: Literal["onehot", "fourier"] = field(
        default="onehot",
        metadata=meta("time-bias: onehot, one bias vector per time level (linear between levels); fourier, "
                      "time_features cosines cos(pi k t)", omit_default=True),
    )
    time_features: int = field(
        default=4,
        metadata=meta("time-bias with time_code fourier: cosine features of t", ge=1, omit_default=True),
    )
    seed: int = field(default=0, metadata=meta("seed of noise, times and batches", ge=0))
    checkpoint_every: int = field(default=100, metadata=meta("steps between checkpoints", ge=1))
    log_every: int = field(default=1, metadata=meta("steps between metrics.jsonl records", ge=1))
    threads: int = field(default=0, metadata=meta("BLAS threads (0: all available cores but one)", ge=0))
    max_residual: float = field(
        default=1e-3,
        metadata=meta("a training point whose phase ends with max |dE/ds| above this is dropped", gt=0),
    )
    max_asymmetry: float = field(
        default=0.5,
        metadata=meta(
            "a training point whose +beta and -beta responses are less mirrored than this is dropped (0..1; 1: keep all)",
            gt=0,
            le=1,
        ),
    )
    max_dropped: float = field(
        default=0.05,
        metadata=meta("largest share of dropped training points before a step is skipped", ge=0, le=1),
    )
    max_bad_steps: int = field(
        default=20, metadata=meta("consecutive skipped (troubled) steps before training stops", ge=1)
    )
    max_skipped_share: float = field(
        default=0.5,
        metadata=meta(
            "largest share of skipped steps among the last 100 before training stops "
            "(judged from step 20 on, and at the last step; 1: never)",
            ge=0,
            le=1,
        ),
    )

    @property
    def time_code_size(self) -> int:
        """The size of the time code flow matching's energy takes: 0 without time-bias, the
        number of time levels for a one-hot code, time_features for a Fourier one."""
        if self.time_conditioning != "time-bias":
            return 0
        return self.time_levels if self.time_code == "onehot" else self.time_features


@dataclass(frozen=True)
class GenerateSpec:
    """Sampling: n, mode and seed for every objective's sampler; dt and t1 for the Euler
    integration of flow matching (method.md section 5; the dsm section holds score matching's)."""

    n: int = field(default=100, metadata=meta("number of samples", ge=1))
    dt: float = field(default=0.01, metadata=meta("Euler time step", gt=0))
    t1: float = field(default=1.0, metadata=meta("end time (>1: extended generation)", gt=0))
    mode: Literal["energy", "spring"] = field(
        default="energy", metadata=meta("energy: v = -alpha dE/dx; spring: v = alpha lambda (x* - x)")
    )
    seed: int = field(default=1, metadata=meta("seed of the initial noise", ge=0))

    @property
    def steps(self) -> int:
        """Euler steps over [0, t1]: round(t1 / dt), at least one."""
        return max(1, int(round(self.t1 / self.dt)))

