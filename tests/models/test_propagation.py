"""Label propagation: labels spread along the data's neighbourhoods, scores read as confidences, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from tlpipe.models.plumbing.errors import DataError, ModelError
from tlpipe.models.propagation import (
    join_views, knn_graph, nearest_neighbors, principal_components, principal_components_of_batches, propagate_labels,
)

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


def test_components_of_batches_are_the_whole_arrays_svd_projection_up_to_sign():
    rng = np.random.default_rng(2)
    images = (rng.random((300, 6, 6, 1)) ** 3 + 5.0).astype(np.float32)  # far from the origin, as pixels are
    flat = images.reshape(300, -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ axes[:5].T  # the whole-array SVD projection principal_components used to compute
    passes = []

    def batches():
        passes.append(len(passes))
        return (images[start:start + 64] for start in range(0, 300, 64))

    projected = principal_components_of_batches(batches, 5)
    assert passes == [0, 1] and projected.shape == (300, 5) and projected.dtype == np.float32
    signs = np.sign(np.sum(projected * expected, axis=0))
    np.testing.assert_allclose(projected * signs, expected, atol=2e-4)
    np.testing.assert_allclose(np.abs(principal_components(images, 5)), np.abs(projected), atol=1e-5)
    assert principal_components(images[:4], 10).shape == (4, 4)  # no more components than rows
    before = flat.copy()
    principal_components(flat, 3)
    np.testing.assert_array_equal(flat, before)  # the caller's array is left as it was


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
    with pytest.raises(DataError, match="principal components of no rows"):
        principal_components_of_batches(lambda: iter(()), 3)
    with pytest.raises(ModelError, match="components must be an integer >= 1"):
        principal_components(points, 0)


def _clustered(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` points in 20-d around 5 centres, and each point's centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (5, 20))
    truth = rng.integers(0, 5, count)
    return centres[truth] + rng.normal(0.0, 0.3, (count, 20)), truth


def test_past_the_exact_limit_the_search_is_approximate_and_finds_nearly_every_neighbour():
    points, _ = _clustered(3000)
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    exact, exact_similarity = nearest_neighbors(unit, 10)
    approximate, similarity = nearest_neighbors(unit, 10, exact_limit=1000)
    assert approximate.shape == exact.shape == (3000, 10)
    assert not (approximate == np.arange(3000)[:, None]).any()  # no self-loops
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert recall > 0.95
    np.testing.assert_allclose(np.sort(similarity, axis=1)[:, -1], np.sort(exact_similarity, axis=1)[:, -1],
                               atol=1e-5)  # the nearest neighbour's similarity


def test_approximate_graph_propagates_the_labels_the_exact_graph_does():
    points, truth = _clustered(3000, seed=1)
    labels = np.full(len(points), -1)
    for label in range(5):
        labels[np.flatnonzero(truth == label)[:3]] = label
    exact = propagate_labels(points, labels, 5).argmax(axis=1)
    approximate = propagate_labels(points, labels, 5, exact_limit=1000).argmax(axis=1)
    graph = knn_graph(points, 10, exact_limit=1000)
    assert abs(graph - graph.T).max() < 1e-6 and graph.diagonal().max() == 0.0
    assert np.mean(exact == truth) > 0.95
    assert np.mean(approximate == exact) > 0.99


def test_the_approximate_search_in_batches_finds_the_neighbours_of_rows_of_any_norm(monkeypatch):
    from tlpipe.models import propagation

    points, _ = _clustered(3000, seed=1)
    points *= np.random.default_rng(2).uniform(0.5, 4.0, (3000, 1))  # cosine neighbours ignore the norms
    exact, _ = nearest_neighbors(points, 10)
    monkeypatch.setattr(propagation, "_SEARCH_BATCH", 700)  # five batches, the last one short
    approximate, similarity = nearest_neighbors(points, 10, exact_limit=1000)
    assert approximate.shape == (3000, 10) and similarity.dtype == np.float32
    assert not (approximate == np.arange(3000)[:, None]).any()
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)]) > 0.95
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    np.testing.assert_allclose(similarity, np.sum(unit[:, None, :] * unit[approximate], axis=2), atol=1e-5)
