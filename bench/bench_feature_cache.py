"""Benchmark: the frozen phase with the base's features cached vs computed every epoch.

Publishes a base as a TF-Hub module with random weights (speed does not depend
on the values), builds a transfer model on it, and runs the same
feature-extraction fit twice on synthetic images: once with
`cache_frozen_features=True` (the base runs once over the training and eval
images, the head trains on the stored features) and once without (the base
runs every epoch). Prints and writes the wall time of each and the speed-up.

Bases: `small_cnn` (the CNN tlpipe pre-trains, 28x28x1), `mobilenet_v2`
(Keras' MobileNetV2 architecture, alpha 1.0, 2.3 M parameters, at 96x96x3: a
realistically sized module) and `efficientnet_lite0` (the embedded default's
module, its ImageNet weights, at the default's 64x64x3; the offline build).

    .venv/bin/python bench/bench_feature_cache.py --base mobilenet_v2 --examples 1000 --epochs 20 \
        --json bench/results/feature_cache.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tlpipe.models import build_small_cnn, build_transfer_model, export_hub_module, make_schedule, two_phase_fit
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.offline_modules import offline_module

def _published(build: Callable[[tuple], keras.Model]) -> Callable[[tuple, str], str]:
    """A base that is a Keras network with random weights, published as a hub module under `folder`."""
    return lambda shape, folder: export_hub_module(build(shape), f"{folder}/module")


BASES: dict[str, tuple[tuple[int, int, int], Callable[[tuple, str], str]]] = {
    "small_cnn": ((28, 28, 1), _published(lambda shape: build_small_cnn(shape))),
    "mobilenet_v2": ((96, 96, 3), _published(lambda shape: keras.applications.MobileNetV2(
        input_shape=shape, weights=None, include_top=False, pooling="avg"))),
    "efficientnet_lite0": ((64, 64, 3), lambda shape, folder: offline_module("efficientnet_lite0")),
}
NUM_CLASSES = 5
EVAL_EXAMPLES = 200


def _breakdown(history: dict, total_s: float) -> dict[str, float]:
    """Where a fit's time went: inside Keras' epochs (training steps and eval), the rest of the phase
    (computing the cached features, compiling, and after every epoch the checkpoint of the whole
    model, history and TensorBoard files), and outside the phase (building, setting up)."""
    epochs = [entry["seconds"] for entry in history["entries"]]
    phase_s = sum(info["seconds"] for info in history["phases"].values())
    return {"epochs": len(epochs), "inside_epochs_s": round(sum(epochs), 1),
            "rest_of_phase_s": round(phase_s - sum(epochs), 1), "outside_phase_s": round(total_s - phase_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", choices=sorted(BASES), default="small_cnn")
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args()

    shape, make_module = BASES[args.base]
    rng = np.random.default_rng(0)
    images = rng.random((args.examples, *shape), dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, args.examples)
    data = tf.data.Dataset.from_tensor_slices((images, labels))
    schedule = make_schedule(args.examples, NUM_CLASSES, batch_size=32, head_epochs=args.epochs)
    with tempfile.TemporaryDirectory() as folder:
        keras.utils.set_random_seed(0)
        module = make_module(shape, folder)
        timings, breakdown = {}, {}
        for cached in (True, False):
            keras.utils.set_random_seed(0)
            model = build_transfer_model(module, NUM_CLASSES, input_shape=shape)
            started = time.perf_counter()
            two_phase_fit(model, data, data.take(EVAL_EXAMPLES), unfreeze=None, schedule=schedule,
                          output_dir=f"{folder}/run-{cached}", cache_frozen_features=cached,
                          early_stopping_patience=args.epochs)
            timings[cached] = time.perf_counter() - started
            with open(f"{folder}/run-{cached}/history.json", encoding="utf-8") as handle:
                history = json.load(handle)
            breakdown[cached] = _breakdown(history, timings[cached])
        started = time.perf_counter()
        model.save_weights(f"{folder}/probe.weights.h5")  # what each epoch's checkpoint writes, at least
        save_weights_s = time.perf_counter() - started
    result = {
        "base": args.base, "input_shape": list(shape),
        "base_parameters": int(model.get_layer("feature_extractor").count_params()),
        "examples": args.examples, "eval_examples": EVAL_EXAMPLES, "head_epochs": args.epochs,
        "cached_s": round(timings[True], 1), "uncached_s": round(timings[False], 1),
        "speed_up": round(timings[False] / timings[True], 1),
        "breakdown": {"cached": breakdown[True], "uncached": breakdown[False]},
        "save_weights_of_whole_model_s": round(save_weights_s, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), TensorFlow {tf.__version__}",
    }
    print(f"{args.base} {shape}, {args.examples} examples, {args.epochs} head epochs: cached {timings[True]:.1f}s, "
          f"uncached {timings[False]:.1f}s, speed-up x{result['speed_up']}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
