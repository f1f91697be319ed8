"""rank executor: score candidate modules on the target's labelled examples and recommend one.

Which pre-trained module to start from is the first decision of a transfer
project; fine-tuning each candidate to find out costs a training run per
candidate. `rank_candidates` instead runs each candidate once over the
labelled target training examples (one forward pass; the features are cached
in the output folder, so a rerun only re-scores) and computes the
transferability scores of `tlpipe.models.transferability` on them: LogME,
H-score (plain and shrunk) and a cross-validated k-NN accuracy for every module, LEEP and NCE
for modules that carry their source classifier. A candidate that cannot be
loaded or run is reported with its error; the others are still ranked.

Output folder:

  rank.json       every candidate: status, error, scores, seconds per step,
                  and the recommendation with its reason
  rank.md         the same as a Markdown table
  rank.html       the table and rank.png, a bar chart per score
  features/       the cached features (<candidate>.npz and its key)
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tlpipe.models import transferability
from tlpipe.models.transferability import (
    H_SCORE, KNN_ACCURACY, LEEP, LOGME, NCE, REGULARIZED_H_SCORE, SCORES, SOURCE_SCORES,
)
from tlpipe.models.plumbing.artifacts import read_json, write_json
from tlpipe.models.plumbing.errors import ConfigError, ModelError
from tlpipe.models.plumbing.progress import log
from tlpipe.components.rank import report

RANK_JSON = "rank.json"
FEATURES_DIR = "features"
OK = "ok"
FAILED = "failed"
_FORWARD_BATCH = 64


def rank_candidates(
    candidates: Sequence[str],
    transformed_dir: str,
    output_dir: str,
    *,
    select: str = LOGME,
    knn_k: int = 5,
    knn_folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Score every candidate (preset name, module folder or hub handle) on `transformed_dir`'s train split.

    Writes rank.json, rank.md, rank.html and rank.png into `output_dir` and
    returns rank.json's content, whose `recommended` is the candidate with the
    highest `select` score and `reason` says why. ModelError when no candidate
    could be scored (after the report is written).
    """
    if select not in SCORES:
        raise ConfigError("select", select, SCORES)
    if not candidates:
        raise ConfigError("candidates", list(candidates), "at least one preset name, module folder or hub handle")
    if len(set(candidates)) != len(candidates):
        raise ConfigError("candidates", list(candidates), "each candidate at most once")
    from tlpipe.components.trainer.data import load_transformed

    data = load_transformed(transformed_dir)
    inputs, labels = _materialise(data.train)
    log(f"rank: {len(candidates)} candidate(s) on {len(labels)} labelled examples of {data.num_classes} classes")
    os.makedirs(os.path.join(output_dir, FEATURES_DIR), exist_ok=True)
    data_key = {"transformed_dir": os.path.abspath(transformed_dir), "examples": len(labels),
                "labels_sha1": hashlib.sha1(labels.tobytes()).hexdigest()}
    results = []
    for candidate in candidates:
        result = _score_candidate(candidate, inputs, labels, data, data_key, output_dir,
                                  knn_k=knn_k, knn_folds=knn_folds, seed=seed)
        results.append(result)
        if result["status"] == OK:
            log(f"rank: {candidate}: " + ", ".join(f"{name} {value:.4f}" for name, value in result["scores"].items())
                + f" ({result['seconds']['total']:.1f}s)")
        else:
            log(f"rank: {candidate}: failed: {result['error']}")
    recommended, reason = _recommend(results, select)
    ranking = {
        "select": select,
        "recommended": recommended,
        "reason": reason,
        "num_examples": int(len(labels)),
        "num_classes": data.num_classes,
        "label_names": data.label_names,
        "transformed_dir": os.path.abspath(transformed_dir),
        "settings": {"knn_k": knn_k, "knn_folds": knn_folds, "seed": seed},
        "candidates": _ordered(results, select),
    }
    write_json(os.path.join(output_dir, RANK_JSON), ranking)
    report.write_report(ranking, output_dir, scores=SCORES)
    log(f"rank: {reason}; report in {os.path.join(os.path.abspath(output_dir), report.RANK_HTML)}")
    if recommended is None:
        raise ModelError(f"no candidate could be ranked: {reason}")
    return ranking


def _materialise(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """The split's inputs and integer labels as numpy arrays, in the split's order."""
    batches = list(dataset.batch(1024).as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]).astype(np.int64)


def _score_candidate(candidate: str, inputs: np.ndarray, labels: np.ndarray, data: Any, data_key: dict,
                     output_dir: str, *, knn_k: int, knn_folds: int, seed: int) -> dict[str, Any]:
    result: dict[str, Any] = {"candidate": candidate, "status": OK, "error": None, "scores": {}, "seconds": {}}
    started = time.monotonic()
    try:
        features, source = _cached_features(candidate, inputs, data, data_key, output_dir, result)
    except Exception as error:  # any load or forward-pass failure is this candidate's, not the ranking's
        result.update(status=FAILED, error=f"{type(error).__name__}: {error}".strip())
        result["seconds"]["total"] = round(time.monotonic() - started, 3)
        return result
    result["feature_dim"] = int(features.shape[1])
    scorers: dict[str, Callable[[], float]] = {
        LOGME: lambda: transferability.logme(features, labels).score,
        H_SCORE: lambda: transferability.h_score(features, labels),
        REGULARIZED_H_SCORE: lambda: transferability.regularized_h_score(features, labels),
        KNN_ACCURACY: lambda: transferability.knn_accuracy(features, labels, k=knn_k, folds=knn_folds, seed=seed),
    }
    if source is not None:
        scorers[LEEP] = lambda: transferability.leep(source, labels)
        scorers[NCE] = lambda: transferability.nce(source, labels)
    for name, scorer in scorers.items():
        begun = time.monotonic()
        result["scores"][name] = float(scorer())
        result["seconds"][name] = round(time.monotonic() - begun, 4)
    result["seconds"]["total"] = round(time.monotonic() - started, 3)
    return result


def _slug(candidate: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", candidate.rstrip("/"))[-48:].strip("_.") or "candidate"
    return f"{readable}-{hashlib.sha1(candidate.encode()).hexdigest()[:8]}"


def _cached_features(candidate: str, inputs: np.ndarray, data: Any, data_key: dict, output_dir: str,
                     result: dict[str, Any]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The candidate's features (and source probabilities) for `inputs`: from the cache, else one forward pass."""
    stem = os.path.join(output_dir, FEATURES_DIR, _slug(candidate))
    key = {"candidate": candidate, "module_modified": _modified(candidate), **data_key}
    if os.path.exists(stem + ".json") and os.path.exists(stem + ".npz") and read_json(stem + ".json") == key:
        with np.load(stem + ".npz") as cached:
            features = cached["features"]
            source = cached["source_probabilities"] if "source_probabilities" in cached else None
        result.update(features_cached=True, features_file=stem + ".npz")
        result["seconds"]["features"] = 0.0
        return features, source
    begun = time.monotonic()
    layer = _load(candidate, data)
    result["seconds"]["load"] = round(time.monotonic() - begun, 3)
    begun = time.monotonic()
    features, source = _forward(layer, inputs, data)
    result["seconds"]["features"] = round(time.monotonic() - begun, 3)
    arrays = {"features": features} if source is None else {"features": features, "source_probabilities": source}
    np.savez(stem + ".tmp.npz", **arrays)
    os.replace(stem + ".tmp.npz", stem + ".npz")
    write_json(stem + ".json", key)
    result.update(features_cached=False, features_file=stem + ".npz")
    return features, source


def _modified(candidate: str) -> Optional[float]:
    """The latest modification time under a local module folder (a module republished in place is
    re-run, not read from the cache); None for presets and remote handles."""
    if not os.path.isdir(candidate):
        return None
    return max((os.path.getmtime(os.path.join(folder, name))
                for folder, _, names in os.walk(candidate) for name in names), default=None)


def _load(candidate: str, data: Any) -> Any:
    """A frozen HubFeatureVector over the candidate: a preset by name, else a module folder or hub handle."""
    from tlpipe.models.hub_layer import HubFeatureVector
    from tlpipe.models.presets import from_preset, get_preset

    if get_preset(candidate) is not None:
        return from_preset(candidate)
    kwargs = {"input_dtype": "string"} if data.modality == "text" else {}
    return HubFeatureVector(candidate, **kwargs)


def _forward(layer: Any, inputs: np.ndarray, data: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """One pass over `inputs` in batches: flattened features, and the source classifier's probabilities if any."""
    import tensorflow as tf

    from tlpipe.models.publish import source_probabilities_function

    classify = source_probabilities_function(layer.module)
    size = layer.input_size if data.modality == "image" else None
    features, probabilities = [], []
    for begin in range(0, len(inputs), _FORWARD_BATCH):
        batch = tf.constant(inputs[begin:begin + _FORWARD_BATCH])
        if size is not None:
            batch = _fit_geometry(batch, size)
        features.append(np.asarray(layer(batch, training=False), dtype=np.float32).reshape(len(batch), -1))
        if classify is not None:
            probabilities.append(np.asarray(classify(batch), dtype=np.float64))
    source = np.concatenate(probabilities) if probabilities else None
    if source is not None and (source.ndim != 2 or not np.allclose(source.sum(axis=1), 1.0, atol=1e-3)):
        source = None  # a signature of that name that does not give class probabilities: no LEEP / NCE
    return np.concatenate(features), source


def _fit_geometry(batch: Any, size: Sequence[int]) -> Any:
    """Resize images to the module's (H, W) and convert grey <-> RGB to its channels."""
    import tensorflow as tf

    height, width, channels = size
    if tuple(batch.shape[1:3]) != (height, width):
        batch = tf.image.resize(batch, (height, width))
    if batch.shape[-1] == 1 and channels == 3:
        batch = tf.image.grayscale_to_rgb(batch)
    elif batch.shape[-1] == 3 and channels == 1:
        batch = tf.image.rgb_to_grayscale(batch)
    return batch


def _recommend(results: list[dict[str, Any]], select: str) -> tuple[Optional[str], str]:
    scored = [r for r in results if r["status"] == OK and select in r["scores"]]
    failed = [r for r in results if r["status"] != OK]
    failures = "; ".join(f"{r['candidate']}: {r['error']}" for r in failed)
    if not scored:
        if select in SOURCE_SCORES and any(r["status"] == OK for r in results):
            return None, (f"select is {select!r}, which needs a module with a source classifier "
                          f"(a 'source_probabilities' signature); none of the loaded candidates has one")
        return None, f"every candidate failed ({failures})"
    ordered = sorted(scored, key=lambda r: -r["scores"][select])
    best = ordered[0]
    reason = f"highest {select} ({best['scores'][select]:.4f}) of {len(scored)} scored candidate(s)"
    if len(ordered) > 1:
        runner_up = ordered[1]
        reason += f"; next {runner_up['candidate']} ({runner_up['scores'][select]:.4f})"
    if failed:
        reason += f"; {len(failed)} candidate(s) failed to load or run"
    return best["candidate"], reason


def _ordered(results: list[dict[str, Any]], select: str) -> list[dict[str, Any]]:
    """Scored candidates best first (rank 1, 2, ...), then those without the score, then the failed ones."""
    with_score = sorted((r for r in results if select in r["scores"]), key=lambda r: -r["scores"][select])
    others = [r for r in results if select not in r["scores"]]
    for position, result in enumerate(with_score, start=1):
        result["rank"] = position
    for result in others:
        result["rank"] = None
    return with_score + sorted(others, key=lambda r: r["status"] != OK)

