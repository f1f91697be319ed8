"""Fixtures for the ingest tests: tiny sources written in the test, a runner, an output reader."""

from __future__ import annotations

import gzip
import io
import os
import struct
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tlpipe.components.beam import BeamConfig
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.executor import run_ingest
from tlpipe.models.plumbing import example_format as fmt

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


class Kit:
    """Builders of small sources and a reader of ingest output, rooted in one tmp folder."""

    def __init__(self, root: str):
        self.root = root

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def run(self, source: str, out: str = "out", **fields: Any) -> tuple[dict[str, Any], str]:
        """Ingest `source` with IngestConfig(**fields) into tmp/<out>; returns (metadata, output dir)."""
        output_dir = self.path(out)
        metadata = run_ingest(IngestConfig(source=source, **fields), BeamConfig(), output_dir)
        return metadata, output_dir

    @staticmethod
    def read(output_dir: str, split: str) -> list[dict[str, Any]]:
        """The raw examples of one split as dicts: id, label, name, content (image or text bytes), keys."""
        rows = []
        for path in fmt.split_files(output_dir, split):
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                feature = tf.train.Example.FromString(record).features.feature
                content_key = fmt.IMAGE_ENCODED_KEY if fmt.IMAGE_ENCODED_KEY in feature else fmt.TEXT_KEY
                rows.append({
                    "id": feature[fmt.ID_KEY].bytes_list.value[0].decode(),
                    "label": feature[fmt.LABEL_KEY].int64_list.value[0],
                    "name": feature[fmt.LABEL_NAME_KEY].bytes_list.value[0].decode(),
                    "content": feature[content_key].bytes_list.value[0],
                    "keys": sorted(feature),
                })
        return sorted(rows, key=lambda row: row["id"])

    @staticmethod
    def png(value: int, size: int = 8) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    def image_folder(self, name: str, per_class: dict[str, int]) -> str:
        """tmp/<name>/<class>/img-<i>.png with a distinct grey value per image; returns the folder."""
        folder = self.path(name)
        value = 0
        for class_name, count in per_class.items():
            os.makedirs(os.path.join(folder, class_name), exist_ok=True)
            for i in range(count):
                with open(os.path.join(folder, class_name, f"img-{i:03d}.png"), "wb") as handle:
                    handle.write(self.png(value % 256))
                value += 1
        return folder

    def tfrecord(self, name: str, examples: list[dict[str, Any]]) -> str:
        """Write tf.Examples given as {feature: bytes | int | str} to tmp/<name>; returns the path."""
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tf.io.TFRecordWriter(path) as writer:
            for features in examples:
                feature = {}
                for key, value in features.items():
                    if isinstance(value, int):
                        feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
                    else:
                        data = value.encode() if isinstance(value, str) else value
                        feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        return path


@pytest.fixture
def kit(tmp_path) -> Kit:
    return Kit(str(tmp_path))


def _write_idx(path: str, array: np.ndarray, magic: int, compress: bool) -> None:
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as handle:
        handle.write(data)


def _read_idx_head(path: str, count: int) -> np.ndarray:
    """The first `count` records of a gzipped IDX file of the real data set."""
    with gzip.open(path, "rb") as handle:
        magic = struct.unpack(">I", handle.read(4))[0]
        dims = struct.unpack(f">{magic & 0xFF}I", handle.read(4 * (magic & 0xFF)))
        shape = (count, *dims[1:])
        return np.frombuffer(handle.read(int(np.prod(shape))), dtype=np.uint8).reshape(shape)


@pytest.fixture(scope="session")
def fashion_subset(tmp_path_factory) -> dict[str, Any]:
    """The first 200 train and 50 test records of the real Fashion-MNIST, as gzipped and plain IDX folders."""
    if not os.path.isdir(FASHION_MNIST_DIR):
        pytest.skip(f"Debian package dataset-fashion-mnist is not installed ({FASHION_MNIST_DIR})")
    root = tmp_path_factory.mktemp("fashion")
    data = {}
    for prefix, split, count in (("train", "train", 200), ("t10k", "test", 50)):
        data[split] = (
            _read_idx_head(os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz"), count),
            _read_idx_head(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz"), count),
        )
    for compress in (True, False):
        folder = root / ("gz" if compress else "plain")
        folder.mkdir()
        suffix = ".gz" if compress else ""
        for prefix, split in (("train", "train"), ("t10k", "test")):
            images, labels = data[split]
            _write_idx(str(folder / f"{prefix}-images-idx3-ubyte{suffix}"), images, 0x0803, compress)
            _write_idx(str(folder / f"{prefix}-labels-idx1-ubyte{suffix}"), labels, 0x0801, compress)
    return {"gz": str(root / "gz"), "plain": str(root / "plain"), **data}
