"""Benchmark: do transferability scores predict which module fine-tunes best? And does L2-SP help?

1. Publishes candidate modules that differ for real, each pre-trained on
   Fashion-MNIST's source classes (T-shirt, Trouser, Pullover, Dress, Coat)
   with tlpipe's small CNN and published with its source classifier
   (`export_hub_module(..., source_classifier=...)`):
   all five source classes / two of them / three of them, wide / narrow
   networks, long / short training, and one with random weights (batch-norm
   statistics re-estimated on the source images for all of them).
2. Ingests and transforms the default target (the five other classes, 10
   labels per class for training and 10 for early stopping, the test images)
   with the ingest and transform executors and the embedded default's config.
3. Ranks the candidates with `rank_candidates` (LogME, H-score, k-NN, LEEP, NCE).
4. Fine-tunes each candidate with the default trainer (`fine_tune_all`) and
   measures its test accuracy with the exported serving model.
5. Reports, per score, Kendall's tau and the weighted Kendall tau (scipy's
   hyperbolic weighting, as TLlib reports) between the score and the
   fine-tuned test accuracy.
6. L2-SP vs plain `fine_tune_all` on the default source module, 3 trainer seeds.

    .venv/bin/python bench/bench_transferability.py [--source-per-class 2000] [--seeds 0 1 2]
        [--fine-tune-epochs N] [--fine-tune-seeds 0 ...] [--candidates NAME ...] [--work DIR]
        [--output bench/results/transferability.json]

Everything goes to --work (default: a fresh temporary folder); the results
(with the settings used) to --output, rewritten after every stage so that an
interrupted run keeps what it measured; a rerun with the same --work reuses
the published modules, the target data, the cached features and every
finished fine-tuning. `--fine-tune-epochs` caps the fine-tuning phase
(default: the hyper-rule's budget) when time is short.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import tempfile
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from scipy import stats

from tlpipe.components.ingest.executor import run_ingest
from tlpipe.components.rank.executor import SCORES, rank_candidates
from tlpipe.components.trainer.config import RegularizationConfig
from tlpipe.components.trainer.executor import train_transfer
from tlpipe.components.transform.executor import run_transform
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.builders import build_small_cnn
from tlpipe.models.publish import export_hub_module
from tlpipe.pipeline.config import FASHION_MNIST_DIR, load_config

SOURCE_CLASSES = [0, 1, 2, 3, 4]  # T-shirt/top, Trouser, Pullover, Dress, Coat
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "transferability.json")


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str
    classes: tuple[int, ...]
    filters: tuple[int, ...]
    epochs: float  # fractions train on the first part of one epoch (short training)
    random: bool = False


CANDIDATES = (
    Candidate("src5-wide-3ep", (0, 1, 2, 3, 4), (32, 64, 128), 3),
    Candidate("src5-narrow-3ep", (0, 1, 2, 3, 4), (8, 16, 32), 3),
    Candidate("src5-wide-0.2ep", (0, 1, 2, 3, 4), (32, 64, 128), 0.2),
    Candidate("src3-wide-3ep", (0, 2, 4), (32, 64, 128), 3),
    Candidate("src2-wide-3ep", (0, 1), (32, 64, 128), 3),
    Candidate("random-wide", (0, 1, 2, 3, 4), (32, 64, 128), 0, random=True),
)


def read_idx(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz")) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz")) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    return images, labels


def publish(candidate: Candidate, images: np.ndarray, labels: np.ndarray, per_class: int, folder: str) -> dict:
    """Pre-train one candidate on its source classes and publish it with its source classifier."""
    rng = np.random.default_rng(0)
    picks = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in candidate.classes])
    x = images[picks].astype("float32") / 255.0
    y = np.searchsorted(np.array(candidate.classes), labels[picks])
    keras.utils.set_random_seed(0)
    features = build_small_cnn((28, 28, 1), candidate.filters, name="feature_extractor")
    inputs = keras.Input((28, 28, 1), name="image")
    outputs = keras.layers.Dense(len(candidate.classes), activation="softmax", name="classifier")(
        keras.layers.Dropout(0.2)(features(inputs)))
    model = keras.Model(inputs, outputs, name="source_classifier")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.monotonic()
    if not candidate.random:
        batch = 128
        steps = max(1, int(candidate.epochs * len(x) / batch))
        dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).repeat()
                   .batch(batch).prefetch(2))
        epochs = max(1, int(np.ceil(candidate.epochs)))
        model.fit(dataset, epochs=epochs, steps_per_epoch=int(np.ceil(steps / epochs)), verbose=0)
    settle_batch_norm(features, x)
    accuracy = float(model.evaluate(x, y, verbose=0)[1])
    module = export_hub_module(features, os.path.join(folder, candidate.name), source_classifier=model,
                               source_classes=[str(c) for c in candidate.classes])
    return {**dataclasses.asdict(candidate), "module": module, "source_examples": int(len(x)),
            "source_train_accuracy": accuracy, "pretrain_s": round(time.monotonic() - started, 1)}


def settle_batch_norm(network: keras.Model, images: np.ndarray, batches: int = 60) -> None:
    """Re-estimate the batch-norm moving statistics on the source images (forward passes only).

    A few hundred optimizer steps leave Keras' slow moving averages (momentum
    0.99) far from the statistics of the final weights, which makes the
    published features noise; 60 batches at momentum 0.9 settle them. The
    random module gets the same treatment, so all candidates are normalised alike.
    """
    layers = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = 0.9
    rng = np.random.default_rng(1)
    for _ in range(batches):
        network(images[rng.choice(len(images), 128, replace=False)], training=True)
    for layer in layers:
        layer.momentum = 0.99


def test_accuracy(model_dir: str, transformed_dir: str) -> float:
    """Accuracy of an exported serving model on the transform artifact's test split."""
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    files = fmt.split_files(transformed_dir, "test")
    correct = total = 0
    for batch in tf.data.TFRecordDataset(files).batch(500):
        labels = tf.io.parse_example(batch, {fmt.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)})[fmt.LABEL_KEY]
        predicted = serve(examples=batch)["class_ids"]
        correct += int(tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int32)))
        total += int(labels.shape[0])
    return correct / total


def correlations(scores: list[float], accuracies: list[float]) -> dict[str, float]:
    tau = stats.kendalltau(scores, accuracies).statistic
    weighted = stats.weightedtau(scores, accuracies).statistic
    return {"kendall_tau": round(float(tau), 3), "weighted_kendall_tau": round(float(weighted), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-per-class", type=int, default=2000, help="source images per class pre-trained on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="trainer seeds of L2-SP vs plain")
    parser.add_argument("--fine-tune-epochs", type=int, help="fine-tuning epochs (default: the hyper-rule's)")
    parser.add_argument("--fine-tune-seeds", type=int, nargs="+", default=[0],
                        help="trainer seeds of each candidate's fine-tuning (its accuracy: their mean)")
    parser.add_argument("--candidates", nargs="+", default=[c.name for c in CANDIDATES])
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args()
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="tlpipe-bench-transfer-"))
    os.makedirs(work, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"settings": {**vars(args), "work": work}}

    def save() -> None:
        results["total_s"] = round(time.monotonic() - started, 1)
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)

    candidates = [c for c in CANDIDATES if c.name in args.candidates]
    published_file = os.path.join(work, "published.json")
    if os.path.exists(published_file):  # a rerun in the same --work reuses the modules it published
        with open(published_file, encoding="utf-8") as handle:
            published = [p for p in json.load(handle) if p["name"] in args.candidates]
    else:
        images, labels = read_idx("train")
        published = []
        for candidate in candidates:
            published.append(publish(candidate, images, labels, args.source_per_class, os.path.join(work, "modules")))
            print(f"published {candidate.name}: {published[-1]}", flush=True)
        with open(published_file, "w", encoding="utf-8") as handle:
            json.dump(published, handle, indent=1)
    results["candidates"] = published
    save()

    config = load_config(None, [f"trainer.fine_tune_epochs={args.fine_tune_epochs}"] if args.fine_tune_epochs else [])
    raw, transformed = os.path.join(work, "target", "ingest"), os.path.join(work, "target", "transform")
    if not os.path.exists(os.path.join(transformed, fmt.METADATA_FILE)):
        run_ingest(config.ingest, config.beam, raw)
        run_transform(config.transform, config.beam, raw, transformed, image_size=(28, 28), channels=1)

    ranking = rank_candidates([p["module"] for p in published], transformed, os.path.join(work, "rank"))
    by_module = {r["candidate"]: r for r in ranking["candidates"]}
    fine_tuned = []
    for entry in published:
        runs = []
        for seed in args.fine_tune_seeds:  # a finished run in the same --work is restored, not retrained
            folder = os.path.join(work, "fine_tune", entry["name"] + (f"-seed{seed}" if seed else ""))
            summary = train_transfer(dataclasses.replace(config.trainer, seed=seed), transformed, folder,
                                     strategy="fine_tune_all", handle=entry["module"])
            runs.append({"seed": seed, "test_accuracy": round(test_accuracy(summary["model_dir"], transformed), 4),
                         "eval_accuracy": summary["eval_accuracy"], "train_s": summary["timings"]["train_s"]})
        accuracy = float(np.mean([run["test_accuracy"] for run in runs]))
        rank = by_module[entry["module"]]
        fine_tuned.append({"name": entry["name"], "test_accuracy": round(accuracy, 4), "runs": runs,
                           "scores": rank["scores"], "score_seconds": rank["seconds"]})
        print(f"fine-tuned {entry['name']}: test accuracy {accuracy:.4f}; scores {rank['scores']}", flush=True)
        results["fine_tuned_so_far"] = fine_tuned
        save()
    results["ranking"] = {"recommended": os.path.basename(ranking["recommended"]), "reason": ranking["reason"],
                          "per_candidate": fine_tuned}
    accuracies = [f["test_accuracy"] for f in fine_tuned]
    results["correlation_with_fine_tuned_test_accuracy"] = {
        name: correlations([f["scores"][name] for f in fine_tuned], accuracies)
        for name in SCORES if all(name in f["scores"] for f in fine_tuned)
    }
    best = max(fine_tuned, key=lambda f: f["test_accuracy"])
    results["ranking"]["best_fine_tuned"] = best["name"]
    del results["fine_tuned_so_far"]
    save()
    print(json.dumps(results["correlation_with_fine_tuned_test_accuracy"], indent=1), flush=True)

    default_module = next(p["module"] for p in published if p["name"] == CANDIDATES[0].name)
    regularized = {"plain": [], "l2_sp": []}
    for seed in args.seeds:
        for kind in regularized:
            trainer = dataclasses.replace(config.trainer, seed=seed,
                                          regularization=RegularizationConfig(kind="none" if kind == "plain" else kind))
            summary = train_transfer(trainer, transformed, os.path.join(work, "l2_sp", f"{kind}-{seed}"),
                                     strategy="fine_tune_all", handle=default_module)
            accuracy = test_accuracy(summary["model_dir"], transformed)
            regularized[kind].append({"seed": seed, "test_accuracy": round(accuracy, 4),
                                      "eval_accuracy": summary["eval_accuracy"]})
            print(f"{kind} seed {seed}: test accuracy {accuracy:.4f}", flush=True)
            results["l2_sp_vs_plain"] = {"runs_so_far": regularized}
            save()
    results["l2_sp_vs_plain"] = {
        "module": CANDIDATES[0].name, "regularization": dataclasses.asdict(RegularizationConfig(kind="l2_sp")),
        "runs": regularized,
        "mean_test_accuracy": {kind: round(float(np.mean([r["test_accuracy"] for r in runs])), 4)
                               for kind, runs in regularized.items()},
    }
    save()
    print(json.dumps({key: results[key] for key in ("correlation_with_fine_tuned_test_accuracy", "l2_sp_vs_plain")},
                     indent=1))
    print(f"results in {args.output} ({results['total_s']} s)")


if __name__ == "__main__":
    main()
