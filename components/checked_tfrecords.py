"""Reading TFRecord files with every record's checksums checked, in Beam; framing records to write them.

A TFRecord record is `length (8 bytes) | masked crc32c of length | data |
masked crc32c of data`. Beam's own reader raises a ValueError with a hex dump
of the record and no file name; this one raises a DataError that names the
file, the record's number and byte offset, and the fix the caller gives
(re-copy the source file, or re-run the step that wrote it).
"""

from __future__ import annotations

import os
import struct
from typing import Any, Iterator

import apache_beam as beam
import google_crc32c
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider

from tlpipe.components.beam_errors import in_dofn
from tlpipe.models.plumbing.errors import DataError

_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")


def masked_crc(data: bytes) -> int:
    """The masked CRC-32C a TFRecord file stores after a record's length and after its data."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: str, fix: str) -> Iterator[bytes]:
    """The records of an uncompressed TFRecord file; DataError at the first damaged one."""
    for _, data in _records_from(path, fix, 0):
        yield data


def _records_from(path: str, fix: str, start: int) -> Iterator[tuple[int, bytes]]:
    """(the byte just past the record, the record) for the records from byte `start` (a record's start) on."""

    def damaged(index: int, offset: int, what: str) -> DataError:
        where = f"record {index} (byte {offset})" if start == 0 else f"the record at byte {offset}"
        return DataError(f"TFRecord file {path!r} is damaged at {where}: {what}; {fix}")

    try:
        handle = open(path, "rb")
    except OSError as error:
        raise DataError(f"TFRecord file {path!r} cannot be read: {error.strerror}; {fix}") from None
    with handle:
        handle.seek(start)
        index, offset = 0, start
        while True:
            header = handle.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise damaged(index, offset, "the file ends inside a record header (truncated)")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc(header[:8]) != length_crc:
                raise damaged(index, offset, "bad checksum of the record length (not a TFRecord file, or corrupt)")
            body = handle.read(length + _CRC.size)
            if len(body) < length + _CRC.size:
                raise damaged(index, offset, f"the file ends inside a {length}-byte record (truncated)")
            data = body[:length]
            if masked_crc(data) != _CRC.unpack(body[length:])[0]:
                raise damaged(index, offset, "bad checksum of the record data (corrupt)")
            index += 1
            offset += _HEADER.size + len(body)
            yield offset, data


def framed(record: bytes) -> bytes:
    """`record` as it is stored in an uncompressed TFRecord file (files are these, concatenated)."""
    length = _LENGTH.pack(len(record))
    return length + _CRC.pack(masked_crc(length)) + record + _CRC.pack(masked_crc(record))


def _read_file(path: str, fix: str) -> Iterator[bytes]:
    try:
        yield from read_records(path, fix)
    except DataError as error:
        raise in_dofn(error) from None


class _CheckpointOnlyTracker(OffsetRestrictionTracker):
    """Byte ranges of a file that split only where the reader checkpoints itself, between two records: a
    runner's own split (a fraction of the remainder) could fall inside a record, and is refused."""

    def try_split(self, fraction_of_remainder: float) -> Any:
        return super().try_split(0) if fraction_of_remainder == 0 else None


class _WholeFile(RestrictionProvider):
    def initial_restriction(self, path: str) -> OffsetRange:
        return OffsetRange(0, os.path.getsize(path))

    def create_tracker(self, restriction: OffsetRange) -> _CheckpointOnlyTracker:
        return _CheckpointOnlyTracker(restriction)

    def restriction_size(self, path: str, restriction: OffsetRange) -> int:
        return restriction.size()


class _ReadInBundles(beam.DoFn):
    """A file's records, at most `bundle_records` per bundle: past them the read checkpoints itself and the
    runner resumes it in a later bundle. Each record claims the offset of its last byte, so a checkpoint
    splits the file at the start of the next record."""

    def __init__(self, fix: str, bundle_records: int):
        self._fix = fix
        self._bundle_records = bundle_records
        self._left = bundle_records

    def start_bundle(self) -> None:
        self._left = self._bundle_records

    def process(self, path: str, tracker: Any = beam.DoFn.RestrictionParam(_WholeFile())) -> Iterator[bytes]:
        try:
            for end, record in _records_from(path, self._fix, tracker.current_restriction().start):
                if not self._left:
                    tracker.defer_remainder()
                    return
                if not tracker.try_claim(end - 1):
                    return
                self._left -= 1
                yield record
        except DataError as error:
            raise in_dofn(error) from None


class ReadCheckedTFRecords(beam.PTransform):
    """The records of `files` (paths listed on the driver), checksums checked; a damaged file fails the run.

    One read for all the files, streamed into the steps after it: Beam's own reads, one per file joined by a
    Flatten (tfx-bsl's `BeamSource` over a file list), make the in-process runner hold that Flatten's output,
    every record of every file, in memory (bench/README.md, "Scale").

    `bundle_records`: at most this many records per bundle (the read checkpoints itself past them), for
    steps that keep state per bundle: the in-process runner runs a step's whole input as one bundle, and a
    combiner's table of partial results lives until the bundle ends. For the in-process runner: Beam 2.77's
    multi-processing runner loses the residuals of a read that checkpoints itself, and the DaskRunner runs no
    splittable DoFn. Without it, a plain read of each file.
    """

    def __init__(self, files: list[str], fix: str, label: str | None = None, *,
                 bundle_records: int | None = None):
        super().__init__(label=label)
        self._files = list(files)
        self._fix = fix
        self._bundle_records = bundle_records

    def expand(self, pbegin: Any) -> Any:
        files = pbegin | "List files" >> beam.Create(self._files)
        if self._bundle_records:
            return files | "Read records in bundles" >> beam.ParDo(_ReadInBundles(self._fix, self._bundle_records))
        return files | "Read records" >> beam.FlatMap(_read_file, self._fix)
