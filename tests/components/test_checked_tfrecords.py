"""Reading TFRecord files in Beam: every record once, at most `bundle_records` per bundle when asked, and a
damaged file named with the byte where it breaks."""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from tlpipe.components.beam import BeamConfig, create_pipeline
from tlpipe.components.checked_tfrecords import ReadCheckedTFRecords, framed, read_records
from tlpipe.models.plumbing.errors import DataError

pytestmark = pytest.mark.quick


def _files(tmp_path, sizes: list[int]) -> tuple[list[str], list[bytes]]:
    """Files of `sizes` records each (records of different lengths), and all the records."""
    paths, records = [], []
    for number, size in enumerate(sizes):
        ours = [f"file {number} record {index} ".encode() * (index + 1) for index in range(size)]
        path = tmp_path / f"part-{number}.tfrecord"
        path.write_bytes(b"".join(framed(record) for record in ours))
        paths.append(str(path))
        records += ours
    return paths, records


class _BundleSizes(beam.DoFn):
    """Emits the number of elements of every bundle it sees."""

    def start_bundle(self) -> None:
        self._count = 0

    def process(self, element: bytes) -> Iterator[int]:
        self._count += 1
        return iter(())

    def finish_bundle(self) -> Iterator[beam.utils.windowed_value.WindowedValue]:
        yield beam.utils.windowed_value.WindowedValue(self._count, 0, [beam.transforms.window.GlobalWindow()])


@pytest.mark.parametrize("bundle_records", [None, 1, 3, 100])
def test_every_record_is_read_once_and_bundles_hold_at_most_bundle_records(tmp_path, bundle_records):
    paths, records = _files(tmp_path, [5, 0, 7, 1])
    with create_pipeline(BeamConfig()) as root:
        read = root | ReadCheckedTFRecords(paths, "fix it", bundle_records=bundle_records)
        assert_that(read, equal_to(records))
        sizes = read | beam.ParDo(_BundleSizes())
        assert_that(sizes, lambda found: _check_bundles(found, bundle_records, len(records)), label="bundles")


def _check_bundles(sizes: list[int], bundle_records: int | None, total: int) -> None:
    assert sum(sizes) == total
    if bundle_records is None:  # the in-process runner: the whole input in one bundle
        assert max(sizes) == total
    else:
        assert max(sizes) <= bundle_records and len([size for size in sizes if size]) >= -(-total // bundle_records)


def test_a_damaged_record_past_a_checkpoint_is_named_by_file_and_byte(tmp_path):
    paths, records = _files(tmp_path, [4])
    data = bytearray(open(paths[0], "rb").read())
    offset = sum(len(framed(record)) for record in records[:3])
    data[offset + 14] ^= 0xFF  # inside the fourth record's data
    open(paths[0], "wb").write(bytes(data))
    with pytest.raises(DataError) as raised:
        with create_pipeline(BeamConfig()) as root:
            root | ReadCheckedTFRecords(paths, "re-run the step", bundle_records=2)
    message = str(raised.value)
    assert f"TFRecord file {paths[0]!r} is damaged at the record at byte {offset}" in message
    assert "bad checksum of the record data (corrupt); re-run the step" in message
    with pytest.raises(DataError, match=rf"is damaged at record 3 \(byte {offset}\)"):
        list(read_records(paths[0], "fix"))
