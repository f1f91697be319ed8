"""A damaged ingest artifact: transform fails with a DataError naming the file and the record, and writes nothing."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from tlpipe.components.beam import BeamConfig
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.transform.executor import run_transform
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import DataError

pytestmark = pytest.mark.quick


def test_a_shard_with_a_bad_checksum_fails_the_transform_naming_file_and_record(kit, tmp_path):
    records = [kit.image_example(kit.encode(np.full((6, 6), 40 * i, np.uint8)), i % 2, f"id-{i}") for i in range(5)]
    folder = kit.write_artifact(str(tmp_path / "raw"), {"train": records}, modality="image", label_names=["a", "b"])
    shard = fmt.split_files(folder, "train")[0]
    data = bytearray(open(shard, "rb").read())
    offset = 16 + struct.unpack("<Q", data[:8])[0]  # record 1 starts after record 0
    data[offset + 12 + 3] ^= 0x10
    open(shard, "wb").write(bytes(data))

    output = str(tmp_path / "out")
    with pytest.raises(DataError) as error:
        run_transform(TransformConfig(image_size=[4, 4]), BeamConfig(), folder, output)
    message = str(error.value)
    assert f"TFRecord file {shard!r} is damaged at record 1 (byte {offset}): bad checksum of the record data" in message
    assert f"the ingest artifact {folder!r} is damaged: run ingest again" in message
    assert "\n" not in message and "[while running" not in message
    assert not os.path.exists(output) and [n for n in os.listdir(tmp_path) if n.startswith(".out")] == []
