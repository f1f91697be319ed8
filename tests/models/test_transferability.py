"""Transferability scores on constructed features: who should win, and the formulas themselves."""

from __future__ import annotations

import numpy as np
import pytest

from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.transferability import h_score, knn_accuracy, leep, logme, nce, regularized_h_score

pytestmark = pytest.mark.quick


def _labels(classes: int, per_class: int) -> np.ndarray:
    return np.repeat(np.arange(classes), per_class)


def _predictive(labels: np.ndarray, extra: int, seed: int) -> np.ndarray:
    """Features whose first columns are the one-hot labels (scaled) plus noise, then noise columns."""
    rng = np.random.default_rng(seed)
    informative = 3.0 * np.eye(labels.max() + 1)[labels] + 0.5 * rng.normal(size=(len(labels), labels.max() + 1))
    return np.hstack([informative, rng.normal(size=(len(labels), extra))])


def _direct_evidence(features: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """The paper's evidence log p(y | F, alpha, beta) / n, with A and m computed from their definitions."""
    n, d = features.shape
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ y)
    residual = np.sum((features @ m - y) ** 2)
    _, log_det = np.linalg.slogdet(a)
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * residual - alpha / 2 * m @ m - log_det / 2)
    return evidence / n


def test_logme_prefers_features_that_predict_the_labels():
    labels = _labels(4, 15)
    good = logme(_predictive(labels, extra=12, seed=0), labels).score
    random = logme(np.random.default_rng(1).normal(size=(len(labels), 16)), labels).score
    assert good > random + 0.3


@pytest.mark.parametrize("dimensions", [5, 20])
def test_logme_is_the_evidence_at_its_fixed_point(dimensions):
    labels = _labels(3, 10)
    features = _predictive(labels, extra=dimensions - 3, seed=2)
    result = logme(features, labels)
    eigenvalues = np.linalg.eigvalsh(features.T @ features)
    for k, (alpha, beta, evidence) in enumerate(zip(result.alphas, result.betas, result.evidences)):
        y = (labels == k).astype(float)
        assert evidence == pytest.approx(_direct_evidence(features, y, alpha, beta), rel=1e-6, abs=1e-9)
        # alpha and beta satisfy the fixed-point equations of evidence maximisation
        a = alpha * np.eye(dimensions) + beta * features.T @ features
        m = beta * np.linalg.solve(a, features.T @ y)
        gamma = np.sum(beta * eigenvalues / (alpha + beta * eigenvalues))
        assert alpha == pytest.approx(gamma / (m @ m), rel=1e-4)
        assert beta == pytest.approx((len(y) - gamma) / np.sum((features @ m - y) ** 2), rel=1e-4)
        # and maximise the evidence: nearby values give less
        for scale in (0.7, 1.4):
            assert _direct_evidence(features, y, alpha * scale, beta) < evidence
            assert _direct_evidence(features, y, alpha, beta * scale) < evidence
    assert result.score == pytest.approx(np.mean(result.evidences))


def test_scores_do_not_depend_on_the_order_of_examples():
    labels = _labels(3, 12)
    features = _predictive(labels, extra=6, seed=3)
    order = np.random.default_rng(4).permutation(len(labels))
    assert logme(features[order], labels[order]).score == pytest.approx(logme(features, labels).score, rel=1e-9)
    assert h_score(features[order], labels[order]) == pytest.approx(h_score(features, labels), rel=1e-9)
    theta = np.random.default_rng(5).dirichlet(np.ones(4), size=len(labels))
    assert leep(theta[order], labels[order]) == pytest.approx(leep(theta, labels), rel=1e-12)
    assert nce(theta[order], labels[order]) == pytest.approx(nce(theta, labels), rel=1e-12)


def test_logme_with_more_dimensions_than_examples_is_finite_and_still_ranks():
    labels = _labels(3, 10)
    good = logme(_predictive(labels, extra=47, seed=12), labels)
    random = logme(np.random.default_rng(13).normal(size=(len(labels), 50)), labels)
    assert np.all(np.isfinite(good.evidences)) and np.all(np.isfinite(random.evidences))
    assert good.score > random.score


def test_logme_of_features_that_carry_nothing_is_finite_and_lowest():
    labels = _labels(3, 8)
    zeros = logme(np.zeros((len(labels), 4)), labels)
    assert np.isfinite(zeros.score)
    assert zeros.score < logme(_predictive(labels, extra=1, seed=6), labels).score


def test_h_score_of_one_hot_labels_is_classes_minus_one_and_of_noise_near_zero():
    labels = _labels(5, 40)
    assert h_score(np.eye(5)[labels], labels) == pytest.approx(4.0, abs=1e-8)
    assert h_score(np.random.default_rng(7).normal(size=(len(labels), 3)), labels) < 0.1
    # invariant to an invertible linear map of the features
    features = _predictive(labels, extra=2, seed=8)
    mixing = np.random.default_rng(9).normal(size=(7, 7))
    assert h_score(features @ mixing, labels) == pytest.approx(h_score(features, labels), rel=1e-6)


def test_regularized_h_score_still_ranks_with_more_dimensions_than_examples():
    labels = _labels(5, 10)
    rng = np.random.default_rng(14)
    informative = np.eye(5)[labels] @ rng.normal(size=(5, 128)) + rng.normal(size=(len(labels), 128))
    noise = rng.normal(size=(len(labels), 128))
    # the plain H-score cannot tell them apart: any 128 features of 50 examples separate the classes
    assert h_score(informative, labels) == pytest.approx(4.0) and h_score(noise, labels) == pytest.approx(4.0)
    assert regularized_h_score(informative, labels) > 3.0 > 1.0 > regularized_h_score(noise, labels)
    many = _labels(5, 200)
    assert regularized_h_score(np.eye(5)[many], many) == pytest.approx(4.0, abs=0.1)


def test_knn_accuracy_separates_clusters_from_noise():
    labels = _labels(3, 10)
    assert knn_accuracy(_predictive(labels, extra=0, seed=10), labels, k=3, folds=5) == 1.0
    noise = knn_accuracy(np.random.default_rng(11).normal(size=(len(labels), 8)), labels, k=3, folds=5)
    assert noise < 0.7
    with pytest.raises(DataError, match="folds"):
        knn_accuracy(np.zeros((6, 2)), _labels(2, 3), folds=1)


def test_leep_and_nce_of_informative_and_uninformative_source_classifiers():
    labels = _labels(3, 10)
    # a source classifier whose classes map one-to-one onto the target's
    aligned = 0.94 * np.eye(3)[labels] + 0.02
    assert nce(aligned, labels) == pytest.approx(0.0, abs=1e-12)
    assert leep(aligned, labels) > -0.2
    # one that says the same for every example: the labels' own entropy, log(1/3) when balanced
    flat = np.full((len(labels), 4), 0.25)
    assert leep(flat, labels) == pytest.approx(np.log(1 / 3))
    assert nce(flat, labels) == pytest.approx(np.log(1 / 3))
    # LEEP by hand on two examples: P(y|z) = joint / marginal over z
    theta = np.array([[0.8, 0.2], [0.4, 0.6]])
    two = np.array([0, 1])
    joint = np.array([[0.8, 0.2], [0.4, 0.6]]) / 2
    conditional = joint / joint.sum(axis=0)
    expected = np.mean([np.log(theta[i] @ conditional[two[i]]) for i in range(2)])
    assert leep(theta, two) == pytest.approx(expected)


def test_bad_inputs_are_refused_with_what_was_received():
    with pytest.raises(DataError, match="at least 2 classes"):
        logme(np.ones((4, 2)), np.zeros(4))
    with pytest.raises(DataError, match="one label per example"):
        h_score(np.ones((4, 2)), np.zeros(3))
    with pytest.raises(DataError, match="sum to 1"):
        leep(np.ones((4, 2)), _labels(2, 2))
