"""`tfrecord:GLOB`: uncompressed TFRecord files of serialized tf.Examples.

The content is the bytes feature `image_feature` (an encoded image) or, when
the records have no such feature, `text_feature` (UTF-8 text); the label is
the int64 or bytes feature `label_feature` (and the `feature`s of
`label_tasks`, further labels). The id is the bytes feature
`id_feature` when records have it, otherwise a hash of the record's bytes
(stable wherever the record is stored). A folder means every file in it.

Every record's checksums are checked where it is read, and every record must
be a tf.Example: otherwise a DataError names the file, the record's number and
the fix (checked_tfrecords).
"""

from __future__ import annotations

import glob
import hashlib
import os
from typing import Any, Iterator, Optional

import apache_beam as beam
from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2

from tlpipe.components.beam_errors import in_dofn
from tlpipe.components.checked_tfrecords import read_records
from tlpipe.components.ingest.config import ALL_SPLIT, IngestConfig
from tlpipe.components.ingest.label_tasks import feature_tasks
from tlpipe.components.ingest.labels import LabelSet, SourceLabel
from tlpipe.components.ingest.records import SourceRecord
from tlpipe.components.ingest.sources import Source, file_fingerprint, require_path
from tlpipe.models.plumbing.errors import ConfigError, DataError

_FIX = ("re-copy or regenerate the file, or remove it from the source; tfrecord sources read uncompressed "
        "TFRecord files of tf.Examples")


def _first_record(files: list[str]) -> Optional[bytes]:
    """The first record of the first non-empty file, None when all are empty."""
    for path in files:
        for record in read_records(path, _FIX):
            return record
    return None


class TfRecordSource(Source):
    """Reads tf.Examples from the files a glob matches."""

    def __init__(self, config: IngestConfig, location: str):
        pattern = os.path.join(location, "*") if os.path.isdir(location) else location
        self.files = sorted(p for p in glob.glob(pattern) if os.path.isfile(p) and not os.path.basename(p).startswith("."))
        if not self.files:
            if not glob.has_magic(location):
                require_path(location, "tfrecord")
            raise DataError(f"no TFRecord files match {location!r} (pattern {pattern!r}); give a glob such as '/data/*.tfrecord'")
        self.root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in self.files])
        self.label_feature = config.label_feature
        self.task_features = feature_tasks(config.label_tasks)
        self.id_feature = config.id_feature
        self._label_set = LabelSet.from_names(config.label_names) if config.label_names else None
        first = _first_record(self.files)
        if first is None:
            raise DataError(f"empty dataset: the TFRecord files matching {location!r} hold no records ({len(self.files)} files)")
        try:
            present = example_pb2.Example.FromString(first).features.feature
        except DecodeError:
            raise DataError(f"the first record of {self.files[0]!r} is not a serialized tf.Example; {_FIX}") from None
        for task, feature in self.task_features.items():
            if feature not in present:
                raise ConfigError(f"label_tasks.{task}.feature", feature,
                                  f"an int64 or bytes feature of the records; the first record has: {', '.join(sorted(present))}")
        if config.image_feature in present:
            self.modality, self.content_feature = "image", config.image_feature
        elif config.text_feature in present:
            self.modality, self.content_feature = "text", config.text_feature
        else:
            raise ConfigError(
                "image_feature", config.image_feature,
                f"a bytes feature of the records (or text_feature: a text feature); the first record has: {', '.join(sorted(present))}",
            )

    def splits(self) -> tuple[str, ...]:
        return (ALL_SPLIT,)

    def label_set(self) -> Optional[LabelSet]:
        return self._label_set

    def fingerprint(self) -> str:
        return file_fingerprint(self.files, self.root)

    def read(self, root: Any, split: str) -> Any:
        return (
            root
            | f"List {split} TFRecord files" >> beam.Create(self.files)
            | f"Read {split} TFRecords" >> beam.FlatMap(self._read_file, split)
        )

    def _read_file(self, path: str, split: str) -> Iterator[SourceRecord]:
        try:
            for index, serialized in enumerate(read_records(path, _FIX)):
                try:
                    features = example_pb2.Example.FromString(serialized).features.feature
                except DecodeError:
                    raise DataError(f"TFRecord file {path!r}, record {index}: not a serialized tf.Example; {_FIX}") from None
                yield self._record(serialized, features, split, f"TFRecord file {path!r}, record {index}")
        except DataError as error:
            raise in_dofn(error) from None

    def _record(self, serialized: bytes, features: Any, split: str, where: str) -> SourceRecord:
        example_id = (
            features[self.id_feature].bytes_list.value[0].decode("utf-8")
            if self.id_feature in features and features[self.id_feature].bytes_list.value
            else "sha256:" + hashlib.sha256(serialized).hexdigest()[:32]
        )
        content = features[self.content_feature].bytes_list.value if self.content_feature in features else []
        if len(content) != 1:
            raise DataError(f"{where}: example {example_id!r} has no single bytes feature {self.content_feature!r}; features: {', '.join(sorted(features))}")
        what = f"{where}: example {example_id!r}"
        values = tuple((task, self._label(features, name, what)) for task, name in self.task_features.items())
        return SourceRecord(example_id, split, self._label(features, self.label_feature, what), content[0], values)

    def _label(self, features: Any, name: str, what: str) -> SourceLabel:
        feature = features[name] if name in features else None
        if feature is not None and len(feature.int64_list.value) == 1:
            return int(feature.int64_list.value[0])
        if feature is not None and len(feature.bytes_list.value) == 1:
            return feature.bytes_list.value[0].decode("utf-8")
        raise DataError(
            f"{what} has no single int64 or bytes label feature {name!r}; "
            f"features: {', '.join(sorted(features))}"
        )

    def load(self, payload: Any) -> bytes:
        return payload
