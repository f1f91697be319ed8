"""The fit's shuffle, bounded in memory, and the order that lets a bounded shuffle mix a large training set.

The fit shuffles its training set with a buffer of at most `SHUFFLE_BUFFER_BYTES`
of decoded examples: the whole set when it fits (every training set of the
embedded default does), a window of that many examples over a larger one, so
that training memory does not grow with the data (bench/README.md, "Scale").

A window mixes only what it holds, and a source written class by class (an
image folder) keeps that order. So a training set larger than the buffer
should reach the fit in no particular order: `in_hash_buckets` reorders
records into hash buckets of at most half a window each, reading them once
per bucket; the trainer applies it per shard (`components/trainer/data.py`,
`in_shard_buckets`), since a record's shard is already its hash.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import tensorflow as tf

# A full shuffle up to 27,302 images of 64x64x3 (the embedded default's largest training set, a self-training
# student's, is at most 24,009), a window of that size over larger ones (the same student at 10x the default's
# data: up to 240,000 images, 11 GiB decoded).
SHUFFLE_BUFFER_BYTES = 1280 * 2**20


def element_bytes(element_spec: Any) -> int:
    """Bytes of one element of a dataset with this spec; parts of unknown size (strings, ragged) count as 0."""
    return sum(spec.shape.num_elements() * spec.dtype.size for spec in tf.nest.flatten(element_spec)
               if spec.shape.is_fully_defined() and spec.dtype != tf.string)


def shuffle_buffer_size(num_examples: int, element_spec: Any) -> int:
    """Examples the fit's shuffle holds: all of them when they take at most `SHUFFLE_BUFFER_BYTES`, else as
    many as do (at least 1). Elements of unknown size count as nothing."""
    size = element_bytes(element_spec)
    if not size:
        return max(1, num_examples)
    return max(1, min(num_examples, SHUFFLE_BUFFER_BYTES // size))


def fits_shuffle_buffer(num_examples: int, decoded_bytes: int) -> bool:
    """Whether the fit shuffles `num_examples` decoded examples of `decoded_bytes` each whole (else a window)."""
    return num_examples * decoded_bytes <= SHUFFLE_BUFFER_BYTES


def hash_buckets(num_examples: int, decoded_bytes: int) -> int:
    """How many hash buckets of at most half the fit's shuffle buffer hold `num_examples` decoded examples of
    `decoded_bytes` each (1: they fit in one)."""
    return max(1, math.ceil(num_examples * decoded_bytes / (SHUFFLE_BUFFER_BYTES // 2)))


def in_hash_buckets(records: tf.data.Dataset, key: Callable[..., tf.Tensor], buckets: int) -> tf.data.Dataset:
    """`records` (unchanged for 1 bucket) reordered as `buckets` hash buckets (`hash_buckets`): bucket b is the
    records whose `key(*element)` (a string) hashes to b (`tf.strings.to_hash_bucket_fast`), in their order.

    Each bucket holds a random part of every class, and a window holds at least two whole buckets. The
    records are read once per bucket per epoch, and nothing is held but the window.
    """
    if buckets == 1:
        return records
    return tf.data.Dataset.range(buckets).flat_map(
        lambda bucket: records.filter(lambda *element: tf.strings.to_hash_bucket_fast(key(*element), buckets) == bucket))
