"""Sample-quality metrics: real digits score like the reference, junk scores clearly worse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analogep.evaluation.quality import (
    N_CLASSES,
    QualityReport,
    evaluate_samples,
    frechet_distance,
    split_digits,
)


@pytest.fixture(scope="module")
def split():
    return split_digits()


@pytest.fixture(scope="module")
def real_report(split) -> QualityReport:
    return evaluate_samples(split.x_held)


@pytest.fixture(scope="module")
def noise_report() -> QualityReport:
    rng = np.random.default_rng(0)
    return evaluate_samples(np.clip(rng.standard_normal((1000, 64)), -1.0, 1.0))


def test_split_is_fixed_stratified_and_disjoint(split):
    again = split_digits()
    assert again.x_train is split.x_train  # cached, not re-drawn
    assert len(split.x_train) + len(split.x_held) == 1797
    assert abs(len(split.x_held) / 1797 - 1 / 3) < 0.01
    # stratified: every class is ~1/3 held out
    for k in range(N_CLASSES):
        n_k = np.sum(split.y_train == k) + np.sum(split.y_held == k)
        assert abs(np.sum(split.y_held == k) / n_k - 1 / 3) < 0.03
    # a partition: train + held-out is a permutation of all digits
    from analogep.data import load_digits_labelled

    x_all, _ = load_digits_labelled()
    joined = np.concatenate([split.x_train, split.x_held])
    assert np.array_equal(joined[np.lexsort(joined.T)], x_all[np.lexsort(x_all.T)])
    assert not split.x_train.flags.writeable  # the cached split cannot be corrupted


def test_classifier_is_accurate_and_confident_on_held_out(split, real_report):
    from analogep.evaluation.quality import _predict_proba

    proba = _predict_proba(split.x_held, 0)
    assert np.mean(proba.argmax(axis=1) == split.y_held) >= 0.97
    assert real_report.confidence >= 0.85


def test_held_out_reals_score_like_the_reference(real_report):
    ref = real_report.reference
    assert real_report.classes_covered == N_CLASSES
    assert ref["classes_covered"] == N_CLASSES
    assert real_report.confidence == pytest.approx(ref["confidence"])
    assert real_report.nearest_train_distance == pytest.approx(ref["nearest_train_distance"])
    assert np.allclose(real_report.class_shares, ref["class_shares"])
    # held-out vs itself is ~0; the reference (held-out vs train) is small but non-zero
    assert real_report.frechet < 1e-3
    assert 0 < ref["frechet"] < 2.0


def test_train_split_matches_reference_frechet_but_flags_memorisation(split, real_report):
    rep = evaluate_samples(split.x_train)
    # Fréchet is symmetric: train vs held-out equals the reference held-out vs train
    assert rep.frechet == pytest.approx(real_report.reference["frechet"], rel=1e-6)
    # every sample is a training image: nearest-train distance collapses to zero
    assert rep.nearest_train_distance == pytest.approx(0.0, abs=1e-9)
    assert real_report.reference["nearest_train_distance"] > 1.0


def test_gaussian_noise_scores_clearly_worse(noise_report, real_report):
    ref = real_report.reference
    assert noise_report.frechet > 20 * ref["frechet"]
    assert noise_report.nearest_train_distance > 2 * ref["nearest_train_distance"]
    assert noise_report.confidence < 0.6 < ref["confidence"]
    assert noise_report.classes_covered < N_CLASSES


def test_copies_of_one_digit_cover_one_class(split):
    label = int(split.y_held[0])
    rep = evaluate_samples(np.repeat(split.x_held[:1], 200, axis=0))
    assert rep.classes_covered == 1
    assert rep.class_shares[label] == pytest.approx(1.0)
    assert sum(rep.class_shares) == pytest.approx(1.0)


def test_clipping_only_affects_classification(split):
    x = split.x_held[:300]
    over = np.where(x > 0.5, 1.3, x)  # over-sharpened ink beyond the data range
    rep_over = evaluate_samples(over)
    rep_clip = evaluate_samples(np.clip(over, -1, 1))
    assert rep_over.confidence == pytest.approx(rep_clip.confidence)
    assert rep_over.frechet > rep_clip.frechet


def test_to_dict_is_json_ready(noise_report):
    d = noise_report.to_dict()
    for key in ("n_samples", "confidence", "classes_covered", "frechet", "nearest_train_distance", "class_shares"):
        assert key in d
    for key in ("confidence", "classes_covered", "frechet", "nearest_train_distance", "class_shares"):
        assert key in d["reference"]
    back = json.loads(json.dumps(d))
    assert back["classes_covered"] == noise_report.classes_covered
    assert len(back["class_shares"]) == N_CLASSES


def test_format_shows_each_figure_beside_reference(noise_report):
    text = noise_report.format()
    ref = noise_report.reference
    assert f"{noise_report.frechet:.3f}" in text and f"{ref['frechet']:.3f}" in text
    assert f"{noise_report.confidence:.3f}" in text and f"{ref['confidence']:.3f}" in text
    assert "class shares" in text
    assert len(text.splitlines()) >= 7


def test_min_share_changes_coverage(split):
    x = np.concatenate([np.repeat(split.x_held[:1], 98, axis=0), split.x_held[1:3]])
    # two stray digits are 1% each: counted at min_share 0.01, not at 0.03
    labels = {int(split.y_held[0]), int(split.y_held[1]), int(split.y_held[2])}
    assert evaluate_samples(x, min_share=0.01).classes_covered == len(labels)
    assert evaluate_samples(x, min_share=0.03).classes_covered == 1


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.zeros((10, 63)), "shape"),
        (np.zeros(64), "shape"),
        (np.zeros((2, 8, 8)), "shape"),
        (np.zeros((1, 64)), "at least 2"),
        (np.full((5, 64), np.nan), "non-finite"),
    ],
)
def test_bad_samples_raise_value_error(bad, fragment):
    with pytest.raises(ValueError, match=fragment):
        evaluate_samples(bad)


def test_bad_min_share_raises(split):
    with pytest.raises(ValueError, match="min_share"):
        evaluate_samples(split.x_held[:10], min_share=1.5)


def test_frechet_distance_known_gaussians():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20000, 3))
    b = 2.0 * rng.standard_normal((20000, 3)) + 1.0
    # |mu|^2 = 3; Tr(I + 4I - 2*2I) = 3
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
