"""What a person would write by hand instead of the pipeline: the embedded default's training and evaluation.

No Beam, no TFRecords, no TFMA, no export, no subprocesses: NumPy reads the
IDX files, keeps the five target classes, samples 10 training and 10
early-stopping images per class at random from the first 80% / last 20% of
the training file, trains the default's strategies and the from-scratch
baseline with the same model builders, hyper-rule schedule and fit loop as
tlpipe's trainer (on the published source module), and measures test accuracy
on the 5,000 target test images with `model.predict`. Used by
bench/bench_pipeline.py as the reference for the pipeline's overhead; prints
one JSON object (seconds per part, accuracies).

    .venv/bin/python bench/handwritten_keras.py --module tlpipe_runs/modules/fashion-source [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlpipe.components.trainer.engine import schedule_for  # noqa: E402
from tlpipe.components.trainer.executor import unfreeze_for  # noqa: E402
from tlpipe.models.builders import build_baseline_model, build_transfer_model  # noqa: E402
from tlpipe.models.fit import fit_baseline, two_phase_fit  # noqa: E402
from tlpipe.pipeline.config import FASHION_MNIST_DIR, FASHION_MNIST_LABELS, TARGET_CLASSES, load_config  # noqa: E402

PER_CLASS = 10


def _idx(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz")) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz")) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    return images, labels


def _target(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = [FASHION_MNIST_LABELS.index(name) for name in TARGET_CLASSES]
    keep = np.isin(labels, ids)
    return images[keep].astype(np.float32) / 255.0, np.searchsorted(ids, labels[keep])


def _sample(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tf.data.Dataset:
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False)
                             for c in range(len(TARGET_CLASSES))])
    return tf.data.Dataset.from_tensor_slices((images[chosen], labels[chosen]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, help="the published source module (hub format)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="/tmp/handwritten-keras", help="scratch folder for the fit loop")
    args = parser.parse_args()

    imported = time.perf_counter()
    config = load_config().trainer
    train_images, train_labels = _target(*_idx("train"))
    test_images, test_labels = _target(*_idx("t10k"))
    cut = int(0.8 * len(train_labels))
    rng = np.random.default_rng(args.seed)
    train = _sample(train_images[:cut], train_labels[:cut], rng)
    evaluation = _sample(train_images[cut:], train_labels[cut:], rng)
    schedule = schedule_for(config, PER_CLASS * len(TARGET_CLASSES), len(TARGET_CLASSES))
    loaded = time.perf_counter()
    seconds, accuracy = {}, {}
    for name in [*config.strategies, "baseline"]:
        started = time.perf_counter()
        tf.keras.utils.set_random_seed(args.seed)
        if name == "baseline":
            model = build_baseline_model(args.module, len(TARGET_CLASSES), architecture=config.baseline.architecture,
                                         cnn_filters=config.baseline.cnn_filters, dropout=config.head.dropout,
                                         hidden_units=config.head.hidden_units, input_shape=(28, 28, 1))
            fit_baseline(model, train, evaluation, schedule=schedule, output_dir=f"{args.output}/{name}",
                         early_stopping_patience=config.early_stopping_patience, seed=args.seed)
        else:
            model = build_transfer_model(args.module, len(TARGET_CLASSES), dropout=config.head.dropout,
                                         hidden_units=config.head.hidden_units, input_shape=(28, 28, 1),
                                         training_policy=config.base_training)
            two_phase_fit(model, train, evaluation, unfreeze=unfreeze_for(name, config), name=name, schedule=schedule,
                          output_dir=f"{args.output}/{name}", cache_frozen_features=config.cache_frozen_features,
                          early_stopping_patience=config.early_stopping_patience, seed=args.seed)
        trained = time.perf_counter()
        predicted = model.predict(test_images, batch_size=256, verbose=0).argmax(axis=1)
        accuracy[name] = round(float(np.mean(predicted == test_labels)), 4)
        seconds[name] = {"train_s": round(trained - started, 1), "evaluate_s": round(time.perf_counter() - trained, 1)}
    print(json.dumps({"imports_s": round(imported - STARTED, 1), "load_s": round(loaded - imported, 1),
                      "models": seconds, "test_accuracy": accuracy,
                      "total_s": round(time.perf_counter() - STARTED, 1)}))


if __name__ == "__main__":
    main()
