"""Damaged source files: each a DataError naming the file, the position where known, and the fix; no output."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from tlpipe.models.plumbing.errors import DataError

pytestmark = pytest.mark.quick

LABELS = ["a", "b", "c"]


def _idx_folder(kit, name: str, count: int = 30, compress: bool = True) -> str:
    folder = kit.path(name)
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    images = struct.pack(">IIII", 0x0803, count, 8, 8) + rng.integers(0, 255, (count, 8, 8), np.uint8).tobytes()
    labels = struct.pack(">II", 0x0801, count) + (np.arange(count) % 3).astype(np.uint8).tobytes()
    suffix = ".gz" if compress else ""
    for kind, data in (("images-idx3", images), ("labels-idx1", labels)):
        with (gzip.open if compress else open)(os.path.join(folder, f"train-{kind}-ubyte{suffix}"), "wb") as handle:
            handle.write(data)
    return folder


def _ingest_fails(kit, source: str, **fields) -> str:
    with pytest.raises(DataError) as error:
        kit.run(source, splits={"train": "all" if not source.startswith("idx") else "train"}, **fields)
    assert not os.path.exists(kit.path("out")) and not [n for n in os.listdir(kit.root) if n.startswith(".out")]
    message = str(error.value)
    assert "\n" not in message and "[while running" not in message
    return message


def test_a_truncated_gzip_idx_file_names_the_file_and_the_records(kit):
    folder = _idx_folder(kit, "gz")
    images = os.path.join(folder, "train-images-idx3-ubyte.gz")
    os.truncate(images, os.path.getsize(images) - 300)
    message = _ingest_fails(kit, f"idx:{folder}", label_names=LABELS)
    assert f"IDX file {images!r} is corrupt or truncated: reading records from 0" in message
    assert "gunzip -t" in message


def test_a_gzip_idx_file_with_a_corrupt_byte_is_caught_by_its_checksum(kit):
    folder = _idx_folder(kit, "gz")
    labels = os.path.join(folder, "train-labels-idx1-ubyte.gz")
    data = bytearray(open(labels, "rb").read())
    data[-6] ^= 0xFF  # inside the gzip trailer's CRC: the content decompresses, the checksum does not match
    open(labels, "wb").write(bytes(data))
    message = _ingest_fails(kit, f"idx:{folder}", label_names=LABELS)
    assert f"IDX file {labels!r} is corrupt or truncated" in message and "CRC" in message


def test_an_uncompressed_idx_file_shorter_than_its_header_is_refused_before_reading(kit):
    folder = _idx_folder(kit, "plain", compress=False)
    images = os.path.join(folder, "train-images-idx3-ubyte")
    os.truncate(images, 16 + 64 * 20 + 10)
    message = _ingest_fails(kit, f"idx:{folder}", label_names=LABELS)
    assert f"IDX file {images!r} is truncated: its header promises 30 records" in message
    assert "record 20 is the first incomplete one" in message


def _records(kit, name: str, count: int = 4) -> str:
    return kit.tfrecord(name, [{"image": kit.png(i), "label": LABELS[i % 3]} for i in range(count)])


def test_a_tfrecord_with_a_bad_data_checksum_names_the_file_and_the_record(kit):
    _records(kit, "records/good.tfrecord")
    bad = _records(kit, "records/bad.tfrecord")
    data = bytearray(open(bad, "rb").read())
    offset = 0
    for _ in range(2):  # each record: 8-byte length, 4-byte length checksum, data, 4-byte data checksum
        offset += 16 + struct.unpack("<Q", data[offset:offset + 8])[0]
    data[offset + 12 + 5] ^= 0x01  # inside record 2's data
    open(bad, "wb").write(bytes(data))
    message = _ingest_fails(kit, f"tfrecord:{kit.path('records')}")
    assert f"TFRecord file {bad!r} is damaged at record 2 (byte {offset}): bad checksum of the record data" in message
    assert "re-copy or regenerate the file" in message


def test_a_truncated_tfrecord_and_a_file_that_is_no_tfrecord(kit):
    bad = _records(kit, "truncated/part.tfrecord")
    os.truncate(bad, os.path.getsize(bad) - 5)
    assert "is damaged at record 3" in _ingest_fails(kit, f"tfrecord:{bad}")
    text = kit.path("text", "notes.tfrecord")
    os.makedirs(os.path.dirname(text))
    open(text, "w").write("this is not a TFRecord file, just some text")
    assert "bad checksum of the record length" in _ingest_fails(kit, f"tfrecord:{text}")


def test_a_csv_row_with_a_wrong_cell_count_names_the_line(kit):
    path = kit.path("rows.csv")
    open(path, "w").write("text,label\nhello,a\nworld, again,b\nbye,c\n")
    message = _ingest_fails(kit, f"csv:{path}")
    assert f"CSV file {path!r}, line 3: 3 cells, but the header has 2 columns (text, label)" in message


def test_a_csv_with_bytes_that_are_not_utf8_or_broken_quoting_names_the_line(kit):
    path = kit.path("latin.csv")
    open(path, "wb").write("text,label\nhello,a\ncaf\u00e9,b\n".encode("latin-1"))
    assert f"CSV file {path!r}, line 3: not UTF-8 text" in _ingest_fails(kit, f"csv:{path}")
    quoted = kit.path("quoted.csv")
    open(quoted, "w").write('text,label\nhello,a\n"hel"lo,b\n')
    assert f"CSV file {quoted!r}, line 3: ',' expected after '\"'; fix the quoting" in _ingest_fails(kit, f"csv:{quoted}")


def test_an_image_file_that_cannot_be_read_is_listed_before_any_work(kit):
    folder = kit.image_folder("pets", {"cat": 2, "dog": 2})
    broken = os.path.join(folder, "dog", "gone.png")
    os.symlink(os.path.join(folder, "nowhere.png"), broken)  # listed as an image, cannot be opened
    message = _ingest_fails(kit, f"image_folder:{folder}")
    assert f"1 file(s) in image folder {folder!r} cannot be read by this user: {broken!r}" in message


def test_a_tfds_data_dir_with_metadata_but_no_prepared_files(kit):
    import tensorflow_datasets as tfds

    data_dir = kit.path("tfds")
    builder = tfds.builder("mnist", data_dir=data_dir)
    template = tfds.core.ShardedFileTemplate(data_dir=builder.data_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                                             dataset_name=builder.name, filetype_suffix="tfrecord")
    builder.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(name="train", shard_lengths=[5], num_bytes=0,
                                                                     filename_template=template)]))
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)  # looks prepared; the data files are missing
    with pytest.raises(DataError) as error:
        kit.run("tfds:mnist", data_dir=data_dir, splits={"train": "train"})
    message = str(error.value)
    assert "TFDS dataset 'mnist'" in message and "reading split 'train' failed before its first example" in message
    assert "tfds build mnist" in message and "\n" not in message
    assert not os.path.exists(kit.path("out"))
