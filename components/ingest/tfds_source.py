"""`tfds:NAME`: a prepared TensorFlow Datasets dataset, read with `tfds.builder`.

Nothing is downloaded (tlpipe runs offline): the dataset must already be
prepared in `data_dir`. Images are stored as TFDS keeps them (their encoded
PNG/JPEG bytes, read without decoding); text features as UTF-8. Ids are TFDS's
own `tfds_id`s (file and position), stable for a given dataset version. A
dataset not prepared in `data_dir` is refused before any work; damaged prepared
files are a DataError naming the split and the last example read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator, Optional

import apache_beam as beam
import numpy as np
import tensorflow_datasets as tfds

from tlpipe.components.beam_errors import in_dofn
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.label_tasks import feature_tasks
from tlpipe.components.ingest.labels import LabelSet, SourceLabel
from tlpipe.components.ingest.records import SourceRecord
from tlpipe.components.ingest.sources import Source
from tlpipe.models.plumbing.errors import ConfigError, DataError


def _is_label_feature(feature: Any) -> bool:
    """A feature that can hold a label task's label: a ClassLabel, a scalar integer, or a Text."""
    if isinstance(feature, (tfds.features.ClassLabel, tfds.features.Text)):
        return True
    return isinstance(feature, tfds.features.Tensor) and feature.shape == () and np.issubdtype(feature.np_dtype,
                                                                                               np.integer)


def _label_value(value: Any) -> SourceLabel:
    """An example's value of a label task's feature: an integer label or a decoded class name."""
    return value.decode("utf-8") if isinstance(value, bytes) else int(value)


class TfdsSource(Source):
    """Reads the splits of `tfds.builder(NAME, data_dir=data_dir)`."""

    def __init__(self, config: IngestConfig, location: str):
        self.name = location
        self.data_dir = config.data_dir
        self.label_feature = config.label_feature
        builder = self._builder()
        if not builder.is_prepared():
            raise DataError(
                f"TFDS dataset {self.name!r} is not prepared in data_dir {builder.data_dir!r} "
                f"(config data_dir: {self.data_dir!r}); tlpipe does not download data: prepare it on a machine "
                f"with internet (`tfds build {self.name} --data_dir=DIR`) and copy DIR here, or set data_dir"
            )
        info = builder.info
        features = dict(info.features.items())
        feature_list = ", ".join(f"{key} ({type(feature).__name__})" for key, feature in features.items())
        if isinstance(features.get(config.image_feature), tfds.features.Image):
            self.modality, self.content_feature = "image", config.image_feature
        elif isinstance(features.get(config.text_feature), tfds.features.Text):
            self.modality, self.content_feature = "text", config.text_feature
        else:
            raise ConfigError(
                "image_feature", config.image_feature,
                f"the name of an Image feature (or text_feature: of a Text feature) of {info.full_name}; its features: {feature_list}",
            )
        label = features.get(self.label_feature)
        if isinstance(label, tfds.features.ClassLabel):
            source_names = list(label.names)
        elif isinstance(label, tfds.features.Tensor) and label.shape == () and np.issubdtype(label.np_dtype, np.integer):
            source_names = []
        else:
            raise ConfigError(
                "label_feature", self.label_feature,
                f"the name of a ClassLabel or integer feature of {info.full_name}; its features: {feature_list}",
            )
        if config.label_names and source_names and len(config.label_names) != len(source_names):
            raise ConfigError(
                "label_names", config.label_names,
                f"{len(source_names)} names (one per class of {info.full_name}), or an empty list to use its names",
            )
        self.task_features = feature_tasks(config.label_tasks)
        for task, name in self.task_features.items():
            if not _is_label_feature(features.get(name)):
                raise ConfigError(f"label_tasks.{task}.feature", name,
                                  f"the name of a ClassLabel, integer or Text feature of {info.full_name}; "
                                  f"its features: {feature_list}")
        names = config.label_names or source_names
        self._label_set = LabelSet.from_names(names) if names else None
        self._splits = tuple(info.splits.keys())
        self._fingerprint_data = {
            "name": info.full_name,
            "version": str(info.version),
            "splits": {name: info.splits[name].num_examples for name in self._splits},
        }

    def _builder(self) -> Any:
        try:
            return tfds.builder(self.name, data_dir=self.data_dir)
        except ValueError as error:  # DatasetNotFoundError or an unknown config / version
            reason = str(error).splitlines()[0]
            raise ConfigError(
                "source", f"tfds:{self.name}",
                f"tfds:NAME[/CONFIG][:VERSION] naming a dataset registered in tensorflow_datasets ({reason})",
            ) from None

    def splits(self) -> tuple[str, ...]:
        return self._splits

    def label_set(self) -> Optional[LabelSet]:
        return self._label_set

    def fingerprint(self) -> str:
        payload = json.dumps(self._fingerprint_data, sort_keys=True).encode("utf-8")
        return "sha256:" + hashlib.sha256(payload).hexdigest()

    def read(self, root: Any, split: str) -> Any:
        return (
            root
            | f"Name {split} TFDS split" >> beam.Create([split])
            | f"Read {split} TFDS" >> beam.FlatMap(self._read_split)
        )

    def _read_split(self, split: str) -> Iterator[SourceRecord]:
        import tensorflow as tf

        decoders = {self.content_feature: tfds.decode.SkipDecoding()} if self.modality == "image" else None
        last_id = None
        try:
            dataset = self._builder().as_dataset(
                split=split, shuffle_files=False, decoders=decoders, read_config=tfds.ReadConfig(add_tfds_id=True)
            )
            for example in tfds.as_numpy(dataset):
                last_id = example["tfds_id"].decode("utf-8")
                values = tuple((task, _label_value(example[name])) for task, name in self.task_features.items())
                yield SourceRecord(last_id, split, int(example[self.label_feature]), bytes(example[self.content_feature]),
                                   values)
        except (tf.errors.OpError, OSError) as error:
            after = f" after example {last_id!r}" if last_id else " before its first example"
            reason = getattr(error, "message", None) or str(error)
            raise in_dofn(DataError(
                f"TFDS dataset {self.name!r} in data_dir {self.data_dir!r}: reading split {split!r} failed{after}: "
                f"{reason.splitlines()[0]}; its prepared files are damaged or incomplete: prepare it again "
                f"(`tfds build {self.name} --data_dir=DIR`) and copy DIR here"
            )) from None

    def load(self, payload: Any) -> bytes:
        return payload
