"""Sample quality for any data, with no classifier: is a set of samples drawn from the
data's distribution? Each figure is printed beside the same figure for held-out real data
against the training data, so a reader can tell good from bad without knowing the scale.

==========================  ===================================  ================================
figure                      samples                              baseline (held-out reals)
==========================  ===================================  ================================
MMD                         samples vs held-out                  train vs held-out
sliced Wasserstein          samples vs held-out                  train vs held-out
Fréchet distance            samples vs held-out                  train vs held-out
nearest-train distance      samples -> nearest train row         held-out -> nearest train row
outside range               share beyond the train range (+10%)  held-out's share
mode coverage (2-D)         share near each mode, modes covered  held-out's
==========================  ===================================  ================================

- MMD: the maximum mean discrepancy (Gretton et al. 2012, "A kernel two-sample test",
  JMLR 13, eq. 5, the biased V-statistic) with a Gaussian kernel exp(-|a-b|^2 / (2 h^2)),
  h the median distance between held-out and train rows (the median heuristic, ibid.
  section 8). The baseline uses as many train rows as there are samples, so both
  figures carry the same small-sample bias and their ratio is fair; reported as MMD
  (the square root of MMD^2).
- Sliced Wasserstein-1 (Rabin et al. 2011; Bonneel et al. 2015): the 1-D Wasserstein
  distance of projections on 128 random unit directions (fixed seed), averaged.
- Fréchet distance of the raw features (Heusel et al. 2017, eq. 6; quality.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial.distance import cdist

from analogep.evaluation.quality import frechet_distance, nearest_distances

SLICES = 128  # random directions of the sliced Wasserstein distance
RANGE_MARGIN = 0.1  # a sample is outside when a feature is beyond the train range by 10% of that range
MODE_MIN_SHARE = 0.25  # a mode is covered when it holds at least this share of its even share 1/K
_KERNEL_ROWS = 2000  # rows per side of the kernel matrices (an even stride through more)


def _rows(x: np.ndarray, limit: int) -> np.ndarray:
    return x if len(x) <= limit else x[np.linspace(0, len(x) - 1, limit).astype(np.int64)]


def median_bandwidth(a: np.ndarray, b: np.ndarray) -> float:
    """The median distance between rows of `a` and rows of `b` (the median heuristic)."""
    d = cdist(_rows(a, 1000), _rows(b, 1000))
    h = float(np.median(d))
    return h if h > 0 else 1.0


def mmd(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """sqrt of the biased MMD^2 with a Gaussian kernel of width `bandwidth`."""
    x, y = _rows(x, _KERNEL_ROWS), _rows(y, _KERNEL_ROWS)
    g = -0.5 / bandwidth**2

    def k(a, b):
        return float(np.exp(g * cdist(a, b, "sqeuclidean")).mean())

    return float(np.sqrt(max(k(x, x) + k(y, y) - 2.0 * k(x, y), 0.0)))


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, slices: int = SLICES, seed: int = 0) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections
    (compared at a common grid of quantiles)."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((x.shape[1], slices))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    q = (np.arange(256) + 0.5) / 256
    px = np.quantile(x @ dirs, q, axis=0)
    py = np.quantile(y @ dirs, q, axis=0)
    return float(np.abs(px - py).mean())


def outside_share(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of rows with a feature beyond [lo, hi] widened by RANGE_MARGIN of its width."""
    pad = RANGE_MARGIN * (hi - lo)
    return float(np.mean(np.any((x < lo - pad) | (x > hi + pad), axis=1))) if len(x) else 0.0


def mode_shares(x: np.ndarray, modes: np.ndarray, radius: float) -> tuple[list[float], float]:
    """Share of rows within `radius` of each mode (nearest mode first), and the share near none."""
    d = cdist(x, modes)
    nearest = d.argmin(axis=1)
    near = d[np.arange(len(x)), nearest] <= radius
    shares = np.bincount(nearest[near], minlength=len(modes)) / max(len(x), 1)
    return shares.tolist(), float(1.0 - near.mean()) if len(x) else 0.0


@dataclass
class DataQuality:
    """Classifier-free figures of a set of samples, and the held-out reals' (`reference`)."""

    n_samples: int
    dataset: str
    mmd: float
    sliced_wasserstein: float
    frechet: float
    nearest_train_distance: float
    outside_range: float
    bandwidth: float
    reference: dict
    mode_shares: list[float] | None = None
    modes_covered: int | None = None
    off_mode: float | None = None
    ratios: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        ref = self.reference
        lines = [f"{self.dataset}: {self.n_samples} samples against {ref['n_samples']} held-out points "
                 f"(baseline: train vs held-out)",
                 f"  {'figure':26s} {'samples':>10s} {'baseline':>10s} {'ratio':>7s}"]
        for key, label in (("mmd", f"MMD (h={self.bandwidth:.3g})"), ("sliced_wasserstein", "sliced Wasserstein"),
                           ("frechet", "Frechet distance"), ("nearest_train_distance", "nearest-train distance"),
                           ("outside_range", "outside range")):
            ratio = self.ratios.get(key)
            lines.append(f"  {label:26s} {getattr(self, key):10.4g} {ref[key]:10.4g} "
                         f"{'' if ratio is None else f'{ratio:7.2f}'}")
        if self.mode_shares is not None:
            k = len(self.mode_shares)
            lines.append(f"  modes covered              {self.modes_covered:>7d}/{k} {ref['modes_covered']:>7d}/{k}")
            lines.append(f"  share near no mode         {self.off_mode:10.4g} {ref['off_mode']:10.4g}")
        return "\n".join(lines)


def _figures(x: np.ndarray, train: np.ndarray, held: np.ndarray, h: float, lo, hi) -> dict:
    return {
        "mmd": mmd(x, held, h),
        "sliced_wasserstein": sliced_wasserstein(x, held),
        "frechet": frechet_distance(x, held),
        "outside_range": outside_share(x, lo, hi),
    }


def evaluate_data(
    samples: np.ndarray, train: np.ndarray, held: np.ndarray, dataset: str,
    modes: np.ndarray | None = None, mode_radius: float = 0.0,
) -> DataQuality:
    """Judge `samples` (N x D, model units) against held-out rows, beside train-vs-held-out
    (see the module docstring). `modes`: the modes of a 2-D benchmark, for coverage."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != train.shape[1]:
        raise ValueError(f"samples must have shape (N, {train.shape[1]}); got {x.shape}")
    if len(x) < 2:
        raise ValueError(f"samples needs at least 2 rows; got {len(x)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"samples contains non-finite values in {int(np.sum(~np.isfinite(x).all(axis=1)))} rows")
    lo, hi = train.min(axis=0), train.max(axis=0)
    h = median_bandwidth(held, train)
    base = _rows(train, len(x))  # as many rows as samples: the same small-sample bias
    ours = _figures(x, train, held, h, lo, hi)
    ref = _figures(base, train, held, h, lo, hi)
    ref["outside_range"] = outside_share(held, lo, hi)
    ours["nearest_train_distance"] = float(nearest_distances(x, train).mean())
    ref["nearest_train_distance"] = float(nearest_distances(held, train).mean())
    ref["n_samples"] = len(held)
    report = DataQuality(n_samples=len(x), dataset=dataset, bandwidth=h, reference=ref, **ours)
    report.ratios = {k: ours[k] / ref[k] for k in ("mmd", "sliced_wasserstein", "frechet") if ref[k] > 0}
    if modes is not None:
        shares, off = mode_shares(x, modes, mode_radius)
        ref_shares, ref_off = mode_shares(held, modes, mode_radius)
        need = MODE_MIN_SHARE / len(modes)
        report.mode_shares, report.off_mode = shares, off
        report.modes_covered = int(sum(s >= need for s in shares))
        ref.update(mode_shares=ref_shares, off_mode=ref_off, modes_covered=int(sum(s >= need for s in ref_shares)))
    return report
