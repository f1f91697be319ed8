"""Benchmark: which small source network transfers best on the embedded default.

Pre-trains each candidate feature extractor on the five source classes of
Fashion-MNIST (augmented, same budget for all), then transfers it to the five
target classes with 10 labels per class (two k-shot samples): a linear probe on
the frozen features (feature extraction) and a short fine-tune of everything
(head first, then the whole network at a 30x lower rate, batch norm adapting).
Prints source eval accuracy, pre-training time and target test accuracies.

    .venv/bin/python bench/bench_source_architectures.py [--epochs 4] [--candidates a,b,c]
"""

from __future__ import annotations

import argparse
import gzip
import time

import keras
import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(f"{FASHION_MNIST_DIR}/{prefix}-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(f"{FASHION_MNIST_DIR}/{prefix}-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    return images.astype("float32") / 255.0, labels.astype("int64")


def candidate(name: str) -> keras.Model:
    from tlpipe.models.builders import build_small_cnn

    # Candidates of about the same cost (multiply-adds per image): a first run must pre-train in minutes.
    specs = {
        "plain": dict(filters=(32, 64, 128), convs_per_block=1),  # 7.4 M
        "double_narrow": dict(filters=(16, 32, 64), convs_per_block=2),  # 7.3 M: two convs per block, half width
        "deep4": dict(filters=(24, 48, 96, 192), convs_per_block=1),  # 5.7 M: a fourth block at 3x3
    }
    return build_small_cnn((28, 28, 1), name="features", **specs[name])


def augmentation() -> keras.Sequential:
    return keras.Sequential([keras.layers.RandomFlip("horizontal", seed=0),
                             keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=0)])


def classifier(features: keras.Model, num_classes: int) -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Dropout(0.2)(features(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(hidden))


def cosine(lr: float, steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    warmup = steps // 10
    return keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, warmup_target=lr, warmup_steps=warmup)


def pretrain(name: str, source: tuple, epochs: int) -> tuple[keras.Model, float, float]:
    keras.utils.set_random_seed(0)
    (x, y), (xe, ye) = source
    features = candidate(name)
    model = classifier(features, 5)
    steps = epochs * int(np.ceil(len(x) / 128))
    model.compile(keras.optimizers.Adam(cosine(2e-3, steps)), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    aug = augmentation()
    import tensorflow as tf
    data = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(128)
            .map(lambda a, b: (aug(a, training=True), b)).prefetch(2))
    started = time.monotonic()
    model.fit(data, epochs=epochs, verbose=0)
    seconds = time.monotonic() - started
    return features, model.evaluate(xe, ye, verbose=0)[1], seconds


def transfer(features: keras.Model, target: tuple, seed: int) -> tuple[float, float]:
    (x, y), (xt, yt) = target
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 10, replace=False) for c in range(5)])
    xs, ys = x[idx], y[idx]
    keras.utils.set_random_seed(seed)
    base = keras.models.clone_model(features)
    base.set_weights(features.get_weights())
    base.trainable = False
    model = classifier(base, 5)
    model.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xs, ys, batch_size=16, epochs=60, verbose=0)
    probe = model.evaluate(xt, yt, verbose=0)[1]
    base.trainable = True
    model.compile(keras.optimizers.Adam(cosine(3e-4, 500)), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xs, ys, batch_size=16, epochs=500 // 4, verbose=0)
    return probe, model.evaluate(xt, yt, verbose=0)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--candidates", default="plain,double_narrow,deep4")
    args = parser.parse_args()
    x, y = load("train")
    xt, yt = load("test")
    src, tgt = y < 5, y >= 5
    xs, ys = x[src], y[src]
    cut = int(0.9 * len(xs))
    source = ((xs[:cut], ys[:cut]), (xs[cut:], ys[cut:]))
    target = ((x[tgt], y[tgt] - 5), (xt[yt >= 5], yt[yt >= 5] - 5))
    for name in args.candidates.split(","):
        features, source_acc, seconds = pretrain(name, source, args.epochs)
        results = [transfer(features, target, seed) for seed in (0, 1)]
        probes, tuned = zip(*results)
        print(f"{name}: source eval {source_acc:.3f} in {seconds:.0f}s; linear probe "
              f"{' '.join(f'{p:.3f}' for p in probes)}; fine-tune {' '.join(f'{t:.3f}' for t in tuned)}", flush=True)


if __name__ == "__main__":
    main()
