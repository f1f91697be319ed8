"""Transferability scores: how well a module's features suit a target task, before any training.

Each score takes the features a candidate module computes for the labelled
target examples (and, for LEEP and NCE, the probabilities its source
classifier gives them) and needs no gradient step, so ranking a handful of
candidates costs one forward pass each instead of one fine-tuning each.
Higher is better for every score.

- `logme` (You et al., "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning", ICML 2021): for each class, the log marginal
  likelihood (evidence) of the one-vs-rest labels under a Bayesian linear
  model y = f w + noise, w ~ N(0, alpha^-1 I), noise ~ N(0, beta^-1), with
  alpha and beta set by evidence maximisation (MacKay's fixed-point
  updates) over the SVD of the features; averaged over classes and divided
  by the number of examples.
- `h_score` (Bao et al., "An Information-Theoretic Approach to
  Transferability in Task Transfer Learning", ICIP 2019):
  tr(cov(f)^+ cov(E[f | y])), how much of the features' variance is
  between the classes; at most the number of classes minus one.
- `regularized_h_score` (Ibrahim et al. 2022): the H-score with a
  Ledoit-Wolf shrunk feature covariance, which still ranks when there are
  fewer labelled examples than feature dimensions (the plain H-score is then
  classes - 1 for any features).
- `knn_accuracy`: cross-validated k-nearest-neighbour accuracy on the
  features (cosine similarity), the cheapest direct probe.
- `leep` (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of
  Learned Representations", ICML 2020): the average log-likelihood of the
  target labels under the "expected empirical predictor" built from the
  source classifier's probabilities.
- `nce` (Tran et al., "Transferability and Hardness of Supervised
  Classification Tasks", ICCV 2019): the negative conditional entropy
  -H(Y | Z) of the target labels given the source classifier's predicted
  labels.

Pure numpy, float64 throughout.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tlpipe.models.plumbing.errors import DataError

# The scores by name, as `trainer.select`, `tlpipe rank --select` and the rank report call them.
LOGME = "logme"
H_SCORE = "h_score"
REGULARIZED_H_SCORE = "regularized_h_score"
KNN_ACCURACY = "knn_accuracy"
LEEP = "leep"
NCE = "nce"
SCORES = (LOGME, H_SCORE, REGULARIZED_H_SCORE, KNN_ACCURACY, LEEP, NCE)
SOURCE_SCORES = (LEEP, NCE)  # need the module's source classifier

LOGME_MAX_ITERATIONS = 1000
LOGME_TOLERANCE = 1e-7
# alpha / beta is kept within this factor of the largest eigenvalue of F^T F (at least 1), either way:
# beyond it the evidence is at its limit (features that explain nothing, or that interpolate the labels).
LOGME_MAX_RATIO = 1e12


@dataclasses.dataclass(frozen=True)
class LogMEResult:
    """LogME and, per class, the evidence maximisers alpha and beta and the evidence per example."""

    score: float
    alphas: list[float]
    betas: list[float]
    evidences: list[float]
    iterations: list[int]


def _check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2:
        raise DataError(f"features must be a 2-D array (examples, dimensions); received shape {features.shape}")
    if labels.shape != (features.shape[0],):
        raise DataError(
            f"labels must be a 1-D array with one label per example ({features.shape[0]}); received shape {labels.shape}"
        )
    if not np.all(np.isfinite(features)):
        raise DataError("features contain NaN or infinite values")
    if len(np.unique(labels)) < 2:
        raise DataError(f"a transferability score needs at least 2 classes among the labels; received {np.unique(labels)}")
    return features, labels


def _one_hot_classes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, index = np.unique(labels, return_inverse=True)
    return classes, index


def logme(features: np.ndarray, labels: np.ndarray) -> LogMEResult:
    """LogME of `features` (n, D) for integer `labels` (n,); see the module docstring.

    With F = U S V^T and z = U^T y, the fixed point of
    gamma = sum_i beta s_i^2 / (alpha + beta s_i^2), alpha = gamma / m^T m,
    beta = (n - gamma) / ||F m - y||^2 is found per class (one-hot column y),
    where m = beta (alpha I + beta F^T F)^-1 F^T y has coordinates
    beta s_i z_i / (alpha + beta s_i^2) along V and the residual is
    sum_i (alpha z_i / (alpha + beta s_i^2))^2 plus the part of y outside U.
    The evidence at the fixed point is
    n/2 log beta + D/2 log alpha - n/2 log 2 pi - beta/2 ||F m - y||^2
    - alpha/2 m^T m - 1/2 log |alpha I + beta F^T F|.
    """
    features, labels = _check(features, labels)
    n, _ = features.shape
    _, index = _one_hot_classes(labels)
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    sigma2 = s ** 2  # eigenvalues of F^T F; its other D - len(s) are zero
    scale = max(float(sigma2.max()), 1.0)
    floor, ceiling = scale / LOGME_MAX_RATIO, scale * LOGME_MAX_RATIO
    alphas, betas, evidences, iterations = [], [], [], []
    for k in range(index.max() + 1):
        y = (index == k).astype(np.float64)
        z2 = (u.T @ y) ** 2
        outside = max(float(y @ y - z2.sum()), 0.0)
        ratio, beta = 1.0, 1.0  # ratio = alpha / beta
        for iteration in range(1, LOGME_MAX_ITERATIONS + 1):
            gamma, rest, m2, residual = _logme_terms(ratio, sigma2, z2, outside, n)
            new_beta = rest / max(residual, 1e-300)
            # alpha = gamma / m^T m; features that explain nothing (m = 0) send it to infinity (w = 0)
            new_ratio = min(max(gamma / m2 / new_beta, floor), ceiling) if m2 > 0 else ceiling
            converged = (abs(new_ratio - ratio) / ratio < LOGME_TOLERANCE
                         and abs(new_beta - beta) / beta < LOGME_TOLERANCE)
            ratio, beta = new_ratio, new_beta
            if converged or ratio >= ceiling or ratio <= floor:
                break
        gamma, rest, m2, residual = _logme_terms(ratio, sigma2, z2, outside, n)
        beta = rest / max(residual, 1e-300)
        # The evidence with alpha = ratio * beta; the D/2 log alpha and log|A| terms are combined so that
        # they stay finite as alpha grows: D/2 log alpha - 1/2 log|A| = -1/2 sum log(1 + beta s_i^2 / alpha).
        evidence = (n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi) - beta / 2 * (residual + ratio * m2)
                    - float(np.sum(np.log1p(sigma2 / ratio))) / 2)
        alphas.append(ratio * beta)
        betas.append(beta)
        evidences.append(float(evidence) / n)
        iterations.append(iteration)
    return LogMEResult(float(np.mean(evidences)), alphas, betas, evidences, iterations)


def _logme_terms(ratio: float, sigma2: np.ndarray, z2: np.ndarray, outside: float,
                 n: int) -> tuple[float, float, float, float]:
    """gamma, n - gamma, m^T m and ||F m - y||^2 at alpha / beta = `ratio`, in the SVD basis.

    n - gamma is summed as (n - len(s)) + sum ratio / (ratio + s_i^2), which stays accurate when
    gamma nears n (more dimensions than examples, small ratio).
    """
    denominator = ratio + sigma2
    gamma = float(np.sum(sigma2 / denominator))
    rest = (n - len(sigma2)) + float(np.sum(ratio / denominator))
    m2 = float(np.sum(sigma2 * z2 / denominator ** 2))
    residual = float(np.sum((ratio / denominator) ** 2 * z2)) + outside
    return gamma, rest, m2, residual


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score: tr(cov(f)^+ cov(E[f | y])), covariances over the examples (pseudo-inverse for rank-deficient f)."""
    features, labels = _check(features, labels)
    centred = features - features.mean(axis=0)
    covariance = centred.T @ centred / len(features)
    _, index = _one_hot_classes(labels)
    class_means = np.stack([centred[index == k].mean(axis=0) for k in range(index.max() + 1)])
    conditional = class_means[index]  # E[f | y] for each example (centred)
    between = conditional.T @ conditional / len(features)
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ between))


def regularized_h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score with the feature covariance shrunk towards a multiple of the identity (Ledoit-Wolf).

    With fewer examples than dimensions, as with a few labels per class, the
    sample covariance is singular and the plain H-score is classes - 1 for
    any features; shrinkage (Ibrahim et al., "Newer is not always better:
    Rethinking transferability metrics", ICLR 2022) restores a ranking:
    tr(cov_shrunk^-1 (1 - s) cov(E[f | y])), s the Ledoit-Wolf shrinkage.
    """
    features, labels = _check(features, labels)
    centred = features - features.mean(axis=0)
    covariance, shrinkage = _ledoit_wolf(centred)
    _, index = _one_hot_classes(labels)
    class_means = np.stack([centred[index == k].mean(axis=0) for k in range(index.max() + 1)])
    conditional = class_means[index]
    between = conditional.T @ conditional / len(features)
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ ((1 - shrinkage) * between)))


def _ledoit_wolf(centred: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of centred data and its shrinkage (as scikit-learn computes them)."""
    n, p = centred.shape
    empirical = centred.T @ centred / n
    squares = centred ** 2
    trace_terms = squares.sum(axis=0) / n
    mu = trace_terms.sum() / p
    beta_sum = float(np.sum(squares.T @ squares))
    delta_sum = float(np.sum(empirical ** 2))
    beta = (beta_sum / n - delta_sum) / (p * n)
    delta = (delta_sum - 2.0 * mu * trace_terms.sum() + p * mu ** 2) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta <= 0 or delta <= 0 else beta / delta
    return (1 - shrinkage) * empirical + shrinkage * mu * np.eye(p), shrinkage


def knn_accuracy(features: np.ndarray, labels: np.ndarray, *, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Accuracy of a k-nearest-neighbour vote (cosine similarity) under stratified `folds`-fold cross-validation.

    Ties in the vote go to the class with the larger summed similarity. With
    fewer examples of a class than folds, its examples spread over the first folds.
    """
    features, labels = _check(features, labels)
    if k < 1:
        raise DataError(f"k must be an integer >= 1; received {k!r}")
    if folds < 2:
        raise DataError(f"folds must be an integer >= 2; received {folds!r}")
    classes, index = _one_hot_classes(labels)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(index == c))
        fold_of[members] = np.arange(len(members)) % folds
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.where(norms > 0, norms, 1.0)
    correct = 0
    for fold in range(folds):
        test, train = fold_of == fold, fold_of != fold
        if not test.any() or not train.any():
            continue
        similarity = unit[test] @ unit[train].T
        neighbours = min(k, int(train.sum()))
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :neighbours]
        train_index = index[train]
        for row, picks in enumerate(nearest):
            votes = np.bincount(train_index[picks], minlength=len(classes)).astype(np.float64)
            weight = np.bincount(train_index[picks], weights=similarity[row, picks], minlength=len(classes))
            best = np.lexsort((weight, votes))[-1]  # most votes, then largest summed similarity
            correct += int(best == index[test][row])
    return correct / len(labels)


def _check_probabilities(source_probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    theta = np.asarray(source_probabilities, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[0] != len(labels):
        raise DataError(
            f"source probabilities must have shape (examples={len(labels)}, source classes); received {theta.shape}"
        )
    if np.any(theta < 0) or not np.allclose(theta.sum(axis=1), 1.0, atol=1e-3):
        raise DataError("source probabilities must be non-negative and sum to 1 per example (softmax outputs)")
    return theta


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: (1/n) sum_i log sum_z P(y_i | z) theta(x_i)_z, P(y | z) the empirical conditional from theta."""
    labels = np.asarray(labels)
    theta = _check_probabilities(source_probabilities, labels)
    classes, index = _one_hot_classes(labels)
    joint = np.zeros((len(classes), theta.shape[1]))
    np.add.at(joint, index, theta)
    joint /= len(labels)
    marginal = joint.sum(axis=0)
    conditional = joint / np.where(marginal > 0, marginal, 1.0)  # P(y | z)
    expected = np.sum(theta * conditional[index], axis=1)
    return float(np.mean(np.log(np.maximum(expected, 1e-300))))


def nce(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """NCE: -H(Y | Z) with Z the source classifier's predicted (arg-max) class, empirical distributions."""
    labels = np.asarray(labels)
    theta = _check_probabilities(source_probabilities, labels)
    _, index = _one_hot_classes(labels)
    predicted = np.argmax(theta, axis=1)
    joint = np.zeros((index.max() + 1, theta.shape[1]))
    np.add.at(joint, (index, predicted), 1.0)
    joint /= len(labels)
    marginal = joint.sum(axis=0)
    nonzero = joint > 0
    conditional = joint[nonzero] / np.broadcast_to(marginal, joint.shape)[nonzero]
    return float(np.sum(joint[nonzero] * np.log(conditional)))
