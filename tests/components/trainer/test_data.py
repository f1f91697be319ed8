"""The trainer's input: a transform artifact's train split as the fit reads it."""

from __future__ import annotations

import numpy as np
import pytest

from tlpipe.components.trainer.data import decoded_bytes, load_transformed, read_split
from tlpipe.models import shuffle

from .conftest import IMAGE_SHAPE, class_images

pytestmark = pytest.mark.quick


def test_a_train_split_larger_than_the_shuffle_buffer_is_read_in_hash_buckets(transformed_dir, monkeypatch):
    pixels, labels = class_images(6, seed=0)  # the fixture's train split: 18 images in class order
    in_order = list(load_transformed(transformed_dir).train.as_numpy_iterator())
    np.testing.assert_allclose(np.stack([image for image, _ in in_order]), pixels / 255.0, atol=1e-6)
    assert decoded_bytes("image", IMAGE_SHAPE) == 12 * 12 * 4 + 8 and decoded_bytes("text", None) == 8

    monkeypatch.setattr(shuffle, "SHUFFLE_BUFFER_BYTES", 6 * decoded_bytes("image", IMAGE_SHAPE))  # 6 buckets
    data = load_transformed(transformed_dir)
    bucketed = list(data.train.as_numpy_iterator())
    assert data.num_train == len(bucketed) == 18 and data.train.cardinality() == 18
    assert [label for _, label in bucketed] != labels.tolist()  # no longer class after class
    key = lambda pair: (int(pair[1]), pair[0].tobytes())  # noqa: E731
    assert sorted(map(key, bucketed)) == sorted(map(key, in_order))  # the same examples, each once
    assert len(list(data.eval.as_numpy_iterator())) == 9  # eval is not shuffled: read as it is


def test_read_split_counts_each_shard_and_streams_the_split_in_batches(transformed_dir):
    train = read_split(transformed_dir, "train")
    assert (train.counts, train.count, len(train.files)) == ([18], 18, 1)
    assert [len(batch) for batch in train.batches(8)] == [8, 8, 2]
    assert read_split(transformed_dir, "unlabeled").count == 0 and read_split(transformed_dir, "unlabeled").files == []
    both = train + read_split(transformed_dir, "eval")  # two shards: 18 then 9 examples
    shards = list(both.shards(np.array([0, 5, 17, 18, 26])))
    assert [(shard.files, shard.counts) for shard, _, _ in shards] == [(both.files[:1], [18]), (both.files[1:], [9])]
    assert [(part, positions.tolist()) for _, part, positions in shards] == [
        (slice(0, 3), [0, 5, 17]), (slice(3, 5), [0, 8])]
