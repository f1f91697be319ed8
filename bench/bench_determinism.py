"""Do the same seeds give the same model on another CPU? What TensorFlow's kernel switches change (issue #22).

Why: the same default, same seeds, gave feature_extraction 0.723 on one x86-64
machine and 0.642 on another. The suspect is oneDNN, which TensorFlow uses for
its CPU kernels and which picks its code path by the CPU's instruction sets at
run time (AVX2, AVX-512, AMX ...): other instructions, other float summation
orders, other last digits, and training amplifies them. One machine can play
another: `ONEDNN_MAX_CPU_ISA` caps the instruction sets oneDNN may use, so
`ONEDNN_MAX_CPU_ISA=AVX2` on an AVX-512 machine runs the kernels an AVX2
machine would. `TF_ENABLE_ONEDNN_OPTS=0` turns oneDNN off (TensorFlow's own
Eigen kernels, compiled for one instruction set, run instead).

Each setting trains the same model in a fresh process with the same seeds:
EfficientNet-Lite0 (ImageNet weights) at 64x64 on 1,000 Fashion-MNIST training
images with tlpipe's two-phase fit (a new head for 3 epochs, then the whole
network for 1 epoch at the hyper-rule's lower rate); then it predicts 1,000
test images. The table: test accuracy, the digest
of the predicted classes, the largest difference of a predicted probability
from the first setting's, and the wall time.

    python bench/bench_determinism.py --out bench/results/determinism.json
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

DATASET = "/usr/share/datasets/fashion-mnist"
SETTINGS = {
    "native": {},
    "native, again": {},
    "oneDNN capped at AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN capped at AVX-512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "oneDNN off, capped at AVX2": {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
TRAIN, TEST, SIZE = 1000, 1000, 64


def _idx(name: str, count: int, header: int, shape: tuple[int, ...]) -> np.ndarray:
    with gzip.open(os.path.join(DATASET, name)) as handle:
        data = handle.read(header + count * int(np.prod(shape)))
    return np.frombuffer(data[header:], dtype=np.uint8).reshape((count, *shape))


def _images(name: str, count: int) -> np.ndarray:
    import tensorflow as tf

    raw = _idx(name, count, 16, (28, 28, 1)).astype("float32") / 255.0
    return tf.image.grayscale_to_rgb(tf.image.resize(raw, (SIZE, SIZE))).numpy()


def train_and_predict(out_file: str) -> None:
    """In a fresh process: train with seed 0, write test accuracy and probabilities to `out_file` (.npz)."""
    import tempfile

    import tensorflow as tf

    from tlpipe.components.trainer.determinism import make_deterministic
    from tlpipe.models.builders import build_transfer_model
    from tlpipe.models.fit import UNFREEZE_ALL, two_phase_fit
    from tlpipe.models.hyperrule import make_schedule

    x, y = _images("train-images-idx3-ubyte.gz", TRAIN), _idx("train-labels-idx1-ubyte.gz", TRAIN, 8, ())
    x_test, y_test = _images("t10k-images-idx3-ubyte.gz", TEST), _idx("t10k-labels-idx1-ubyte.gz", TEST, 8, ())
    make_deterministic(0)
    model = build_transfer_model("efficientnet_lite0", 10, input_shape=(SIZE, SIZE, 3))
    schedule = make_schedule(TRAIN, 10, batch_size=32, head_epochs=3, fine_tune_epochs=1)
    batches = lambda images, labels: tf.data.Dataset.from_tensor_slices((images, labels.astype("int64")))  # noqa: E731
    two_phase_fit(model, batches(x, y), batches(x_test[:200], y_test[:200]), unfreeze=UNFREEZE_ALL,
                  schedule=schedule, output_dir=tempfile.mkdtemp(), cache_frozen_features=False, seed=0)
    probabilities = model.predict(x_test, batch_size=100, verbose=0)
    np.savez(out_file, probabilities=probabilities, accuracy=float((probabilities.argmax(1) == y_test).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/determinism.json")
    parser.add_argument("--work", default="/tmp/tlpipe-determinism")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train_and_predict(args.child)
        return
    os.makedirs(args.work, exist_ok=True)
    rows, first = [], None
    for index, (name, switches) in enumerate(SETTINGS.items()):
        env = {key: value for key, value in os.environ.items()
               if key not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
        env.update(switches, TF_CPP_MIN_LOG_LEVEL="2")
        out_file = os.path.join(args.work, f"setting-{index}.npz")
        started = time.monotonic()
        subprocess.run([sys.executable, __file__, "--child", out_file], env=env, check=True)
        seconds = time.monotonic() - started
        result = np.load(out_file)
        probabilities = result["probabilities"]
        first = probabilities if first is None else first
        rows.append({
            "setting": name, "switches": switches, "test_accuracy": round(float(result["accuracy"]), 4),
            "predicted_classes_sha256": hashlib.sha256(probabilities.argmax(1).astype(np.int8).tobytes()).hexdigest()[:12],
            "bitwise_equal_to_first": bool(np.array_equal(probabilities, first)),
            "max_probability_difference_to_first": float(np.abs(probabilities - first).max()),
            "predictions_differing_from_first": int((probabilities.argmax(1) != first.argmax(1)).sum()),
            "seconds": round(seconds, 1),
        })
        print(json.dumps(rows[-1]), flush=True)
    from tlpipe.pipeline.environment import environment

    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"environment": environment(), "train_images": TRAIN, "test_images": TEST, "rows": rows},
                  handle, indent=2)


if __name__ == "__main__":
    main()
