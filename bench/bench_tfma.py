"""Benchmark: the evaluator (TFMA) on two models over the 10,000 Fashion-MNIST test images.

Ingests and transforms the test split (all ten classes, 28x28x1; not timed),
trains two small models for one epoch on 10,000 training images (a CNN
candidate, a linear baseline: speed hardly depends on the weights), exports
both with `export_for_serving`, then times `run_evaluator` (one TFMA run:
both models side by side, overall and per-class metrics with jackknife
intervals, the paired difference, confusion matrices, then the report and
plots) against Keras' own `model.evaluate` of the two serving signatures over
the same serialized examples, which is the floor any evaluation pays.

    .venv/bin/python bench/bench_tfma.py --work /tmp/bench-tfma --json bench/results/tfma.json
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import platform
import shutil
import time

import numpy as np

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.executor import run_evaluator
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.executor import run_ingest
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.transform.executor import run_transform
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.pipeline.config import FASHION_MNIST_DIR, FASHION_MNIST_LABELS

TRAIN_IMAGES = 10_000


def _data(work: str) -> str:
    raw, transformed = os.path.join(work, "ingest"), os.path.join(work, "transform")
    if not os.path.isdir(transformed):
        config = IngestConfig(source=f"idx:{FASHION_MNIST_DIR}", splits={"test": "test"},
                              label_names=list(FASHION_MNIST_LABELS))
        run_ingest(config, BeamConfig(), raw)
        run_transform(TransformConfig(image_size=[28, 28], channels=1), BeamConfig(), raw, transformed,
                      image_size=(28, 28), channels=1)
    return transformed


def _models(work: str) -> dict[str, str]:
    import keras

    from tlpipe.models.serving import export_for_serving

    with gzip.open(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:TRAIN_IMAGES]
    with gzip.open(os.path.join(FASHION_MNIST_DIR, "train-labels-idx1-ubyte.gz")) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)[:TRAIN_IMAGES]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    models = {
        "cnn": keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="classifier")(x)),
        "linear": keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                    keras.layers.Dense(10, activation="softmax", name="classifier")]),
    }
    paths = {}
    for name, model in models.items():
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(images.astype("float32") / 255.0, labels, epochs=1, batch_size=64, verbose=0)
        paths[name] = export_for_serving(model, os.path.join(work, "models", name), label_names=FASHION_MNIST_LABELS,
                                         modality="image", image_size=[28, 28], channels=1)
    return paths


def _keras_floor(transformed: str, models: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Seconds to run both serving signatures over the serialized test examples, and their accuracies."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(transformed, "test", "*.tfrecord*")))
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    labels = np.array([tf.train.Example.FromString(r).features.feature["label"].int64_list.value[0]
                       for r in serialized])
    started = time.perf_counter()
    accuracies = {}
    for name, path in models.items():
        serve = tf.saved_model.load(path).signatures["serving_default"]
        probabilities = np.concatenate([serve(examples=tf.constant(serialized[i:i + 1000]))["probabilities"].numpy()
                                        for i in range(0, len(serialized), 1000)])
        accuracies[name] = float(np.mean(probabilities.argmax(axis=1) == labels))
    return time.perf_counter() - started, accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="scratch folder (data and models are kept between runs)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    transformed = _data(args.work)
    models_dir = os.path.join(args.work, "models")
    models = ({name: os.path.join(models_dir, name) for name in sorted(os.listdir(models_dir))}
              if os.path.isdir(models_dir) else _models(args.work))
    floor_s, floor_accuracy = _keras_floor(transformed, models)
    output = os.path.join(args.work, "evaluation")
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    summary = run_evaluator(EvaluatorConfig(compare_with_production=False), transformed, {"cnn": models["cnn"]},
                            {"linear": models["linear"]}, output)
    evaluator_s = time.perf_counter() - started
    result = {
        "examples": summary["num_examples"], "models": 2,
        "evaluator_s": round(evaluator_s, 1), "examples_per_s": round(2 * summary["num_examples"] / evaluator_s),
        "serving_signatures_only_s": round(floor_s, 1),
        "accuracy": {name: round(entry["accuracy"]["value"], 4) for name, entry in summary["models"].items()},
        "accuracy_from_signatures": {name: round(value, 4) for name, value in floor_accuracy.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
