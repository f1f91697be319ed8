"""Writing a PCollection to files inside ParDos, the same files on every runner.

Beam's file sinks (`WriteToTFRecord`, `WriteToText`) build on `iobase.Write`,
whose temporary folder and finalize step rely on side inputs being computed
once; on the DaskRunner every task computes them again and the sink leaves
stray `beam-temp-*` folders in the artifact. These transforms use only Create,
ParDo, GroupByKey and Flatten, so they run on every runner (dask_runner.py),
and they make the output deterministic: a record's shard is a hash of its
bytes and each file is sorted, so two runs over the same data write the same
bytes whichever runner or how many workers ran them.

A shard is grouped on one worker before it is written: its size, not the
split's, bounds that worker's memory (more shards for more data).
"""

from __future__ import annotations

import os
import zlib
from typing import Any, Iterable, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from tlpipe.components.checked_tfrecords import write_records


def shard_path(prefix: str, index: int, num_shards: int, suffix: str) -> str:
    """`PREFIX-00003-of-00008SUFFIX`, the names Beam's sharded sinks write."""
    return f"{prefix}-{index:05d}-of-{num_shards:05d}{suffix}"


def _shard_of(record: bytes, num_shards: int) -> tuple[int, bytes]:
    return zlib.crc32(record) % num_shards, record


def _write_shard(keyed: tuple[int, Iterable[Optional[bytes]]], prefix: str, num_shards: int, suffix: str) -> int:
    index, records = keyed
    path = shard_path(prefix, index, num_shards, suffix)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return write_records(path, sorted(record for record in records if record is not None))


class WriteShardedTFRecords(beam.PTransform):
    """Write serialized records into exactly `num_shards` TFRecord files (empty ones too), sorted within each."""

    def __init__(self, prefix: str, num_shards: int, suffix: str):
        super().__init__()
        self._prefix = prefix
        self._num_shards = num_shards
        self._suffix = suffix

    def expand(self, records: Any) -> Any:
        every_shard = records.pipeline | "Every shard" >> beam.Create([(i, None) for i in range(self._num_shards)])
        return (
            (records | "Key by shard" >> beam.Map(_shard_of, self._num_shards), every_shard)
            | "With empty shards" >> beam.Flatten()
            | "Group shards" >> beam.GroupByKey()
            | "Write shards" >> beam.Map(_write_shard, self._prefix, self._num_shards, self._suffix)
        )


def _write_lines(lines: list[str], path: str) -> None:
    with FileSystems.create(path) as handle:
        handle.write("".join(line + "\n" for line in sorted(lines)).encode("utf-8"))


class WriteLines(beam.PTransform):
    """Write text lines, sorted, into one file at `path` (an empty file for none); for small outputs only."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, lines: Any) -> Any:
        return (
            lines
            | "All lines" >> beam.combiners.ToList()
            | "Write file" >> beam.Map(_write_lines, self._path)
        )
