"""Benchmark: Beam ingest + transform of all 70,000 Fashion-MNIST images vs a plain Python loop.

Three ways to write the same TFRecords (raw PNG tf.Examples, then transformed
28x28x1 examples) from Debian's IDX files: tlpipe's ingest and transform on
Beam's `in_process` runner, on its `multi_processing` runner (`--workers`
processes), and a plain loop that calls the same per-record functions
(`encode_png`, `serialize_example`, `transform_record`) and writes with
`tf.io.TFRecordWriter`, without Beam and without the statistics, bad-record
reports and metadata the components also produce. The transformed records of
each way are compared (sorted digests), so the three are known to write the
same examples. Prints and writes wall times and examples per second.

    .venv/bin/python bench/bench_ingest_transform.py --work /tmp/bench-ingest \
        --json bench/results/ingest_transform.json [--ways in_process multi_processing loop]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import platform
import shutil
import time

import numpy as np

from tlpipe.components.beam import BeamConfig
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.executor import run_ingest
from tlpipe.components.ingest.records import encode_png, serialize_example
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.transform.executor import _record_spec, run_transform
from tlpipe.components.transform.records import Transformed, transform_record
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.pipeline.config import FASHION_MNIST_DIR, FASHION_MNIST_LABELS

SPLITS = {"train": "train", "test": "t10k"}
WAYS = ("in_process", "multi_processing", "loop")


def _ingest_config() -> IngestConfig:
    return IngestConfig(source=f"idx:{FASHION_MNIST_DIR}", splits={"train": "train", "test": "test"},
                        label_names=list(FASHION_MNIST_LABELS))


def _transform_config() -> TransformConfig:
    return TransformConfig(image_size=[28, 28], channels=1)


def read_fashion_mnist(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28] and labels [N] of Debian's Fashion-MNIST IDX files, `prefix` "train" or "t10k"."""
    with gzip.open(os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz")) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz")) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    return images, labels


def beam_way(runner: str, workers: int, folder: str) -> dict[str, float]:
    beam = BeamConfig(runner=runner, num_workers=workers)
    raw, transformed = os.path.join(folder, "ingest"), os.path.join(folder, "transform")
    started = time.perf_counter()
    run_ingest(_ingest_config(), beam, raw)
    ingested = time.perf_counter()
    run_transform(_transform_config(), beam, raw, transformed, image_size=(28, 28), channels=1)
    done = time.perf_counter()
    return {"ingest_s": ingested - started, "transform_s": done - ingested, "total_s": done - started,
            "transformed_dir": transformed}


def loop_way(folder: str) -> dict[str, float]:
    import tensorflow as tf

    metadata = {"modality": "image", "label_names": list(FASHION_MNIST_LABELS)}
    spec = _record_spec(_transform_config(), metadata, (28, 28), 1)
    started = time.perf_counter()
    raw_records: dict[str, list[bytes]] = {}
    for split, prefix in SPLITS.items():
        images, labels = read_fashion_mnist(prefix)
        os.makedirs(os.path.join(folder, "ingest", split), exist_ok=True)
        records = raw_records[split] = []
        with tf.io.TFRecordWriter(os.path.join(folder, "ingest", split, "part-00000-of-00001.tfrecord")) as out:
            for i, (pixels, label) in enumerate(zip(images, labels)):
                record = serialize_example(fmt.IMAGE_ENCODED_KEY, encode_png(pixels), int(label),
                                           FASHION_MNIST_LABELS[label], f"{split}:{i}")
                out.write(record)
                records.append(record)
    ingested = time.perf_counter()
    transformed = os.path.join(folder, "transform")
    for split, records in raw_records.items():
        os.makedirs(os.path.join(transformed, split), exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(transformed, split, "part-00000-of-00001.tfrecord")) as out:
            for record in records:
                result = transform_record(record, spec)
                assert isinstance(result, Transformed), result
                out.write(result.example)
    done = time.perf_counter()
    return {"ingest_s": ingested - started, "transform_s": done - ingested, "total_s": done - started,
            "transformed_dir": transformed}


def digest(transformed_dir: str) -> tuple[int, str]:
    """(number of transformed records, digest of their sorted digests): equal digests, equal examples.

    Each record is parsed and serialized again deterministically: protobuf does not fix the byte order of
    a map's entries (the features), and Beam's worker processes write them in another order than this one.
    """
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(transformed_dir, "*", "*.tfrecord*")))
    digests = sorted(hashlib.sha256(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True))
                     .hexdigest() for r in tf.data.TFRecordDataset(files))
    return len(digests), hashlib.sha256("".join(digests).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="scratch folder (emptied first)")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--workers", type=int, default=2, help="multi_processing workers")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    results = {}
    for way in args.ways:
        folder = os.path.join(args.work, way)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        timing = loop_way(folder) if way == "loop" else beam_way(way, args.workers, folder)
        count, checksum = digest(timing.pop("transformed_dir"))
        results[way] = {**{k: round(v, 1) for k, v in timing.items()}, "examples": count,
                        "examples_per_s": round(count / timing["total_s"]), "transformed_digest": checksum[:16]}
        print(f"{way}: {json.dumps(results[way])}", flush=True)
    same = len({r["transformed_digest"] for r in results.values()}) == 1
    print(f"same transformed examples in every way: {same}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "same_transformed_examples": same, "workers": args.workers,
                       "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)"}, handle, indent=2)
            handle.write("\n")


if __name__ == "__main__":
    main()
