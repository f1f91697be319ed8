"""The fit's bounded shuffle buffer, and the hash buckets that let a window of it mix a class-sorted set."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tlpipe.models import shuffle
from tlpipe.models.shuffle import SHUFFLE_BUFFER_BYTES, hash_buckets, in_hash_buckets, shuffle_buffer_size

pytestmark = pytest.mark.quick


def test_the_shuffle_holds_every_example_up_to_its_byte_budget_then_a_window_of_them():
    image, label = tf.TensorSpec([64, 64, 3], tf.float32), tf.TensorSpec([], tf.int64)
    per_example = 64 * 64 * 3 * 4 + 8
    assert shuffle_buffer_size(24_009, (image, label)) == 24_009  # the embedded default's largest: all of them
    assert shuffle_buffer_size(210_000, (image, label)) == SHUFFLE_BUFFER_BYTES // per_example == 27_302
    assert shuffle_buffer_size(7, (tf.TensorSpec([], tf.string), label)) == 7  # text: its labels alone
    assert shuffle_buffer_size(3, tf.TensorSpec([None, 8], tf.float32)) == 3  # of unknown size: all
    huge = tf.TensorSpec([SHUFFLE_BUFFER_BYTES], tf.float32)
    assert shuffle_buffer_size(3, huge) == 1


def test_hash_buckets_spread_a_class_sorted_set_over_every_window_and_keep_every_record(monkeypatch):
    records = [f"class-{index // 100}/image-{index}".encode() for index in range(300)]  # 3 classes, in order
    monkeypatch.setattr(shuffle, "SHUFFLE_BUFFER_BYTES", 100 * 1000)  # a window of 100 examples of 1,000 bytes
    assert hash_buckets(50, 1000) == 1 and hash_buckets(51, 1000) == 2 and hash_buckets(300, 1000) == 6  # half a window each
    dataset = tf.data.Dataset.from_tensor_slices(records)
    assert in_hash_buckets(dataset, lambda record: record, 1) is dataset  # it fits: read as it is
    ordered = [r for r in in_hash_buckets(tf.data.Dataset.from_tensor_slices(records), lambda record: record, 6)
               .as_numpy_iterator()]
    assert sorted(ordered) == sorted(records) and ordered != records
    for start in range(0, 300, 100):  # every window of 100 holds every class, about a third each
        classes = [record.split(b"/")[0] for record in ordered[start:start + 100]]
        assert all(15 <= classes.count(f"class-{c}".encode()) <= 55 for c in range(3)), classes
    again = list(in_hash_buckets(tf.data.Dataset.from_tensor_slices(records), lambda record: record, 6)
                 .as_numpy_iterator())
    assert again == ordered  # a pure function of the records: the same order on every runner and epoch
