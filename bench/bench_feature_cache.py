"""Benchmark: the frozen phase with the base's features cached vs computed every epoch.

Builds a transfer model on a freshly made hub module (the small CNN tlpipe
pre-trains, 28x28x1 input), then runs the same feature-extraction fit twice on
synthetic images: once with `cache_frozen_features=True` (the base runs once)
and once without. Prints wall time of each and the speed-up.

    .venv/bin/python bench/bench_feature_cache.py [--examples 2000] [--epochs 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tlpipe.models import build_small_cnn, build_transfer_model, export_hub_module, make_schedule, two_phase_fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.random((args.examples, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 5, args.examples)
    data = tf.data.Dataset.from_tensor_slices((images, labels))
    schedule = make_schedule(args.examples, 5, batch_size=32, head_epochs=args.epochs)
    with tempfile.TemporaryDirectory() as folder:
        module = export_hub_module(build_small_cnn((28, 28, 1)), f"{folder}/module")
        timings = {}
        for cached in (True, False):
            keras.utils.set_random_seed(0)
            model = build_transfer_model(module, 5)
            started = time.perf_counter()
            two_phase_fit(model, data, data.take(200), strategy="feature_extraction", schedule=schedule,
                          output_dir=f"{folder}/run-{cached}", cache_frozen_features=cached,
                          early_stopping_patience=args.epochs)
            timings[cached] = time.perf_counter() - started
    print(f"{args.examples} examples, {args.epochs} head epochs: cached {timings[True]:.1f}s, "
          f"uncached {timings[False]:.1f}s, speed-up x{timings[False] / timings[True]:.1f}")


if __name__ == "__main__":
    main()
