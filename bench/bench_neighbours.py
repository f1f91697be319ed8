"""Benchmark: choosing label propagation's approximate neighbour search (models/propagation.py) by measurement.

The first N Fashion-MNIST training images, as label propagation's raw view
sees them (first 100 principal components, L2-normalised), k = 10 cosine
neighbours of every image: the exact blocked search of `propagation.py`
against HNSW in hnswlib and in faiss-cpu (links 16, build depth 100, search
depth 64 / 50) and NN-descent in pynndescent. Recall: the share of the exact
neighbours each finds. hnswlib and pynndescent are not tlpipe dependencies:
`pip install hnswlib==0.8.0 pynndescent==0.7.0` first.

    .venv/bin/python bench/bench_neighbours.py --examples 60000 --json bench/results/neighbours.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from typing import Callable

import numpy as np

from tlpipe.models.propagation import _approximate_neighbors, _exact_neighbors, normalize_rows, principal_components

K = 10


def _features(count: int) -> np.ndarray:
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 784)[:count]
    return normalize_rows(principal_components(images.astype(np.float32) / 255.0, 100))


def _without_self(found: np.ndarray) -> np.ndarray:
    return np.array([[j for j in row if j != i][:K] for i, row in enumerate(found)])


def _hnswlib(unit: np.ndarray) -> np.ndarray:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=unit.shape[1])
    index.init_index(max_elements=len(unit), ef_construction=100, M=16, random_seed=0)
    index.add_items(unit, np.arange(len(unit)))
    index.set_ef(64)
    return _without_self(index.knn_query(unit, k=K + 1)[0])


def _pynndescent(unit: np.ndarray) -> np.ndarray:
    import pynndescent

    return _without_self(pynndescent.NNDescent(unit, metric="cosine", n_neighbors=K + 1, random_state=0).neighbor_graph[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    unit = _features(args.examples)
    started = time.perf_counter()
    exact = _exact_neighbors(unit, K)[0]
    results = {"examples": len(unit), "k": K, "exact_s": round(time.perf_counter() - started, 1), "searches": {}}
    searches: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "faiss-cpu HNSW (tlpipe)": lambda u: _approximate_neighbors(u, K)[0],
        "hnswlib HNSW": _hnswlib, "pynndescent": _pynndescent}
    for name, search in searches.items():
        started = time.perf_counter()
        found = search(unit)
        seconds = time.perf_counter() - started
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact)]))
        results["searches"][name] = {"s": round(seconds, 1), "recall": round(recall, 4)}
        print(name, results["searches"][name], flush=True)
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work)"
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
