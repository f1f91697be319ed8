"""The trainer's input: a transform artifact read into tf.data pipelines.

`<transformed_dir>/<split>/*.tfrecord` hold transformed tf.Examples
(`tlpipe.models.plumbing.example_format`) and `metadata.json` the label names, the
modality and the transform's geometry. The datasets yield unbatched
(inputs, label) pairs, images as float32 in [0, 1]: the fit loop shuffles and
batches them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Iterator, Optional

import keras
import numpy as np
import tensorflow as tf

from tlpipe.components.transform.config import TransformConfig
from tlpipe.models.examples import decode_examples
from tlpipe.models.shuffle import element_bytes, fits_shuffle_buffer, hash_buckets, in_hash_buckets
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
_DECODE_BATCH = 256


@dataclasses.dataclass
class TransformedData:
    """The train and eval splits of a transform artifact, and what the model needs to know about them."""

    train: tf.data.Dataset
    eval: tf.data.Dataset
    num_train: int
    num_eval: int
    label_names: list[str]
    modality: str
    image_shape: Optional[tuple[int, int, int]]
    resize_method: str
    text_lowercase: bool

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def describe(self) -> dict[str, Any]:
        """Plain-data summary for the trainer's config and summary files."""
        return {
            "num_train": self.num_train, "num_eval": self.num_eval, "num_classes": self.num_classes,
            "label_names": self.label_names, "modality": self.modality,
            "image_shape": list(self.image_shape) if self.image_shape else None,
        }


@dataclasses.dataclass(frozen=True)
class RecordSplit:
    """One split's serialized examples, read from its shards each time they are needed, never held whole:
    what the trainer streams over a split that grows with the data (self-training's `unlabeled` pool)."""

    files: list[str]
    counts: list[int]  # examples per file

    @property
    def count(self) -> int:
        return sum(self.counts)

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """The serialized examples in shard order, `size` at a time (numpy arrays of bytes)."""
        return tf.data.TFRecordDataset(self.files).batch(size).as_numpy_iterator()

    def dataset(self) -> tf.data.Dataset:
        """The serialized examples in shard order, one by one."""
        return tf.data.TFRecordDataset(self.files)

    def __add__(self, other: "RecordSplit") -> "RecordSplit":
        return RecordSplit(self.files + other.files, self.counts + other.counts)

    def shards(self, indices: np.ndarray) -> Iterator[tuple["RecordSplit", slice, np.ndarray]]:
        """Each file as its own RecordSplit, with the slice of `indices` (sorted, split-wide positions) that
        falls in it and those positions within the file."""
        ends = np.cumsum(self.counts, dtype=np.int64)
        starts = ends - np.asarray(self.counts, dtype=np.int64)
        for path, count, start, end in zip(self.files, self.counts, starts, ends):
            part = slice(*np.searchsorted(indices, [start, end]))
            yield RecordSplit([path], [count]), part, indices[part] - start


def read_split(transformed_dir: str, split: str) -> RecordSplit:
    """The `split` of a transform artifact as a RecordSplit (count 0 and no files when it was not written)."""
    files = fmt.split_files(transformed_dir, split)
    return RecordSplit(files, [_count(path) for path in files])


def shard_buckets(split: RecordSplit, indices: np.ndarray, decoded_bytes: int,
                  training_examples: int) -> Optional[list[int]]:
    """The hash buckets (`hash_buckets`) of each shard's examples at `indices`, or None when they are read as
    they are: the fit's training set of `training_examples` (these and any others) fits its shuffle buffer
    (shuffled whole, whatever the order), or every shard's part fits half of it."""
    if fits_shuffle_buffer(training_examples, decoded_bytes):
        return None
    buckets = [hash_buckets(len(positions), decoded_bytes) for _, _, positions in split.shards(indices)]
    return None if all(count == 1 for count in buckets) else buckets


def in_shard_buckets(split: RecordSplit, indices: np.ndarray, decoded_bytes: int, training_examples: int,
                     examples: Callable[[RecordSplit, slice, np.ndarray], tf.data.Dataset],
                     key: Callable[..., tf.Tensor]) -> tf.data.Dataset:
    """The split's examples at `indices` in the order the fit should read them: as they are when
    `shard_buckets` says so, else shard by shard, a shard's in hash buckets (`in_hash_buckets`).
    `examples(shard, part, positions)` is the dataset of the examples at `indices[part]` of `shard`, a
    RecordSplit (`positions` within it): the whole split with every index, or one of its files.

    Transform writes a record to the shard its hash names, so every shard holds a random part of the split,
    in source order; a window of the fit's shuffle that holds two whole shards or buckets mixes every class,
    whatever that order, and each shard is read once per bucket of it.
    """
    buckets = shard_buckets(split, indices, decoded_bytes, training_examples)
    if buckets is None:
        return examples(split, slice(None), indices)
    datasets = [in_hash_buckets(examples(shard, part, positions), key, count)
                for (shard, part, positions), count in zip(split.shards(indices), buckets)]
    return functools.reduce(tf.data.Dataset.concatenate, datasets)


def load_transformed(transformed_dir: str) -> TransformedData:
    """Read the train and eval splits of `transformed_dir`; DataError when they are missing or empty."""
    metadata = _read_metadata(transformed_dir)
    transform = metadata.get("transform") or {}
    defaults = TransformConfig()
    modality = metadata["modality"]
    image_shape = _image_shape(transformed_dir, transform) if modality == "image" else None
    splits = {}
    for split in (TRAIN_SPLIT, EVAL_SPLIT):
        records = read_split(transformed_dir, split)
        if not records.files:
            present = sorted(
                name for name in os.listdir(transformed_dir) if fmt.split_files(transformed_dir, name)
            )
            raise DataError(
                f"transformed data {transformed_dir!r} has no {split!r} split "
                f"(no {fmt.split_dir(transformed_dir, split)}/*{fmt.SHARD_SUFFIX}); splits present: {present or 'none'}. "
                f"The trainer needs 'train' and 'eval': configure both in ingest.splits"
            )
        if records.count == 0:
            raise DataError(f"the {split!r} split of {transformed_dir!r} is empty ({len(records.files)} shard(s), "
                            "0 examples)")
        splits[split] = (_dataset(records, modality, image_shape, shuffled=split == TRAIN_SPLIT), records.count)
    return TransformedData(
        train=splits[TRAIN_SPLIT][0], eval=splits[EVAL_SPLIT][0],
        num_train=splits[TRAIN_SPLIT][1], num_eval=splits[EVAL_SPLIT][1],
        label_names=list(metadata["label_names"]), modality=modality, image_shape=image_shape,
        resize_method=transform.get("resize_method") or defaults.resize_method,
        text_lowercase=bool(transform.get("text_lowercase", defaults.text_lowercase)),
    )


def default_augmentation(seed: int) -> keras.Sequential:
    """Mild, label-preserving image augmentation: horizontal flips and shifts of up to 10%."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
    ], name="augmentation")


def check_augmentation(augment: bool, modality: str) -> None:
    """Augmentation is defined for images only."""
    if augment and modality != "image":
        raise ConfigError("trainer.augment", augment, f"false for {modality} data (augmentation is for images)")


def _count(path: str) -> int:
    return int(tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def decoded_bytes(modality: str, image_shape: Optional[tuple[int, int, int]]) -> int:
    """Bytes of one decoded (inputs, label) pair: float32 pixels and an int64 label (text: the label alone)."""
    spec = tf.TensorSpec(image_shape, tf.float32) if modality == "image" else tf.TensorSpec([], tf.string)
    return element_bytes((spec, tf.TensorSpec([], tf.int64)))


def _dataset(split: RecordSplit, modality: str, image_shape: Optional[tuple[int, int, int]], *,
             shuffled: bool) -> tf.data.Dataset:
    """Decoded (inputs, label) pairs; the known size lets Keras count the steps of an epoch. A split the fit
    shuffles comes in hash buckets where a shard is larger than half the fit's shuffle buffer
    (`in_shard_buckets`)."""

    def decode(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return decode_examples(serialized, modality, image_shape, with_label=True)

    records = split.dataset()
    if shuffled:
        records = in_shard_buckets(split, np.arange(split.count), decoded_bytes(modality, image_shape), split.count,
                                   lambda shard, *_: shard.dataset(), lambda record: record)
    return (
        records
        .batch(_DECODE_BATCH)
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .apply(tf.data.experimental.assert_cardinality(split.count))
    )


def _read_metadata(transformed_dir: str) -> dict[str, Any]:
    return fmt.read_metadata(transformed_dir, expected="a transform artifact (run the transform component first)")


def _image_shape(transformed_dir: str, transform: dict[str, Any]) -> tuple[int, int, int]:
    size, channels = transform.get("image_size"), transform.get("channels")
    if not size or len(size) != 2 or channels not in (1, 3):
        raise DataError(
            f"{os.path.join(transformed_dir, fmt.METADATA_FILE)}: 'transform' gives image_size {size!r} and channels "
            f"{channels!r}; expected [height, width] and 1 or 3 (is this a transform artifact?)"
        )
    return int(size[0]), int(size[1]), int(channels)
