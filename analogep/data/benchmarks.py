"""The 2-D benchmarks of flow matching, generated rather than downloaded.

The distributions torchcfm and most flow-matching papers start from (Tong et al. 2024,
"Improving and generalizing flow-based generative models with minibatch optimal
transport", section 5.1: 8 Gaussians, moons; Grathwohl et al. 2019, FFJORD, figure 2:
checkerboard, circles, swiss roll). Each is scaled to lie within about [-1, 1], the
range the visible nodes carry (method.md section 4), then multiplied by `scale`. `noise`
is the standard deviation of the Gaussian added to each point, in the units before
`scale`; the same `seed` gives the same points. How far the data lie from the noise
N(0, I) sets how well a time-independent velocity can carry one to the other
(docs/results/data.md): the 2-D examples use scale 2. scikit-learn's generators are used where they exist.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# Radius of the ring of 8 Gaussians: leaves room for 3 standard deviations inside [-1, 1].
EIGHT_GAUSSIANS_RADIUS = 0.75
# Checkerboard: a 4 x 4 board over [-CHECKER_HALF, CHECKER_HALF]^2, 8 squares filled.
CHECKER_HALF = 0.9

# Default noise of each source (its `noise` when data.noise is null).
DEFAULT_NOISE = {
    "eight_gaussians": 0.05,
    "moons": 0.05,
    "circles": 0.03,
    "checkerboard": 0.0,
    "swiss_roll": 0.03,
}


def _eight_gaussians(n: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = eight_gaussian_centres()
    return centres[rng.integers(0, 8, size=n)] + noise * rng.standard_normal((n, 2))


def _moons(n: int, noise: float, seed: int) -> np.ndarray:
    from sklearn.datasets import make_moons

    # make_moons spans x in [-1, 2], y in [-0.5, 1]: centred and divided by 1.5 it spans [-1, 1] x [-0.5, 0.5].
    x, _ = make_moons(n_samples=n, noise=noise * 1.5, random_state=seed)
    return (x - np.array([0.5, 0.25])) / 1.5


def _circles(n: int, noise: float, seed: int) -> np.ndarray:
    from sklearn.datasets import make_circles

    # Outer circle of radius 1, inner 0.5; scaled by 0.9 to stay inside [-1, 1] with noise.
    x, _ = make_circles(n_samples=n, noise=noise / 0.9, factor=0.5, random_state=seed)
    return 0.9 * x


def checker_centres() -> np.ndarray:
    """Centres of the 8 filled squares of the checkerboard (its modes)."""
    side = 2 * CHECKER_HALF / 4
    cells = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
    return np.array([(-CHECKER_HALF + (i + 0.5) * side, -CHECKER_HALF + (j + 0.5) * side) for i, j in cells])


def eight_gaussian_centres() -> np.ndarray:
    """Centres of the 8 Gaussians (their modes), on a ring of radius EIGHT_GAUSSIANS_RADIUS."""
    angle = 2 * np.pi * np.arange(8) / 8
    return EIGHT_GAUSSIANS_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _checkerboard(n: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = 2 * CHECKER_HALF / 4
    centres = checker_centres()
    x = centres[rng.integers(0, len(centres), size=n)] + rng.uniform(-side / 2, side / 2, size=(n, 2))
    return x + noise * rng.standard_normal((n, 2))


def _swiss_roll(n: int, noise: float, seed: int) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    # The roll's (x, z) plane spans about [-9.5, 12.7]; centred at 1.6 and divided by 12 it is inside [-1, 1].
    x, _ = make_swiss_roll(n_samples=n, noise=noise * 12.0, random_state=seed)
    return (x[:, [0, 2]] - 1.6) / 12.0


GENERATORS: dict[str, Callable[[int, float, int], np.ndarray]] = {
    "eight_gaussians": _eight_gaussians,
    "moons": _moons,
    "circles": _circles,
    "checkerboard": _checkerboard,
    "swiss_roll": _swiss_roll,
}

# The modes mode coverage is judged on, and how near (Euclidean) a sample must be to count.
MODES: dict[str, Callable[[], np.ndarray]] = {"eight_gaussians": eight_gaussian_centres, "checkerboard": checker_centres}


def mode_radius(name: str, noise: float) -> float:
    """How near a mode a sample must be to count as on it: 3 noise standard deviations
    for a Gaussian (capped at half the distance between neighbours), the square's inner
    circle for the checkerboard."""
    if name == "eight_gaussians":
        half_gap = EIGHT_GAUSSIANS_RADIUS * np.sin(np.pi / 8)
        return float(min(3.0 * noise, half_gap)) if noise > 0 else float(half_gap)
    return CHECKER_HALF / 4 + noise


def generate(name: str, n: int, noise: float | None, seed: int, scale: float = 1.0) -> np.ndarray:
    """`n` points of benchmark `name` (float64, n x 2), multiplied by `scale` (noise included)."""
    level = DEFAULT_NOISE[name] if noise is None else noise
    return np.ascontiguousarray(scale * GENERATORS[name](n, level, seed), dtype=np.float64)
