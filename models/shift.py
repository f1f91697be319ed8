"""How far apart two domains are, measured on samples of features: proxy A-distance and MMD.

Why: before spending compute on adaptation a user should learn whether the
target domain differs from the source at all, and after adaptation whether the
features moved closer. Both measures work on feature vectors (a base's
outputs on samples of each domain) and need no labels.

- Proxy A-distance (Ben-David et al. 2007/2010, as used by Ganin et al.
  2016): train a linear classifier to tell source from target and measure its
  error `err` on held-out examples; PAD = 2 (1 - 2 err). 0: the domains cannot
  be told apart; 2: they are perfectly separable. The classifier is an L2
  logistic regression on standardised features, its strength picked from a
  small grid on a validation part of the training half; the two domains are
  subsampled to the same size so that chance error is 0.5. An error above 0.5
  (noise) is reported as PAD 0.
- MMD: the squared maximum mean discrepancy with a Gaussian kernel whose
  width is the median pairwise distance of the pooled sample (the median
  heuristic), unbiased estimator. 0 for one distribution, growing with the
  difference; its scale depends on the features, so compare values computed
  on the same features (before vs after adaptation of one base).

Pure numpy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from tlpipe.models.plumbing.errors import DataError

# Above this proxy A-distance the domains are "far apart": a linear probe tells them apart
# with less than 12.5 % error.
LARGE_SHIFT_PAD = 1.5
# Below this, a linear probe errs on more than 37.5 % of the examples: the domains are close.
SMALL_SHIFT_PAD = 0.5
_L2_GRID = (1e-4, 1e-2, 1.0)
_ITERATIONS = 50
_MMD_MAX = 1000


@dataclasses.dataclass(frozen=True)
class ShiftMeasure:
    """Proxy A-distance (with its probe's held-out error) and MMD^2 between two feature samples."""

    proxy_a_distance: float
    probe_error: float
    mmd2: float
    mmd_bandwidth: float
    num_source: int
    num_target: int

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "level": shift_level(self.proxy_a_distance)}


def shift_level(pad: float) -> str:
    """'small', 'moderate' or 'large', by the proxy A-distance."""
    if pad >= LARGE_SHIFT_PAD:
        return "large"
    return "moderate" if pad >= SMALL_SHIFT_PAD else "small"


def measure_shift(source: np.ndarray, target: np.ndarray, *, seed: int = 0) -> ShiftMeasure:
    """Proxy A-distance and MMD between `source` and `target` feature samples ([N, D] each)."""
    source, target = _features(source, "source"), _features(target, "target")
    if source.shape[1] != target.shape[1]:
        raise DataError(f"source and target features differ in size: {source.shape[1]} vs {target.shape[1]}")
    pad, error = proxy_a_distance(source, target, seed=seed)
    mmd2, bandwidth = mmd_squared(source, target, seed=seed)
    return ShiftMeasure(pad, error, mmd2, bandwidth, len(source), len(target))


def proxy_a_distance(source: np.ndarray, target: np.ndarray, *, seed: int = 0,
                     test_fraction: float = 0.5) -> tuple[float, float]:
    """(PAD, held-out error) of a linear source-vs-target classifier; PAD = 2 (1 - 2 err), at least 0."""
    source, target = _features(source, "source"), _features(target, "target")
    rng = np.random.default_rng(seed)
    size = min(len(source), len(target))
    if size < 4:
        raise DataError(f"the proxy A-distance needs at least 4 examples per domain; received {size}")
    features = np.concatenate([source[rng.permutation(len(source))[:size]],
                               target[rng.permutation(len(target))[:size]]])
    domains = np.concatenate([np.zeros(size), np.ones(size)])
    order = rng.permutation(len(features))
    features, domains = features[order], domains[order]
    num_test = max(2, int(round(test_fraction * len(features))))
    train_x, train_y = features[num_test:], domains[num_test:]
    test_x, test_y = features[:num_test], domains[:num_test]
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-8
    train_x, test_x = (train_x - mean) / scale, (test_x - mean) / scale
    l2 = _choose_l2(train_x, train_y)
    weights, bias = _logistic_regression(train_x, train_y, l2)
    error = float(np.mean(((test_x @ weights + bias) > 0) != test_y))
    return max(0.0, 2.0 * (1.0 - 2.0 * error)), error


def mmd_squared(source: np.ndarray, target: np.ndarray, *, bandwidth: float | None = None,
                seed: int = 0) -> tuple[float, float]:
    """(unbiased MMD^2, Gaussian kernel width) of two samples; the width by the median heuristic when None."""
    source, target = _features(source, "source"), _features(target, "target")
    rng = np.random.default_rng(seed)
    source = source[rng.permutation(len(source))[:_MMD_MAX]]
    target = target[rng.permutation(len(target))[:_MMD_MAX]]
    if min(len(source), len(target)) < 2:
        raise DataError("MMD needs at least 2 examples per domain")
    pooled = np.concatenate([source, target])
    if bandwidth is None:
        distances = _squared_distances(pooled, pooled)
        upper = distances[np.triu_indices(len(pooled), k=1)]
        bandwidth = float(np.sqrt(np.median(upper))) or 1.0
    gamma = 1.0 / (2.0 * bandwidth ** 2)
    k_ss = np.exp(-gamma * _squared_distances(source, source))
    k_tt = np.exp(-gamma * _squared_distances(target, target))
    k_st = np.exp(-gamma * _squared_distances(source, target))
    n, m = len(source), len(target)
    mmd2 = ((k_ss.sum() - np.trace(k_ss)) / (n * (n - 1)) + (k_tt.sum() - np.trace(k_tt)) / (m * (m - 1))
            - 2.0 * k_st.mean())
    return float(mmd2), float(bandwidth)


def _features(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.ndim != 2 or len(array) == 0:
        raise DataError(f"{name} features must be a non-empty [N, D] array; received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} features contain NaN or infinite values")
    return array


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(squared, 0.0)


def _logistic_regression(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (few features, few thousand examples)."""
    n, d = x.shape
    design = np.concatenate([x, np.ones((n, 1))], axis=1)
    penalty = np.full(d + 1, l2 * n)
    penalty[-1] = 0.0  # no penalty on the bias
    theta = np.zeros(d + 1)
    for _ in range(_ITERATIONS):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -30, 30)))
        gradient = design.T @ (p - y) + penalty * theta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        update = np.linalg.solve(hessian, gradient)
        theta -= update
        if np.max(np.abs(update)) < 1e-6:
            break
    return theta[:-1], float(theta[-1])


def _choose_l2(x: np.ndarray, y: np.ndarray, grid: Sequence[float] = _L2_GRID) -> float:
    """The L2 strength of the grid with the lowest error on the last quarter of the training half."""
    cut = max(1, int(0.75 * len(x)))
    if cut >= len(x) - 1:
        return grid[len(grid) // 2]
    errors = []
    for l2 in grid:
        weights, bias = _logistic_regression(x[:cut], y[:cut], l2)
        errors.append(np.mean(((x[cut:] @ weights + bias) > 0) != y[cut:]))
    return grid[int(np.argmin(errors))]
