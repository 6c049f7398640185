"""Sample quality against the real digits (method.md sections 4-5).

The paper judges generated digits by eye ("recognisable ... across all ten classes",
Gower 2026 section 4). This module puts numbers on the same questions, each printed
beside the figure real digits get, so a reader can tell good from bad without knowing
the scale:

- confidence / class shares: does each sample look like *some* digit, and are all ten
  digits produced? A classifier trained on real digits is asked.
- Fréchet distance (Heusel et al. 2017, "GANs trained by a two time-scale update rule
  converge to a local Nash equilibrium", eq. 6): do the samples, as a set, have the
  mean and covariance of real digits? Reported, like FID, as the squared distance d^2.
- nearest-train distance: is the model copying training images (memorisation)?

Data split: the 1797 labelled digits are split once, stratified by label, 2/3 "train"
and 1/3 "held-out" (`split_digits`). The classifier is fitted on train only.

What is compared with what:

==========================  ================================  ===============================
figure                      samples                           reference (held-out reals)
==========================  ================================  ===============================
confidence, class shares    classifier on clipped samples     classifier on held-out
Fréchet distance            samples  vs  held-out             held-out  vs  train
nearest-train distance      samples  ->  nearest train image  held-out  ->  nearest train image
==========================  ================================  ===============================

Feature space for the Fréchet distance: raw 64-D pixels. FID uses Inception features
because natural images are too high-dimensional for a covariance estimate in pixels
and pixel distance is a poor proxy for perceived similarity there. Neither holds for
8x8 digits: 64 dimensions against 599 held-out images estimate a covariance well, and
there is no standard pretrained network for this dataset. Features of our own
classifier would make the number depend on that classifier's choices (its kernel,
its regularisation) and, for the kernel model below, would have more dimensions than
there are held-out images. Pixels are not clipped for the Fréchet and nearest-train
figures, so over-shooting the [-1, 1] range (over-sharpening, method.md section 5)
counts against the samples. The Fréchet estimate is biased upward for small sets;
compare runs at the same number of samples (a few hundred or more).

Classifier: kernel logistic regression (an RBF Nystroem map, Williams & Seeger 2001,
followed by multinomial logistic regression). Chosen by measurement on the held-out
split against an RBF SVC with Platt scaling, linear logistic regression and an MLP:
it is as accurate as the SVC (0.987 held-out), close to calibrated (mean confidence
0.967 at that accuracy), and, because RBF features fade away from the data, it is
*unsure* on images unlike any digit (about 0.36 on Gaussian noise), where an MLP,
linear logistic regression or a one-vs-rest calibrated SVC is confidently wrong
(0.64-0.87). SVC's own `probability=True` behaves similarly but is deprecated in
scikit-learn 1.9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy.linalg import sqrtm
from scipy.spatial.distance import cdist

from analogep.data import DIGITS_PIXELS, load_digits_labelled

N_CLASSES = 10


HELD_OUT_FRACTION = 1.0 / 3.0


_NYSTROEM_COMPONENTS = 600  # measured: as accurate as all 1198 train points, 4x faster to fit


_LOGISTIC_C = 100.0  # measured: C=30 under-confident (0.949), C=1000 over-confident on noise


_FRECHET_RIDGE = 1e-6


_DISTANCE_CHUNK = 2048  # rows of samples per cdist call, bounds memory to ~20 MB


_PROBA_CHUNK = 8192  # rows per classifier call: its kernel features take 4.8 KB per row


# A sample is outside the data range when a pixel is beyond [-1, 1] by more than this.
# Trained models over-shoot the range (method.md section 5, over-sharpening): measured
# at t1 = 1 and 1.2 on the digits config after 300 steps and examples/tiny.yaml after
# 400, 99% of samples have a pixel beyond 1.125 and 65-70% (digits) beyond 1.5, but only
# 6-8% beyond 2 (largest 3.3). Samples on another scale (raw pixels 0..16, or scaled by
# 1e6) have nearly all samples beyond 2, and so does Gaussian noise (95%).
RANGE_TOLERANCE = 1.0


# evaluate warns when more than this share of the samples is outside the data range.
OUTSIDE_WARNING = 0.5


class DigitSplit(NamedTuple):
    """The fixed train / held-out split of the labelled digits (read-only arrays)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray


@dataclass(frozen=True)
class QualityReport:
    """Figures for a batch of samples, each with the held-out-real reference beside it."""

    n_samples: int
    confidence: float
    class_shares: tuple[float, ...]
    classes_covered: int
    frechet: float
    nearest_train_distance: float
    reference: dict
    min_share: float = 0.03
    outside_range: float = 0.0  # share of samples with a pixel beyond [-1, 1] by more than RANGE_TOLERANCE

    def to_dict(self) -> dict:
        """JSON-ready plain types (the CLI writes this next to the samples)."""
        ref = self.reference
        return {
            "n_samples": int(self.n_samples),
            "confidence": float(self.confidence),
            "class_shares": [float(s) for s in self.class_shares],
            "classes_covered": int(self.classes_covered),
            "frechet": float(self.frechet),
            "nearest_train_distance": float(self.nearest_train_distance),
            "min_share": float(self.min_share),
            "outside_range": float(self.outside_range),
            "reference": {
                "n_samples": int(ref["n_samples"]),
                "confidence": float(ref["confidence"]),
                "class_shares": [float(s) for s in ref["class_shares"]],
                "classes_covered": int(ref["classes_covered"]),
                "frechet": float(ref["frechet"]),
                "nearest_train_distance": float(ref["nearest_train_distance"]),
                "outside_range": float(ref["outside_range"]),
            },
        }

    def format(self) -> str:
        """A small table: each figure beside the held-out-real reference, then class shares."""
        ref = self.reference
        pct = f"{100 * self.min_share:g}%"
        rows = [
            ("figure", "samples", "held-out real"),
            ("n", f"{self.n_samples}", f"{ref['n_samples']}"),
            ("confidence (mean max prob)", f"{self.confidence:.3f}", f"{ref['confidence']:.3f}"),
            (
                f"classes covered (>= {pct})",
                f"{self.classes_covered}/{N_CLASSES}",
                f"{ref['classes_covered']}/{N_CLASSES}",
            ),
            ("Frechet distance (pixels)", f"{self.frechet:.3f}", f"{ref['frechet']:.3f}"),
            (
                "nearest-train distance",
                f"{self.nearest_train_distance:.3f}",
                f"{ref['nearest_train_distance']:.3f}",
            ),
            (
                f"outside [-1, 1] (by > {RANGE_TOLERANCE:g})",
                f"{100 * self.outside_range:.1f}%",
                f"{100 * ref['outside_range']:.1f}%",
            ),
        ]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{a:<{w0}}  {b:>{w1}}  {c:>13}" for a, b, c in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("class shares %  " + _shares_line(self.class_shares))
        lines.append("reference %     " + _shares_line(ref["class_shares"]))
        return "\n".join(lines)


def _shares_line(shares) -> str:
    return " ".join(f"{k}:{100 * s:4.1f}" for k, s in enumerate(shares))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@lru_cache(maxsize=None)
def split_digits(seed: int = 0) -> DigitSplit:
    """Split the labelled digits 2/3 train, 1/3 held-out, stratified, fixed by `seed`.

    Cached: every caller with the same seed sees the same split (arrays are read-only).
    """
    from sklearn.model_selection import train_test_split

    x, y = load_digits_labelled()
    x_tr, x_ho, y_tr, y_ho = train_test_split(
        x, y, test_size=HELD_OUT_FRACTION, stratify=y, random_state=seed
    )
    return DigitSplit(*(_readonly(np.ascontiguousarray(a)) for a in (x_tr, y_tr, x_ho, y_ho)))


@lru_cache(maxsize=None)
def _classifier(seed: int):
    """Kernel logistic regression fitted on the train split (cached; ~0.3 s)."""
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    split = split_digits(seed)
    # gamma = 1 / (D * Var(x)), scikit-learn's "scale" heuristic, fixed from the train split.
    gamma = 1.0 / (DIGITS_PIXELS * float(split.x_train.var()))
    clf = make_pipeline(
        Nystroem(gamma=gamma, n_components=_NYSTROEM_COMPONENTS, random_state=seed),
        LogisticRegression(C=_LOGISTIC_C, max_iter=3000),
    )
    # One BLAS thread: on small matrices extra threads only contend (docs/results/speed.md).
    with threadpool_limits(1):
        clf.fit(split.x_train, split.y_train)
    return clf


def _predict_proba(x: np.ndarray, seed: int) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        clf = _classifier(seed)
        return np.concatenate([
            clf.predict_proba(np.clip(x[i : i + _PROBA_CHUNK], -1.0, 1.0)) for i in range(0, len(x), _PROBA_CHUNK)
        ])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and `b` (Heusel et al. 2017).

    d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). Digits have pixels that are
    constant in every image, so both covariances are singular and the matrix root is
    ill-posed; a ridge of 1e-6 on both makes it well-posed and moves d^2 by about 1e-4.
    """
    ridge = _FRECHET_RIDGE * np.eye(a.shape[1])
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a = np.cov(a, rowvar=False) + ridge
    s_b = np.cov(b, rowvar=False) + ridge
    root = sqrtm(s_a @ s_b).real  # the imaginary part is rounding noise for PSD inputs
    d2 = float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(root))
    return max(d2, 0.0)  # rounding can leave a tiny negative value for identical sets


def nearest_distances(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of `x` to its nearest row of `reference`."""
    out = np.empty(len(x))
    for start in range(0, len(x), _DISTANCE_CHUNK):
        block = x[start : start + _DISTANCE_CHUNK]
        out[start : start + len(block)] = cdist(block, reference).min(axis=1)
    return out


def _shares(proba: np.ndarray) -> tuple[float, ...]:
    counts = np.bincount(proba.argmax(axis=1), minlength=N_CLASSES)
    return tuple(float(c) / len(proba) for c in counts)


@lru_cache(maxsize=None)
def _reference(seed: int) -> dict:
    """Held-out real digits scored exactly as samples are (classes_covered added per call)."""
    split = split_digits(seed)
    proba = _predict_proba(split.x_held, seed)
    return {
        "n_samples": len(split.x_held),
        "confidence": float(proba.max(axis=1).mean()),
        "class_shares": _shares(proba),
        "frechet": frechet_distance(split.x_held, split.x_train),
        "nearest_train_distance": float(nearest_distances(split.x_held, split.x_train).mean()),
        "outside_range": outside_range(split.x_held),
    }


def _covered(shares, min_share: float) -> int:
    return int(sum(s >= min_share for s in shares))


def outside_range(x: np.ndarray) -> float:
    """Share of samples with a pixel beyond the data range [-1, 1] by more than RANGE_TOLERANCE."""
    return float(np.mean(np.any(np.abs(x) > 1.0 + RANGE_TOLERANCE, axis=1))) if len(x) else 0.0


def _validate(samples) -> np.ndarray:
    raw = np.asarray(samples)
    if raw.dtype.kind not in "f":
        raise ValueError(
            f"samples have dtype {raw.dtype}, not floating point; they must be on the [-1, 1] data scale "
            "(raw digit pixels 0..16 become x/16*2 - 1)"
        )
    x = np.asarray(raw, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != DIGITS_PIXELS:
        raise ValueError(f"samples must have shape (N, {DIGITS_PIXELS}); got {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"samples needs at least 2 rows for a covariance; got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.all(np.isfinite(x), axis=1)))
        raise ValueError(f"samples contains non-finite values (NaN or inf) in {bad} of {len(x)} rows")
    return x


def evaluate_samples(samples: np.ndarray, min_share: float = 0.03, seed: int = 0) -> QualityReport:
    """Score generated digits against the real ones (see the module docstring for what is compared).

    `samples` is (N, 64) on the [-1, 1] data scale. Values are clipped to [-1, 1] before
    classification only (the classifier never saw values outside it); the Fréchet and
    nearest-train figures use them as given. `min_share` is the share of samples a class
    needs to count as covered. `seed` fixes the split and the classifier: keep it the
    same to compare runs. Raises ValueError on a wrong shape or non-finite values.
    """
    x = _validate(samples)
    if not 0.0 <= min_share <= 1.0 or math.isnan(min_share):
        raise ValueError(f"min_share must be in [0, 1]; got {min_share}")
    split = split_digits(seed)
    proba = _predict_proba(x, seed)
    shares = _shares(proba)
    ref = dict(_reference(seed))
    ref["classes_covered"] = _covered(ref["class_shares"], min_share)
    return QualityReport(
        n_samples=len(x),
        confidence=float(proba.max(axis=1).mean()),
        class_shares=shares,
        classes_covered=_covered(shares, min_share),
        frechet=frechet_distance(x, split.x_held),
        nearest_train_distance=float(nearest_distances(x, split.x_train).mean()),
        reference=ref,
        min_share=float(min_share),
        outside_range=outside_range(x),
    )
