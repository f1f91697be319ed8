"""The ingest component's spec: where the data comes from and how it is split and sampled."""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from tlpipe.components.ingest.label_tasks import LabelTaskConfig, check_label_tasks
from tlpipe.components.ingest.split_spec import SplitSpec, parse_split_spec
from tlpipe.models.plumbing.example_format import UNLABELED_SOURCE_SPLIT, UNLABELED_SPLIT
from tlpipe.models.plumbing.errors import ConfigError

SOURCE_SCHEMES = ("tfds", "image_folder", "idx", "tfrecord", "csv")
# Sources without splits of their own expose everything as this one source split.
ALL_SPLIT = "all"
SINGLE_SPLIT_SCHEMES = ("image_folder", "tfrecord", "csv")
SPAN_TOKEN = "{SPAN}"
_SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclasses.dataclass
class IngestConfig:
    """Source, splits, classes, k-shot sampling and span of one ingest run.

    `source` is `SCHEME:LOCATION`:
      - `tfds:NAME` a prepared TensorFlow Datasets dataset (`NAME` may carry a
        config and version, `imdb_reviews/plain_text:1.0.0`) read from
        `data_dir` (TFDS's default folder when null); nothing is downloaded.
      - `image_folder:DIR` one sub-folder per class; the class names are the
        sorted sub-folder names.
      - `idx:DIR` MNIST-family IDX files, gzipped or not:
        `train-images-idx3-ubyte[.gz]` + `train-labels-idx1-ubyte[.gz]` form
        source split `train`, the `t10k-*` pair forms split `test`.
      - `tfrecord:GLOB` files of serialized tf.Examples (a folder means all
        files in it).
      - `csv:FILE` a CSV with a header; an image path column (relative to the
        CSV's folder) or a text column, plus a label column.
    `image_feature`, `text_feature`, `label_feature` and `id_feature` name the
    features (TFDS, TFRecord) or columns (CSV) to read. A source with an image
    feature is an image source, otherwise a text source. Examples get the
    value of `id_feature` as their id when the source has it; otherwise a
    stable id derived from the source (relative file path, IDX `split:index`,
    TFDS's `tfds_id`, a hash of a TFRecord's bytes, a CSV's image path or
    `row-N`).

    `splits` maps each output split to a source split, optionally with a
    hash-based range of its examples: `train[:80%]`, `train[80%:]`, `test`
    (see split_spec.py: membership depends only on an example's id, so it never
    changes when data is appended). Sources without splits of their own (image
    folders, CSV, TFRecord globs) have one source split called `all`.

    `label_names` names integer labels 0..N-1 for sources that have no names
    (IDX, integer labels in TFRecord/CSV, TFDS without class names; for TFDS
    with class names it renames them, one name per class; image folders take
    their sub-folder names and refuse it); labels that are neither one of
    these names nor an integer in 0..N-1 are an error. Without it, the label
    set is discovered from the data: integer labels are named by their value,
    string labels sort alphabetically. `classes`
    picks the classes to keep AND their order: each entry is a class name, or
    a source integer label written as a string ("5"); output labels are
    0..K-1 in that order, examples of other classes are dropped. Empty keeps
    all classes in source order.

    `shots` maps an output split to k: exactly k examples per class, chosen
    reproducibly by `seed` (the k with the smallest hash of (seed, id)).
    `unlabeled`: also write the `train` examples that k-shot sampling left out,
    with their labels removed, as split `unlabeled` (for self-training; needs
    `shots.train`); metadata.json counts them.

    `span`: when LOCATION contains `{SPAN}` (e.g. `image_folder:/data/span-{SPAN}`),
    the span with the highest number is ingested unless `span` names one.
    `num_shards` is the number of TFRecord files written per split.

    `label_tasks`: further labels (for multi-task heads; see label_tasks.py),
    derived from the main label through a mapping of its classes, or read
    from a further column (CSV) or feature (TFRecord).

    Every class must have examples in the `train` and `test` splits (those
    the config has): a class never trained on cannot be predicted, one never
    tested cannot be judged. `allow_missing_classes: true` accepts data
    whose splits lack a class on purpose (the metadata still counts them).
    Two output splits may not take the same examples (the same source split
    with overlapping ranges: ids hash into both), and no example of another
    split may have the content (image bytes, text) of a `train` example under
    another id (duplicates.py), unless `allow_overlapping_splits: true`.
    """

    source: str = "idx:/usr/share/datasets/fashion-mnist"
    data_dir: Optional[str] = None
    splits: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}
    )
    label_names: list[str] = dataclasses.field(default_factory=list)
    classes: list[str] = dataclasses.field(default_factory=list)
    shots: dict[str, int] = dataclasses.field(default_factory=dict)
    unlabeled: bool = False
    seed: int = 0
    span: Optional[int] = None
    num_shards: int = 1
    image_feature: str = "image"
    text_feature: str = "text"
    label_feature: str = "label"
    id_feature: str = "id"
    label_tasks: dict[str, LabelTaskConfig] = dataclasses.field(default_factory=dict)
    allow_missing_classes: bool = False
    allow_overlapping_splits: bool = False

    @property
    def scheme(self) -> str:
        """The part of `source` before the first ':'."""
        return self.source.split(":", 1)[0]

    @property
    def location(self) -> str:
        """The part of `source` after the first ':' (may contain `{SPAN}`)."""
        return self.source.split(":", 1)[1]

    def split_specs(self) -> dict[str, SplitSpec]:
        """The parsed `splits`, output split name -> spec."""
        return {name: parse_split_spec(spec, f"splits.{name}") for name, spec in self.splits.items()}

    def validate(self) -> None:
        if ":" not in self.source or self.scheme not in SOURCE_SCHEMES or not self.location.strip():
            raise ConfigError("source", self.source, "SCHEME:LOCATION with SCHEME one of " + ", ".join(SOURCE_SCHEMES))
        if SPAN_TOKEN in self.location and self.scheme == "tfds":
            raise ConfigError("source", self.source, f"{SPAN_TOKEN} only in paths of image_folder, idx, tfrecord and csv sources")
        if self.span is not None:
            if SPAN_TOKEN not in self.location:
                raise ConfigError("span", self.span, f"null unless source contains {SPAN_TOKEN} (received source {self.source!r})")
            if self.span < 0:
                raise ConfigError("span", self.span, "null (latest) or an integer >= 0")
        self._validate_splits()
        self._validate_classes()
        for split, k in self.shots.items():
            if split not in self.splits:
                raise ConfigError(f"shots.{split}", k, "shots for one of the configured splits: " + ", ".join(self.splits))
            if k < 1:
                raise ConfigError(f"shots.{split}", k, "an integer >= 1 (examples per class)")
        if self.unlabeled and UNLABELED_SOURCE_SPLIT not in self.shots:
            raise ConfigError(
                "unlabeled", self.unlabeled,
                f"false unless shots.{UNLABELED_SOURCE_SPLIT} is set (the unlabeled split holds the "
                f"'{UNLABELED_SOURCE_SPLIT}' examples that k-shot sampling left out; shots: {self.shots})",
            )
        if self.num_shards < 1:
            raise ConfigError("num_shards", self.num_shards, "an integer >= 1")
        for key in ("image_feature", "text_feature", "label_feature", "id_feature"):
            if not getattr(self, key):
                raise ConfigError(key, getattr(self, key), "a non-empty feature or column name")
        check_label_tasks(self.label_tasks, self.scheme)

    def _validate_splits(self) -> None:
        if not self.splits:
            raise ConfigError("splits", self.splits, "at least one output split, e.g. {train: 'train', test: 'test'}")
        for name, spec in self.split_specs().items():
            if name == UNLABELED_SPLIT:
                raise ConfigError(f"splits.{name}", spec, f"another name: '{UNLABELED_SPLIT}' is written by "
                                  "ingest.unlabeled")
            if not _SPLIT_NAME_RE.match(name):
                raise ConfigError(f"splits.{name}", spec, "output split names made of letters, digits, '-' and '_'")
            if self.scheme in SINGLE_SPLIT_SCHEMES and spec.source_split != ALL_SPLIT:
                raise ConfigError(
                    f"splits.{name}", self.splits[name],
                    f"source split '{ALL_SPLIT}' ({self.scheme} sources have no splits of their own), "
                    f"e.g. '{ALL_SPLIT}[:80%]'",
                )
        if not self.allow_overlapping_splits:
            self._refuse_overlaps()

    def _refuse_overlaps(self) -> None:
        """Two output splits that take the same examples (same source split, overlapping hash ranges)."""
        specs = list(self.split_specs().items())
        for index, (name, spec) in enumerate(specs):
            for other, other_spec in specs[index + 1:]:
                shared = spec.shared_with(other_spec)
                if shared > 0:
                    raise ConfigError(
                        f"splits.{other}", self.splits[other],
                        f"a range that no other split takes: it shares {shared:g}% of source split "
                        f"'{spec.source_split}' with splits.{name} ({self.splits[name]!r}), so the same examples "
                        f"would be in both (a model tested on what it trained on); e.g. '{spec.source_split}[:80%]' "
                        f"and '{spec.source_split}[80%:]', or allow it with ingest.allow_overlapping_splits: true",
                    )

    def _validate_classes(self) -> None:
        for key, values in (("label_names", self.label_names), ("classes", self.classes)):
            seen: set[str] = set()
            for value in values:
                if not value:
                    raise ConfigError(key, value, "non-empty names")
                if value in seen:
                    raise ConfigError(key, values, f"each name once ({value!r} is repeated)")
                seen.add(value)
