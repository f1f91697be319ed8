"""The ingest component's spec: where the data comes from and how it is split and sampled."""

from __future__ import annotations

import dataclasses
from typing import Optional

from tlpipe.pipeline.errors import ConfigError

SOURCE_SCHEMES = ("tfds", "image_folder", "idx", "tfrecord", "csv")


@dataclasses.dataclass
class IngestConfig:
    """Source, splits, classes, k-shot sampling and span of one ingest run.

    `source` is `SCHEME:LOCATION` with SCHEME one of tfds, image_folder, idx,
    tfrecord, csv. `splits` maps each output split to a source split, optionally
    with a hash-based range of its examples: `train[:80%]`, `train[80%:]`, `test`;
    sources without splits of their own (image folders, CSV, TFRecord globs) have
    one split called `all`.
    """

    source: str = "idx:/usr/share/datasets/fashion-mnist"
    data_dir: Optional[str] = None
    splits: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}
    )
    label_names: list[str] = dataclasses.field(default_factory=list)
    classes: list[str] = dataclasses.field(default_factory=list)
    shots: dict[str, int] = dataclasses.field(default_factory=dict)
    seed: int = 0
    span: Optional[int] = None
    num_shards: int = 1

    def validate(self) -> None:
        scheme = self.source.split(":", 1)[0]
        if ":" not in self.source or scheme not in SOURCE_SCHEMES:
            raise ConfigError("source", self.source, "SCHEME:LOCATION with SCHEME one of " + ", ".join(SOURCE_SCHEMES))
        if not self.splits:
            raise ConfigError("splits", self.splits, "at least one output split, e.g. {train: 'train', test: 'test'}")
        for split, k in self.shots.items():
            if split not in self.splits:
                raise ConfigError(f"shots.{split}", k, "shots for one of the configured splits: " + ", ".join(self.splits))
            if k < 1:
                raise ConfigError(f"shots.{split}", k, "an integer >= 1 (examples per class)")
        if self.num_shards < 1:
            raise ConfigError("num_shards", self.num_shards, "an integer >= 1")
        if self.span is not None and self.span < 0:
            raise ConfigError("span", self.span, "null (latest) or an integer >= 0")
