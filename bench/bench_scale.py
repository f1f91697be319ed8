"""Benchmark: the default's target pipeline data at 1x, 3x and 10x: wall time and peak memory of every step.

The data: Fashion-MNIST (Debian's IDX files) repeated `scale` times, every
copy after the first with seeded augmentation (each image shifted by up to 2
pixels each way and mirrored with probability 1/2), written as IDX files; the
embedded default's target ingest (5 classes, train[:80%] / train[80%:] / test,
10 labels per class, the rest as the unlabelled pool) then holds about
24,000 x scale unlabelled and 5,000 x scale test images.

Each step runs in a child process (this script with `--child`); its peak
memory is the child's ru_maxrss (os.wait4), its time the child's own clock
around the step (imports excluded):

- ingest, transform: the components on the in-process runner (64x64x3 as the
  default; 4 shards per 1x of data);
- train_input: the trainer's decoding (`decode_examples`, as `trainer.data`
  reads the train split) over the unlabelled split in batches of 256, every
  batch read, no training;
- propagation_exact / propagation_approximate: label propagation from the 50
  labels over the unlabelled pool's first 100 principal components (the raw
  view of the default's graph; computing the pool's Lite0 features would take
  most of an hour at 10x; fitted and projected in batches read from the IDX
  file, as self-training does), exact and HNSW neighbour search; accuracy
  against the pool's true labels;
- self_training_input: self-training without its fits, as the trainer runs it
  on the transform's splits: the default's labeler (propagation over the
  teacher's features and the images' 100 principal components; the teacher:
  a small CNN classifier trained on 1,000 images, not Lite0, for the reason
  above), the selection, and one shuffled epoch of the student's input (train split and
  pseudo-labelled examples streamed from the unlabelled shards, the fit's
  shuffle window), every batch read;
- evaluate: the evaluator (TFMA, in-process) of two small models on the test
  split (a CNN candidate and a linear baseline, trained on 1,000 images);
- dask_1, dask_2: ingest then transform on a local Dask cluster of 1 and 2
  workers (wall time only: the workers are not this script's children);
- dask_same: the last Dask run's artifacts against the in-process runner's
  (the ingest and transform steps' folders): the same files, every shard
  holding the same records (compared as sorted SHA-256 digests), every other
  file byte for byte.

    .venv/bin/python bench/bench_scale.py --work /tmp/bench-scale --scales 1 3 10 \\
        --steps data ingest transform train_input propagation_exact propagation_approximate \\
        self_training_input evaluate \\
        --json bench/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Iterator

import numpy as np

SHIFT = 2
CHUNK = 10_000
SHARDS_PER_SCALE = 4
BATCH = 256
STEPS = ("data", "ingest", "transform", "train_input", "propagation_exact", "propagation_approximate",
         "self_training_input", "evaluate", "dask_1", "dask_2", "dask_same")


def _folders(work: str, scale: int) -> dict[str, str]:
    root = os.path.join(work, f"{scale}x")
    return {name: os.path.join(root, name) for name in ("data", "ingest", "transform", "evaluation", "dask")}


def _augmented(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by up to SHIFT pixels each way (zeros shifted in) and mirrored with probability 1/2."""
    padded = np.pad(images, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))
    rows = rng.integers(0, 2 * SHIFT + 1, len(images))
    cols = rng.integers(0, 2 * SHIFT + 1, len(images))
    out = np.empty_like(images)
    for index, (row, col) in enumerate(zip(rows, cols)):
        out[index] = padded[index, row:row + 28, col:col + 28]
    flip = rng.random(len(images)) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def make_data(folder: str, scale: int, seed: int) -> dict[str, int]:
    """IDX files of Fashion-MNIST repeated `scale` times (copies after the first augmented), written chunk by chunk."""
    from bench_ingest_transform import read_fashion_mnist  # here: that module imports TensorFlow

    os.makedirs(folder, exist_ok=True)
    counts = {}
    for prefix in ("train", "t10k"):
        images, labels = read_fashion_mnist(prefix)
        total = len(images) * scale
        with open(os.path.join(folder, f"{prefix}-images-idx3-ubyte"), "wb") as image_file, \
                open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"), "wb") as label_file:
            image_file.write(np.array([0x0803, total, 28, 28], ">u4").tobytes())
            label_file.write(np.array([0x0801, total], ">u4").tobytes())
            for copy in range(scale):
                rng = np.random.default_rng([seed, copy, len(prefix)])
                for start in range(0, len(images), CHUNK):
                    chunk = images[start:start + CHUNK]
                    image_file.write((chunk if copy == 0 else _augmented(chunk, rng)).tobytes())
                label_file.write(labels.tobytes())
        counts[prefix] = total
    return counts


def _ingest_config(data_dir: str, scale: int) -> Any:
    import dataclasses

    from tlpipe.pipeline.config import _target_ingest

    return dataclasses.replace(_target_ingest(), source=f"idx:{data_dir}", num_shards=SHARDS_PER_SCALE * scale)


def _transform(beam_config: Any, ingest_dir: str, transform_dir: str) -> dict[str, Any]:
    from tlpipe.components.transform.executor import run_transform
    from tlpipe.pipeline.config import EMBEDDED_IMAGE_SIZE, _target_transform

    shutil.rmtree(transform_dir, ignore_errors=True)
    statistics = run_transform(_target_transform(), beam_config, ingest_dir, transform_dir,
                               image_size=tuple(EMBEDDED_IMAGE_SIZE), channels=3)
    return {"examples": sum(report["examples"] for report in statistics["splits"].values())}


def _ingest(beam_config: Any, data_dir: str, ingest_dir: str, scale: int) -> dict[str, Any]:
    from tlpipe.components.ingest.executor import run_ingest

    shutil.rmtree(ingest_dir, ignore_errors=True)
    metadata = run_ingest(_ingest_config(data_dir, scale), beam_config, ingest_dir)
    return {"examples": sum(metadata["num_examples"].values()), "num_examples": metadata["num_examples"]}


def _train_input(transform_dir: str) -> dict[str, Any]:
    import tensorflow as tf

    from tlpipe.components.trainer.data import _image_shape, _read_metadata
    from tlpipe.models.plumbing import example_format as fmt
    from tlpipe.models.examples import decode_examples

    metadata = _read_metadata(transform_dir)
    shape = _image_shape(transform_dir, metadata["transform"])
    dataset = (tf.data.TFRecordDataset(fmt.split_files(transform_dir, fmt.UNLABELED_SPLIT))
               .batch(BATCH).map(lambda batch: decode_examples(batch, "image", shape)[0],
                                 num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
    return {"examples": sum(int(images.shape[0]) for images in dataset)}


def _pool(data_dir: str, scale: int, seed: int) -> tuple[Callable[[], Iterator[np.ndarray]], np.ndarray, np.ndarray]:
    """The unlabelled pool (as the default's ingest splits it): its images batch by batch, their true labels,
    and 50 seeds."""
    from tlpipe.pipeline.config import FASHION_MNIST_LABELS, TARGET_CLASSES

    config = _ingest_config(data_dir, scale)
    train = config.split_specs()["train"]
    with open(os.path.join(data_dir, "train-labels-idx1-ubyte"), "rb") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    target = [FASHION_MNIST_LABELS.index(name) for name in TARGET_CLASSES]
    keep = np.flatnonzero(np.isin(labels, target))
    keep = np.array([index for index in keep if train.contains(f"train:{index}")])
    truth = np.searchsorted(target, labels[keep])
    rng = np.random.default_rng(seed)
    seeds = np.concatenate([rng.choice(np.flatnonzero(truth == c), 10, replace=False) for c in range(len(target))])
    path = os.path.join(data_dir, "train-images-idx3-ubyte")

    def batches() -> Iterator[np.ndarray]:
        """The pool's images in [0, 1], from CHUNK rows of the file at a time (read, not memory-mapped: the
        pages of a mapping stay resident and would count as the step's memory)."""
        for start in range(0, len(labels), CHUNK):
            rows = np.fromfile(path, np.uint8, count=CHUNK * 784, offset=16 + start * 784).reshape(-1, 784)
            yield rows[keep[(keep >= start) & (keep < start + CHUNK)] - start].astype(np.float32) / 255.0

    return batches, truth, seeds


def _propagation(data_dir: str, scale: int, seed: int, exact: bool) -> dict[str, Any]:
    from tlpipe.models.propagation import principal_components_of_batches, propagate_labels

    batches, truth, seeds = _pool(data_dir, scale, seed)
    features = principal_components_of_batches(batches, 100)
    labels = np.full(len(truth), -1)
    labels[seeds] = truth[seeds]
    started = time.perf_counter()
    scores = propagate_labels(features, labels, 5, exact_limit=len(truth) if exact else 0)
    unlabelled = labels < 0
    return {"examples": len(truth), "graph_and_propagation_s": round(time.perf_counter() - started, 1),
            "accuracy": round(float(np.mean(scores.argmax(axis=1)[unlabelled] == truth[unlabelled])), 4)}


def _models(folder: str) -> dict[str, str]:
    """A small CNN and a linear model on 64x64x3 inputs, trained on 1,000 target images, exported for serving."""
    import keras

    if os.path.isdir(folder):
        return {name: os.path.join(folder, name) for name in sorted(os.listdir(folder))}
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    hidden = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(32, 3, strides=2, activation="relu")(hidden))
    models = {"cnn": keras.Model(inputs, keras.layers.Dense(5, activation="softmax", name="classifier")(hidden)),
              "linear": keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Flatten(),
                                          keras.layers.Dense(5, activation="softmax", name="classifier")])}
    return {name: _trained_export(model, os.path.join(folder, name)) for name, model in models.items()}


def _teacher(folder: str) -> str:
    """A tlpipe Classifier on a small CNN base (its export has the `serving_features` signature that label
    propagation reads), trained as `_models`' models are."""
    import keras

    from tlpipe.models.builders import Classifier

    if os.path.isdir(folder):
        return folder
    keras.utils.set_random_seed(0)
    base = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
                             keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
                             keras.layers.GlobalAveragePooling2D()], name="small_cnn")
    return _trained_export(Classifier(base, 5, input_shape=(64, 64, 3), dropout=0.0), folder)


def _trained_export(model: Any, folder: str) -> str:
    """`model` trained for 2 epochs on 1,000 target images (Fashion-MNIST upsampled to 64x64x3), exported."""
    from bench_ingest_transform import read_fashion_mnist

    from tlpipe.models.serving import export_for_serving
    from tlpipe.pipeline.config import FASHION_MNIST_LABELS, TARGET_CLASSES

    images, labels = read_fashion_mnist("train")
    target = [FASHION_MNIST_LABELS.index(name) for name in TARGET_CLASSES]
    keep = np.flatnonzero(np.isin(labels, target))[:1000]
    x = np.repeat(np.kron(images[keep], np.ones((2, 2), np.uint8))[..., None], 3, axis=-1)[:, :56, :56]
    x = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0))).astype("float32") / 255.0
    y = np.searchsorted(target, labels[keep])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return export_for_serving(model, folder, label_names=list(TARGET_CLASSES), modality="image",
                              image_size=[64, 64], channels=3)


def _self_training_input(work: str, transform_dir: str) -> dict[str, Any]:
    from tlpipe.components.trainer.data import TRAIN_SPLIT, load_transformed, read_split
    from tlpipe.components.trainer.self_training import (
        label_scores, load_unlabeled, select_pseudo_labels, with_pseudo_labels,
    )
    from tlpipe.components.trainer.self_training_config import SelfTrainingConfig
    from tlpipe.models.shuffle import shuffle_buffer_size

    teacher = _teacher(os.path.join(work, "teacher"))
    settings = SelfTrainingConfig()
    started = time.perf_counter()
    labelled, pool = load_transformed(transform_dir), load_unlabeled(transform_dir)
    scores, _ = label_scores(settings, teacher, read_split(transform_dir, TRAIN_SPLIT), pool, labelled)
    indices, labels = select_pseudo_labels(scores, *settings.selection())
    labelled_at = time.perf_counter()
    data = with_pseudo_labels(labelled, pool, indices, labels)
    window = shuffle_buffer_size(data.num_train, data.train.element_spec)
    epoch = data.train.shuffle(window, seed=0).batch(BATCH).prefetch(2)
    read = sum(int(batch_labels.shape[0]) for _, batch_labels in epoch)
    return {"examples": pool.count, "pseudo_labelled": len(indices), "student_examples_read": read,
            "shuffle_window": window, "labelling_s": round(labelled_at - started, 1),
            "student_epoch_s": round(time.perf_counter() - labelled_at, 1)}


def _evaluate(work: str, transform_dir: str, output: str) -> dict[str, Any]:
    from tlpipe.components.evaluator.config import EvaluatorConfig
    from tlpipe.components.evaluator.executor import run_evaluator

    models = _models(os.path.join(work, "models"))
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    summary = run_evaluator(EvaluatorConfig(compare_with_production=False), transform_dir, {"cnn": models["cnn"]},
                            {"linear": models["linear"]}, output)
    return {"examples": summary["num_examples"], "models": 2, "evaluator_s": round(time.perf_counter() - started, 1)}


def _dask_same(folders: dict[str, str]) -> dict[str, Any]:
    from tlpipe.components.sharded_writes import artifact_contents
    from tlpipe.models.plumbing.example_format import SHARD_SUFFIX

    result: dict[str, Any] = {}
    for step in ("ingest", "transform"):
        on_dask = artifact_contents(os.path.join(folders["dask"], step), SHARD_SUFFIX)
        in_process = artifact_contents(folders[step], SHARD_SUFFIX)
        result[f"{step}_files"] = len(in_process)
        result[f"{step}_records"] = sum(len(value) for value in in_process.values() if isinstance(value, list))
        result[f"{step}_differ"] = sorted(path for path in set(on_dask) | set(in_process)
                                          if on_dask.get(path) != in_process.get(path))
    return result


def run_child(step: str, work: str, scale: int, seed: int) -> dict[str, Any]:
    """Run one step of one scale in this process; returns what it measured (wall_s, examples, ...)."""
    from tlpipe.components.beam import BeamConfig

    folders = _folders(work, scale)
    started = time.perf_counter()
    if step == "data":
        result = make_data(folders["data"], scale, seed)
    elif step == "ingest":
        result = _ingest(BeamConfig(), folders["data"], folders["ingest"], scale)
    elif step == "transform":
        result = _transform(BeamConfig(), folders["ingest"], folders["transform"])
    elif step == "train_input":
        result = _train_input(folders["transform"])
    elif step.startswith("propagation_"):
        result = _propagation(folders["data"], scale, seed, exact=step == "propagation_exact")
    elif step == "self_training_input":
        result = _self_training_input(work, folders["transform"])
    elif step == "evaluate":
        result = _evaluate(work, folders["transform"], folders["evaluation"])
    elif step == "dask_same":
        result = _dask_same(folders)
    else:  # dask_N
        dask = BeamConfig(runner="dask", num_workers=int(step.split("_")[1]))
        ingest_dir, transform_dir = os.path.join(folders["dask"], "ingest"), os.path.join(folders["dask"], "transform")
        result = _ingest(dask, folders["data"], ingest_dir, scale)
        result["ingest_s"] = round(time.perf_counter() - started, 1)
        result["examples"] += _transform(dask, ingest_dir, transform_dir)["examples"]
    return {"wall_s": round(time.perf_counter() - started, 1), **result}


def measure(step: str, work: str, scale: int, seed: int) -> dict[str, Any]:
    """Run a step in a child process; its result with the child's peak resident memory."""
    out = os.path.join(work, f"{scale}x", f".{step}.json")
    child = subprocess.Popen([sys.executable, __file__, "--child", step, "--work", work, "--scales", str(scale),
                              "--seed", str(seed), "--json", out])
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        return {"step": step, "scale": scale, "failed": f"exit status {status}"}
    with open(out) as handle:
        result = json.load(handle)
    seconds = result.get("evaluator_s", result["wall_s"])  # evaluate: without training its two models
    per_example = seconds / result["examples"] if result.get("examples") else None
    return {"step": step, "scale": scale, **result, "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "ms_per_example": round(1000 * per_example, 3) if per_example else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="scratch folder (data and artifacts per scale)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="results are added to this JSON file (kept between runs)")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from tlpipe.models.plumbing.progress import set_quiet

        set_quiet(True)
        result = run_child(args.child, args.work, args.scales[0], args.seed)
        with open(args.json, "w") as handle:
            json.dump(result, handle)
        return
    results: dict[str, Any] = {}
    if args.json and os.path.exists(args.json):
        with open(args.json) as handle:
            results = json.load(handle)
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work)"
    results["seed"] = args.seed
    for scale in args.scales:
        for step in args.steps:
            row = measure(step, args.work, scale, args.seed)
            print(json.dumps(row), flush=True)
            results.setdefault("runs", {})[f"{step}@{scale}x"] = row
            if args.json:
                with open(args.json, "w") as handle:
                    json.dump(results, handle, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
