"""Reading TFRecord files with every record's checksums checked, in Beam; framing records to write them.

A TFRecord record is `length (8 bytes) | masked crc32c of length | data |
masked crc32c of data`. Beam's own reader raises a ValueError with a hex dump
of the record and no file name; this one raises a DataError that names the
file, the record's number and byte offset, and the fix the caller gives
(re-copy the source file, or re-run the step that wrote it).
"""

from __future__ import annotations

import struct
from typing import Any, Iterator

import apache_beam as beam
import google_crc32c

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

    def damaged(index: int, offset: int, what: str) -> DataError:
        return DataError(f"TFRecord file {path!r} is damaged at record {index} (byte {offset}): {what}; {fix}")

    try:
        handle = open(path, "rb")
    except OSError as error:
        raise DataError(f"TFRecord file {path!r} cannot be read: {error.strerror}; {fix}") from None
    with handle:
        index = offset = 0
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
            yield data
            index += 1
            offset += _HEADER.size + len(body)


def framed(record: bytes) -> bytes:
    """`record` as it is stored in an uncompressed TFRecord file (files are these, concatenated)."""
    length = _LENGTH.pack(len(record))
    return length + _CRC.pack(masked_crc(length)) + record + _CRC.pack(masked_crc(record))


def _read_file(path: str, fix: str) -> Iterator[bytes]:
    try:
        yield from read_records(path, fix)
    except DataError as error:
        raise in_dofn(error) from None


class ReadCheckedTFRecords(beam.PTransform):
    """The records of `files` (paths listed on the driver), checksums checked; a damaged file fails the run."""

    def __init__(self, files: list[str], fix: str, label: str | None = None):
        super().__init__(label=label)
        self._files = list(files)
        self._fix = fix

    def expand(self, pbegin: Any) -> Any:
        return (
            pbegin
            | "List files" >> beam.Create(self._files)
            | "Read records" >> beam.FlatMap(_read_file, self._fix)
        )
