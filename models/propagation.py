"""Label propagation over a k-nearest-neighbour graph: labels for unlabelled examples from the data's shape.

Why: a teacher network's own predictions are most confident exactly where it is
already right, and its confident mistakes (on the embedded default, shirts
taken for bags) are copied into the student. Propagation instead lets the few
labels flow along the unlabelled data's manifold: every example takes the
labels of its neighbours, so a cluster of shirts is labelled by the labelled
shirts it is connected to, whatever the teacher's head says about it
(Zhou et al. 2004, "Learning with local and global consistency"; as a
pseudo-labeller for deep networks, Iscen et al. 2019, "Label propagation for
deep semi-supervised learning").

The graph is built on L2-normalised feature vectors, usually several views
side by side (the fine-tuned network's features and the inputs' principal
components: a view no network was trained on, so the graph does not inherit
the teacher's mistakes). Edge weights are cosine similarities to the power
`SIMILARITY_POWER`, the matrix is made symmetric and normalised
(D^-1/2 W D^-1/2), and the spread labels are the solution of
(I - alpha S) Z = Y, found per class by conjugate gradients as in Iscen et al.
(a fixed number of Z <- alpha S Z + Y steps would leave the far end of a long
cluster unreached).

NumPy/SciPy, no TensorFlow. Up to `EXACT_SEARCH_LIMIT` examples the neighbour
search is exact: O(n^2 d) time (about 10 s for 24,000 images on two cores, so
the embedded default stays exact), memory O(n k) plus one block of
similarities of at most `_BLOCK_BYTES`. Past it the search is approximate, a
graph index (HNSW, faiss-cpu) of O(n log n) time: chosen by measurement over
hnswlib and pynndescent (bench/README.md, "Scale"): at 60,000 Fashion-MNIST
images it found 99.8% of the exact 10 neighbours in a fifth of the exact
search's time (hnswlib: the same recall, a fifth faster, but no release since
2023; pynndescent: 98.4%, four times faiss's time).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as linalg

from tlpipe.models.plumbing.errors import DataError, ModelError

SIMILARITY_POWER = 3  # sharpens the weights: near neighbours count much more (Iscen et al. use 3)
CG_MAX_ITERATIONS = 200
CG_TOLERANCE = 1e-6
EXACT_SEARCH_LIMIT = 30_000  # more examples than this: approximate neighbour search (HNSW)
HNSW_LINKS = 16  # graph degree of the HNSW index (faiss's M)
HNSW_BUILD_DEPTH = 100  # candidates kept while inserting (efConstruction)
HNSW_SEARCH_DEPTH = 64  # candidates kept while searching (efSearch; at least 2 k is used)
_BLOCK_BYTES = 256 * 2**20
_SEARCH_BATCH = 16_384  # rows added to the HNSW index and searched at a time
PCA_BATCH_ROWS = 1024  # rows per batch when principal components are fitted and projected


def normalize_rows(features: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (all-zero rows stay zero)."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def principal_components(inputs: np.ndarray, components: int) -> np.ndarray:
    """The inputs (flattened per example) projected on their first `components` principal axes."""
    flat = np.asarray(inputs).reshape(len(inputs), -1)
    return principal_components_of_batches(
        lambda: (flat[start:start + PCA_BATCH_ROWS] for start in range(0, len(flat), PCA_BATCH_ROWS)), components)


def principal_components_of_batches(batches: Callable[[], Iterable[np.ndarray]], components: int) -> np.ndarray:
    """The rows of `batches()` (arrays [n, ...], flattened per row) projected on their first `components`
    principal axes, float32 [N, components].

    `batches()` is called twice: the axes are fitted on the first pass, from the rows' streamed covariance
    (an eigendecomposition of D x D sums), and the rows projected on the second; so memory is O(D^2) plus
    one batch and the result, never the whole [N, D] array nor a centred copy of it (an SVD of the whole
    array needs both, and its [N, D] left factor; bench/README.md, "Scale", measures the difference). The
    axes are the SVD's up to each one's sign, which no distance between rows sees.
    """
    if components < 1:
        raise ModelError(f"components must be an integer >= 1; received {components!r}")
    mean, axes = _principal_axes(batches(), components)
    return np.concatenate([((np.asarray(batch, np.float32).reshape(len(batch), -1) - mean) @ axes.T)
                           for batch in batches()])


def _principal_axes(batches: Iterable[np.ndarray], components: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows' mean [D] and first principal axes [C, D] (float32), from sums accumulated batch by batch
    in float64 around the first batch's mean (which keeps the covariance's subtraction exact enough)."""
    count, shift, sums, products = 0, None, None, None
    for batch in batches:
        flat = np.asarray(batch, np.float64).reshape(len(batch), -1)
        if shift is None:
            shift = flat.mean(axis=0)
            sums, products = np.zeros_like(shift), np.zeros((len(shift), len(shift)))
        centred = flat - shift  # a copy: `batch` may be the caller's float64 array
        sums += centred.sum(axis=0)
        products += centred.T @ centred
        count += len(centred)
    if not count:
        raise DataError("principal components of no rows: the batches were empty")
    offset = sums / count
    _, vectors = np.linalg.eigh(products / count - np.outer(offset, offset))  # eigenvalues in ascending order
    keep = min(components, count, len(offset))
    return (shift + offset).astype(np.float32), np.ascontiguousarray(vectors[:, ::-1][:, :keep].T, np.float32)


def join_views(views: Sequence[np.ndarray]) -> np.ndarray:
    """Views of the same examples side by side, each L2-normalised so that each weighs the same."""
    if not views or len({len(view) for view in views}) != 1:
        raise DataError(f"views must describe the same examples; received sizes {[len(view) for view in views]}")
    return np.concatenate([normalize_rows(view.reshape(len(view), -1)) for view in views], axis=1)


def nearest_neighbors(features: np.ndarray, neighbors: int, exact_limit: int = EXACT_SEARCH_LIMIT
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `neighbors` nearest other rows by cosine similarity [N, k] and those similarities [N, k];
    exact up to `exact_limit` rows, approximate (HNSW) past it."""
    if len(features) <= exact_limit:
        return _exact_neighbors(normalize_rows(features), neighbors)
    return _approximate_neighbors(features, neighbors)


def _exact_neighbors(unit: np.ndarray, neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    count = len(unit)
    indices, similarities = [], []
    block_rows = max(1, min(count, _BLOCK_BYTES // (4 * count)))
    for start in range(0, count, block_rows):
        similarity = unit[start:start + block_rows] @ unit.T
        block = np.arange(similarity.shape[0])
        similarity[block, start + block] = -np.inf  # no self-loops
        nearest = np.argpartition(-similarity, neighbors - 1, axis=1)[:, :neighbors].copy()  # not a view of the block
        indices.append(nearest)
        similarities.append(np.take_along_axis(similarity, nearest, axis=1))
    return np.concatenate(indices), np.concatenate(similarities)


def _approximate_neighbors(features: np.ndarray, neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows go into the index and are searched `_SEARCH_BATCH` at a time, each batch normalised on the
    way: beside the index's own copy, no unit-norm copy of every row nor [N, k + 1] search results."""
    import faiss

    index = faiss.IndexHNSWFlat(features.shape[1], HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_BUILD_DEPTH
    index.hnsw.efSearch = max(HNSW_SEARCH_DEPTH, 2 * (neighbors + 1))
    count = len(features)
    starts = range(0, count, _SEARCH_BATCH)

    def unit_rows(start: int) -> np.ndarray:
        return normalize_rows(features[start:start + _SEARCH_BATCH])

    for start in starts:
        index.add(unit_rows(start))
    indices = np.empty((count, neighbors), np.int64)
    similarities = np.empty((count, neighbors), np.float32)
    for start in starts:
        found_similarities, found = index.search(unit_rows(start), neighbors + 1)
        # Drop each row itself (or, when the search missed it, the last candidate); -1 marks a slot left empty.
        keep = found != np.arange(start, start + len(found))[:, None]
        keep[keep.all(axis=1), -1] = False
        indices[start:start + len(found)] = found[keep].reshape(len(found), neighbors)
        similarities[start:start + len(found)] = found_similarities[keep].reshape(len(found), neighbors)
    similarities[indices < 0] = 0.0
    return np.maximum(indices, 0, out=indices), similarities


def knn_graph(features: np.ndarray, neighbors: int, exact_limit: int = EXACT_SEARCH_LIMIT) -> sparse.csr_matrix:
    """The symmetric, normalised affinity matrix of the `neighbors`-nearest-neighbour graph (cosine similarity);
    the neighbour search is exact up to `exact_limit` examples, approximate past it."""
    count = len(features)
    if not 1 <= neighbors < count:
        raise ModelError(f"neighbors must be in [1, {count - 1}] for {count} examples; received {neighbors!r}")
    nearest, similarity = nearest_neighbors(features, neighbors, exact_limit)
    weights = np.maximum(similarity.ravel(), 0.0) ** SIMILARITY_POWER
    affinity = sparse.csr_matrix((weights, (np.repeat(np.arange(count), neighbors), nearest.ravel())),
                                 shape=(count, count))
    affinity = affinity + affinity.T
    degree = np.asarray(affinity.sum(axis=1)).ravel()
    scale = sparse.diags(1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)))
    return (scale @ affinity @ scale).tocsr()


def propagate_labels(features: np.ndarray, labels: np.ndarray, num_classes: int, *, neighbors: int = 10,
                     alpha: float = 0.99, exact_limit: int = EXACT_SEARCH_LIMIT) -> np.ndarray:
    """Class scores [N, K] for every row of `features`, spread from the rows whose `labels` are >= 0.

    `labels` holds a class id for the labelled rows and -1 for the others. The
    scores of a row are normalised to sum to 1 (a row the labels never reached
    gets uniform scores), so the top score reads as a confidence. The neighbour
    search is exact up to `exact_limit` rows, approximate past it.
    """
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise DataError(f"{len(features)} feature rows but {len(labels)} labels")
    if not 0.0 < alpha < 1.0:
        raise ModelError(f"alpha must be in (0, 1); received {alpha!r}")
    labelled = labels >= 0
    if labels.max(initial=-1) >= num_classes:
        raise DataError(f"labels must be < num_classes={num_classes}; received {int(labels.max())}")
    missing = sorted(set(range(num_classes)) - set(labels[labelled].tolist()))
    if missing:
        raise DataError(f"label propagation needs at least one labelled example of every class; none of {missing}")
    graph = knn_graph(features, neighbors, exact_limit)
    seeds = np.zeros((len(labels), num_classes), dtype=np.float64)
    seeds[np.flatnonzero(labelled), labels[labelled]] = 1.0
    system = sparse.identity(len(labels), format="csr") - alpha * graph
    scores = np.stack([linalg.cg(system, seeds[:, c], rtol=CG_TOLERANCE, maxiter=CG_MAX_ITERATIONS)[0]
                       for c in range(num_classes)], axis=1)
    scores = np.maximum(scores, 0.0)
    totals = scores.sum(axis=1, keepdims=True)
    return np.where(totals > 0, scores / np.where(totals > 0, totals, 1.0), 1.0 / num_classes)
