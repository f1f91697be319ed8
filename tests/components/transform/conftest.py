"""Fixtures for transform tests: raw examples and ingest artifacts written by hand, per the contract.

The tests do not run ingest: they write `<dir>/<split>/part-*.tfrecord` and
`metadata.json` themselves as `tlpipe.models.plumbing.example_format` describes them.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tlpipe.models.plumbing import example_format as fmt


class Kit:
    """Builders for raw tf.Examples and ingest artifacts, readers of transformed ones."""

    @staticmethod
    def encode(pixels: np.ndarray, image_format: str = "PNG", mode: str | None = None) -> bytes:
        """Encode H x W x C (or H x W) uint8 pixels with PIL."""
        array = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
        buffer = io.BytesIO()
        Image.fromarray(array, mode=mode).save(buffer, format=image_format)
        return buffer.getvalue()

    @staticmethod
    def example(label: int | None, example_id: str | None, **features: bytes) -> bytes:
        """A serialized raw tf.Example; `features` maps contract keys (with '/' as '__') to bytes."""
        feature = {key.replace("__", "/"): tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                   for key, value in features.items()}
        if label is not None:
            feature[fmt.LABEL_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
        if example_id is not None:
            feature[fmt.ID_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[example_id.encode()]))
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    def image_example(self, encoded: bytes, label: int, example_id: str) -> bytes:
        return self.example(label, example_id, image__encoded=encoded)

    def text_example(self, text: str, label: int, example_id: str) -> bytes:
        return self.example(label, example_id, text=text.encode("utf-8"))

    @staticmethod
    def write_artifact(
        folder: str, splits: dict[str, list[bytes]], *, modality: str, label_names: list[str],
        shards: int | dict[str, int] = 1,
    ) -> str:
        """Write an ingest artifact: each split's records dealt round-robin into its number of shards."""
        for split, records in splits.items():
            count = shards if isinstance(shards, int) else shards[split]
            os.makedirs(fmt.split_dir(folder, split), exist_ok=True)
            for shard in range(count):
                path = f"{fmt.shard_prefix(folder, split)}-{shard:05d}-of-{count:05d}{fmt.SHARD_SUFFIX}"
                with tf.io.TFRecordWriter(path) as writer:
                    for record in records[shard::count]:
                        writer.write(record)
        metadata = {
            "modality": modality,
            "label_names": label_names,
            "num_classes": len(label_names),
            "source": "written by the transform tests",
        }
        with open(os.path.join(folder, fmt.METADATA_FILE), "w", encoding="utf-8") as handle:
            json.dump(metadata, handle)
        return folder

    @staticmethod
    def read_examples(folder: str, split: str) -> dict[str, tf.train.Example]:
        """The transformed examples of a split, by id."""
        examples = {}
        for path in fmt.split_files(folder, split):
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                example = tf.train.Example.FromString(record)
                examples[example.features.feature[fmt.ID_KEY].bytes_list.value[0].decode()] = example
        return examples

    @staticmethod
    def stored_pixels(example: tf.train.Example) -> np.ndarray:
        """image/raw reshaped by image/shape."""
        feature = example.features.feature
        shape = list(feature[fmt.IMAGE_SHAPE_KEY].int64_list.value)
        return np.frombuffer(feature[fmt.IMAGE_RAW_KEY].bytes_list.value[0], dtype=np.uint8).reshape(shape)

    @staticmethod
    def tf_reference(pixels: np.ndarray, size: tuple[int, int], channels: int, method: str) -> np.ndarray:
        """The transform's documented TensorFlow recipe, computed with TensorFlow."""
        x = tf.cast(tf.convert_to_tensor(pixels), tf.float32)
        if channels == 1 and x.shape[-1] == 3:
            x = tf.image.rgb_to_grayscale(x)
        if tuple(x.shape[:2]) != tuple(size):
            x = tf.image.resize(x, size, method=method, antialias=True)
        x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
        if channels == 3 and x.shape[-1] == 1:
            x = tf.image.grayscale_to_rgb(x)
        return x.numpy()


@pytest.fixture
def kit() -> Kit:
    return Kit()
