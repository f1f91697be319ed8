"""What an artifact written shard by shard holds, whatever the order of records within a shard."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf

from tlpipe.components.sharded_writes import artifact_contents

pytestmark = pytest.mark.quick


def _artifact(folder: str, records: list[bytes], metadata: bytes) -> str:
    os.makedirs(os.path.join(folder, "train"))
    with tf.io.TFRecordWriter(os.path.join(folder, "train", "part-00000-of-00001.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    with open(os.path.join(folder, "metadata.json"), "wb") as handle:
        handle.write(metadata)
    return folder


def test_artifact_contents_ignore_the_order_within_a_shard_and_nothing_else(tmp_path):
    records = [b"a", b"b", b"c"]
    first = artifact_contents(_artifact(str(tmp_path / "1"), records, b"{}"), ".tfrecord")
    assert set(first) == {os.path.join("train", "part-00000-of-00001.tfrecord"), "metadata.json"}
    assert artifact_contents(_artifact(str(tmp_path / "2"), records[::-1], b"{}"), ".tfrecord") == first
    assert artifact_contents(_artifact(str(tmp_path / "3"), [b"a", b"b", b"d"], b"{}"), ".tfrecord") != first
    assert artifact_contents(_artifact(str(tmp_path / "4"), records, b"{ }"), ".tfrecord") != first
