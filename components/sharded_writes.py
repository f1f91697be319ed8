"""Writing a PCollection to files inside ParDos, the same records in the same files on every runner.

Beam's file sinks (`WriteToTFRecord`, `WriteToText`) build on `iobase.Write`,
whose temporary folder and finalize step rely on side inputs being computed
once; on the DaskRunner every task computes them again and the sink leaves
stray `beam-temp-*` folders in the artifact. These transforms use only Create,
ParDo, GroupByKey and Flatten, so they run on every runner (dask_runner.py).
A record's shard is a hash of its bytes, so the same data lands in the same
shard files whichever runner or how many workers wrote it.

The records stream to disk: each bundle appends them to one run file per
shard as they come (`<shard>.run-<random>`) and only the run files' names are
grouped; a shard is then the concatenation of its runs (TFRecord framing is
per record). No worker holds a shard, let alone a split, in memory. The order
of records within a shard follows the bundles, so it may differ between runs.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import uuid
import zlib
from typing import Any, Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from tlpipe.components.checked_tfrecords import framed, read_records

_RUN = ".run-"


def shard_path(prefix: str, index: int, num_shards: int, suffix: str) -> str:
    """`PREFIX-00003-of-00008SUFFIX`, the names Beam's sharded sinks write."""
    return f"{prefix}-{index:05d}-of-{num_shards:05d}{suffix}"


class _AppendToRuns(beam.DoFn):
    """Appends each record to this bundle's run file of its shard; emits (shard, run file) when a run starts.

    The run's name is emitted from `process`, not `finish_bundle`: the DaskRunner
    drops what `finish_bundle` emits. The files are closed in `finish_bundle`,
    before any consumer of the grouped names runs (a GroupByKey waits for every
    bundle).
    """

    def __init__(self, prefix: str, num_shards: int, suffix: str):
        self._prefix = prefix
        self._num_shards = num_shards
        self._suffix = suffix
        self._runs: dict[int, Any] = {}

    def start_bundle(self) -> None:
        self._runs = {}

    def process(self, record: bytes) -> Iterator[tuple[int, Optional[str]]]:
        shard = zlib.crc32(record) % self._num_shards
        handle = self._runs.get(shard)
        if handle is None:
            path = f"{shard_path(self._prefix, shard, self._num_shards, self._suffix)}{_RUN}{uuid.uuid4().hex}"
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            handle = self._runs[shard] = open(path, "wb")
            yield shard, path
        handle.write(framed(record))

    def finish_bundle(self) -> None:
        for handle in self._runs.values():
            handle.close()
        self._runs = {}


def _join_runs(keyed: tuple[int, Iterable[Optional[str]]], prefix: str, num_shards: int, suffix: str) -> str:
    """Concatenate a shard's runs into its file (empty when it has none), then remove every run of it."""
    index, runs = keyed
    path = shard_path(prefix, index, num_shards, suffix)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".partial", "wb") as target:
        for run in sorted(run for run in runs if run is not None):
            with open(run, "rb") as source:
                shutil.copyfileobj(source, target)
    os.replace(path + ".partial", path)
    for run in glob.glob(glob.escape(path) + _RUN + "*"):  # a retried bundle's runs too
        os.remove(run)
    return path


class WriteShardedTFRecords(beam.PTransform):
    """Write serialized records into exactly `num_shards` TFRecord files (empty ones too), streaming."""

    def __init__(self, prefix: str, num_shards: int, suffix: str):
        super().__init__()
        self._prefix = prefix
        self._num_shards = num_shards
        self._suffix = suffix

    def expand(self, records: Any) -> Any:
        every_shard = records.pipeline | "Every shard" >> beam.Create([(i, None) for i in range(self._num_shards)])
        return (
            (records | "Append to runs" >> beam.ParDo(_AppendToRuns(self._prefix, self._num_shards, self._suffix)),
             every_shard)
            | "With empty shards" >> beam.Flatten()
            | "Group runs" >> beam.GroupByKey()
            | "Join runs" >> beam.Map(_join_runs, self._prefix, self._num_shards, self._suffix)
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


def artifact_contents(folder: str, shard_suffix: str) -> dict[str, Any]:
    """What an artifact written with these transforms holds, whichever runner wrote it: every file under
    `folder` by its relative path, a shard (a name ending in `shard_suffix`) as the sorted SHA-256 digests of
    its records (their order within a shard follows the bundles), any other file as its digest."""
    found: dict[str, Any] = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            if name.endswith(shard_suffix):
                found[os.path.relpath(path, folder)] = sorted(
                    hashlib.sha256(record).digest() for record in read_records(path, fix=""))
            else:
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).digest()
    return found
