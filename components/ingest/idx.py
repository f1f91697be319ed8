"""`idx:DIR`: MNIST-family IDX files (MNIST, Fashion-MNIST, KMNIST ...), gzipped or not.

`train-images-idx3-ubyte[.gz]` with `train-labels-idx1-ubyte[.gz]` is source
split `train`; the `t10k-*` pair is split `test` (a '.' instead of the '-'
before `idx`, as in the original MNIST files, is accepted too). Labels are
integers; `label_names` names them. Example ids are `split:index`, stable
when records are appended. Images are stored PNG-encoded.

Damaged files are DataErrors naming the file and the records: an uncompressed
file shorter than its header promises is refused before any work; a truncated
or corrupt gzip file where its records are read (the chunk holding the last
record reads to the end, so gzip checks the stream's checksum).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any, BinaryIO, Iterator, Optional

import apache_beam as beam
import numpy as np

from tlpipe.components.beam_errors import in_dofn
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.labels import LabelSet
from tlpipe.components.ingest.records import SourceRecord, encode_png
from tlpipe.components.ingest.sources import Source, file_fingerprint, require_path
from tlpipe.models.plumbing.errors import DataError

_PREFIXES = (("train", "train"), ("t10k", "test"))
_IMAGES_MAGIC = 0x0803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x0801  # unsigned bytes, 1 dimension
_CHUNK = 10000  # records per Beam work item
_FIX = "re-download or re-copy the file (check it with `gunzip -t` when it is gzipped)"


def _open(path: str) -> BinaryIO:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _find(folder: str, prefix: str, kind: str, dims: int) -> Optional[str]:
    """The file of one kind ('images'/'labels'); the uncompressed one wins when both exist."""
    for separator in ("-", "."):
        for suffix in ("", ".gz"):
            path = os.path.join(folder, f"{prefix}-{kind}{separator}idx{dims}-ubyte{suffix}")
            if os.path.isfile(path):
                return path
    return None


def _read_header(path: str, magic: int, dims: int) -> tuple[int, ...]:
    """The dimension sizes in an IDX header, checking the magic number."""
    try:
        with _open(path) as handle:
            header = handle.read(4 * (dims + 1))
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"IDX file {path!r} cannot be read: {error}; {_FIX}") from None
    if len(header) < 4 * (dims + 1) or struct.unpack(">I", header[:4])[0] != magic:
        raise DataError(
            f"{path!r} is not an IDX file of unsigned bytes with {dims} dimension(s) "
            f"(expected magic number 0x{magic:08x} and a {4 * (dims + 1)}-byte header)"
        )
    return struct.unpack(f">{dims}I", header[4:])


def _read_exact(path: str, offset: int, size: int, first: int, to_end: bool) -> bytes:
    """`size` bytes at `offset` of the (decompressed) file; DataError naming the file and the records when it is
    truncated or corrupt. With `to_end`, the rest is read too, so gzip checks the stream's end and checksum."""
    try:
        with _open(path) as handle:
            handle.seek(offset)
            data = handle.read(size)
            if to_end:
                handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise in_dofn(DataError(
            f"IDX file {path!r} is corrupt or truncated: reading records from {first} (byte {offset} of its "
            f"content) failed: {error}; {_FIX}"
        )) from None
    if len(data) != size:
        raise in_dofn(DataError(
            f"IDX file {path!r} is truncated: its header promises more records than it holds "
            f"(reading records from {first}, byte {offset} of its content); {_FIX}"
        ))
    return data


def _check_plain_size(path: str, header_bytes: int, records: int, record_bytes: int) -> None:
    """An uncompressed file must hold what its header promises: checked on the driver, before any work."""
    if path.endswith(".gz"):
        return
    expected = header_bytes + records * record_bytes
    actual = os.path.getsize(path)
    if actual < expected:
        raise DataError(
            f"IDX file {path!r} is truncated: its header promises {records} records ({expected} bytes) but the "
            f"file has {actual} bytes (record {(actual - header_bytes) // max(record_bytes, 1)} is the first "
            f"incomplete one); {_FIX}"
        )


class IdxSource(Source):
    """Reads the IDX image/label file pairs of a folder."""

    modality = "image"

    def __init__(self, config: IngestConfig, location: str):
        require_path(location, "idx", "folder")
        self.root = os.path.abspath(location)
        self._label_set = LabelSet.from_names(config.label_names) if config.label_names else None
        # split -> (images path, labels path, count, rows, cols)
        self.parts: dict[str, tuple[str, str, int, int, int]] = {}
        for prefix, split in _PREFIXES:
            images = _find(self.root, prefix, "images", 3)
            labels = _find(self.root, prefix, "labels", 1)
            if images is None and labels is None:
                continue
            if images is None or labels is None:
                present, missing = (images, "labels-idx1") if labels is None else (labels, "images-idx3")
                raise DataError(
                    f"IDX folder {location!r} has {os.path.basename(present)!r} but no {prefix}-{missing}-ubyte[.gz]"
                )
            count, rows, cols = _read_header(images, _IMAGES_MAGIC, 3)
            (label_count,) = _read_header(labels, _LABELS_MAGIC, 1)
            if count != label_count:
                raise DataError(f"IDX split {split!r}: {images!r} holds {count} images but {labels!r} holds {label_count} labels")
            _check_plain_size(images, 16, count, rows * cols)
            _check_plain_size(labels, 8, count, 1)
            self.parts[split] = (images, labels, count, rows, cols)
        if not self.parts:
            raise DataError(
                f"empty dataset: no IDX files in {location!r}; expected train-images-idx3-ubyte[.gz] with "
                "train-labels-idx1-ubyte[.gz] and/or the t10k-* pair"
            )

    def splits(self) -> tuple[str, ...]:
        return tuple(self.parts)

    def label_set(self) -> Optional[LabelSet]:
        return self._label_set

    def fingerprint(self) -> str:
        return file_fingerprint((path for part in self.parts.values() for path in part[:2]), self.root)

    def read(self, root: Any, split: str) -> Any:
        count = self.parts[split][2]
        chunks = [(start, min(start + _CHUNK, count)) for start in range(0, count, _CHUNK)]
        return (
            root
            | f"Chunk {split} IDX" >> beam.Create(chunks)
            | f"Read {split} IDX" >> beam.FlatMap(self._read_chunk, split)
        )

    def _read_chunk(self, chunk: tuple[int, int], split: str) -> Iterator[SourceRecord]:
        images_path, labels_path, count, rows, cols = self.parts[split]
        start, stop = chunk
        size = rows * cols
        last = stop == count
        labels = _read_exact(labels_path, 8 + start, stop - start, start, last)
        pixels = _read_exact(images_path, 16 + start * size, (stop - start) * size, start, last)
        for i in range(stop - start):
            payload = (rows, cols, pixels[i * size:(i + 1) * size])
            yield SourceRecord(f"{split}:{start + i}", split, labels[i], payload)

    def load(self, payload: Any) -> bytes:
        rows, cols, pixels = payload
        return encode_png(np.frombuffer(pixels, dtype=np.uint8).reshape(rows, cols))
