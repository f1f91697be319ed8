"""Label propagation: labels spread along the data's neighbourhoods, scores read as confidences, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from tlpipe.models.errors import DataError, ModelError
from tlpipe.models.propagation import join_views, knn_graph, principal_components, propagate_labels

pytestmark = pytest.mark.quick


def _two_moons_like(count: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two elongated clusters in 3-d: their far ends are nearer to each other's centre than to their own seed."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, count)
    first = np.stack([np.cos(np.pi * t), np.sin(np.pi * t), np.zeros(count)], axis=1)
    second = np.stack([1.0 - np.cos(np.pi * t), 0.4 - np.sin(np.pi * t), np.zeros(count)], axis=1)
    points = np.concatenate([first, second]) + rng.normal(0.0, 0.01, (2 * count, 3))
    points[:, 2] += 3.0  # keep cosine similarity meaningful (away from the origin)
    return points, np.repeat([0, 1], count)


def test_one_label_per_cluster_labels_each_whole_cluster():
    points, truth = _two_moons_like()
    labels = np.full(len(points), -1)
    labels[0], labels[len(points) // 2] = 0, 1  # one end of each cluster
    scores = propagate_labels(points, labels, 2, neighbors=5)
    assert scores.shape == (len(points), 2)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    assert (scores.argmax(axis=1) == truth).all()  # though the far ends are 60 neighbours from their label


def test_a_component_no_label_reaches_gets_uniform_scores():
    points = np.concatenate([np.eye(3)[[0] * 4] + np.arange(4)[:, None] * 0.01,
                             np.eye(3)[[1] * 4] + np.arange(4)[:, None] * 0.01,
                             np.eye(3)[[2] * 4] + np.arange(4)[:, None] * 0.01])
    labels = np.full(12, -1)
    labels[0], labels[4] = 0, 1
    scores = propagate_labels(points, labels, 2, neighbors=2)
    assert (scores[:4].argmax(1) == 0).all() and (scores[4:8].argmax(1) == 1).all()
    np.testing.assert_allclose(scores[8:], 0.5)


def test_graph_is_symmetric_normalised_and_has_no_self_loops():
    points, _ = _two_moons_like(20)
    graph = knn_graph(points, 4)
    dense = graph.toarray()
    np.testing.assert_allclose(dense, dense.T, atol=1e-7)
    assert (np.diag(dense) == 0).all() and ((dense > 0).sum(axis=1) >= 4).all()


def test_views_weigh_the_same_and_components_capture_the_variance():
    rng = np.random.default_rng(1)
    flat = rng.normal(size=(50, 2)) @ np.array([[3.0, 0, 0, 0], [0, 0.1, 0, 0]])  # variance along axis 0
    projected = principal_components(flat.reshape(50, 2, 2, 1), 1)
    assert projected.shape == (50, 1)
    assert abs(np.corrcoef(projected[:, 0], flat[:, 0])[0, 1]) > 0.99
    joined = join_views([np.full((3, 2), 5.0), np.full((3, 4), 0.1)])
    np.testing.assert_allclose(np.linalg.norm(joined[:, :2], axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(joined[:, 2:], axis=1), 1.0)


def test_errors_say_what_is_wrong():
    points, _ = _two_moons_like(5)
    labels = np.full(10, -1)
    labels[0] = 0
    with pytest.raises(DataError, match=r"every class; none of \[1\]"):
        propagate_labels(points, labels, 2, neighbors=3)
    with pytest.raises(ModelError, match=r"neighbors must be in \[1, 9\]"):
        knn_graph(points, 10)
    with pytest.raises(DataError, match="10 feature rows but 3 labels"):
        propagate_labels(points, np.array([0, 1, -1]), 2)
    with pytest.raises(DataError, match="same examples"):
        join_views([np.zeros((3, 2)), np.zeros((4, 2))])
