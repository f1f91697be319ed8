"""The ingest Beam graph: read, relabel, split by hash, sample k shots, write tf.Examples.

With `unlabeled`, the `train` examples that k-shot sampling did not pick are
written too, as split `unlabeled` without their labels: the pool a
semi-supervised strategy (self-training) may pseudo-label. It is the exact
complement of the sampled labels within the `train` split, so no eval or test
example can land in it.

Besides the TFRecords it writes a small JSON file of counts (read per source
split, labels outside the label set, per output split and class before and
after k-shot sampling, examples whose content is also in the training split:
duplicates.py) and the label set used; the executor turns these into the
checks that need the data (empty splits, k larger than a class, unknown
labels, leakage) and into metadata.json.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional, Sequence

import apache_beam as beam

from tlpipe.components.beam import values_tagged
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.duplicates import SharedContentStats, content_digest
from tlpipe.components.ingest.label_tasks import TaskLabeler, stat_kind
from tlpipe.components.ingest.labels import LabelMap, LabelSet, select_classes
from tlpipe.components.ingest.records import SourceRecord, serialize_example
from tlpipe.components.ingest.sources import Source
from tlpipe.components.ingest.split_spec import SplitSpec, stable_fraction
from tlpipe.components.sharded_writes import WriteLines, WriteShardedTFRecords
from tlpipe.models.plumbing.progress import Progress, is_quiet
from tlpipe.models.plumbing import example_format
from tlpipe.models.plumbing.errors import ConfigError

UNKNOWN_TAG = "unknown"
KEPT_TAG = "kept"
EXAMPLE_TAG = "example"
CONTENT_TAG = "content"
# An example on its way to an output split: (split, output label, class name, record).
Assigned = tuple[str, int, str, SourceRecord]


class _CountProgress(beam.DoFn):
    """Passes elements through, printing the stage's progress (count, rate) now and then."""

    def __init__(self, stage: str):
        self.stage = stage
        self.quiet = is_quiet()  # captured here so that worker processes honour `-q` too
        self._progress: Optional[Progress] = None

    def process(self, element: Any) -> Iterator[Any]:
        if not self.quiet:
            if self._progress is None:
                self._progress = Progress(self.stage)
            self._progress.update()
        yield element


class _Relabel(beam.DoFn):
    """Maps source labels to output labels: (KEPT_TAG, relabelled) or (UNKNOWN_TAG, label); other classes dropped.

    One output of tagged pairs, not Beam's tagged outputs: the DaskRunner does
    not keep a ParDo's outputs apart (see dask_runner.py)."""

    def __init__(self, classes: Sequence[str]):
        self.classes = tuple(classes)
        self._label_set: Optional[LabelSet] = None
        self._label_map: Optional[LabelMap] = None

    def process(self, record: SourceRecord, label_set: LabelSet) -> Iterator[Any]:
        if label_set is not self._label_set:
            self._label_set = label_set
            try:
                self._label_map = select_classes(label_set, self.classes)
            except ConfigError:  # a discovered label set lacks a class: reported after the run
                self._label_map = None
        index = label_set.index(record.label)
        if index is None:
            yield UNKNOWN_TAG, record.label
            return
        output = None if self._label_map is None else self._label_map.output_label(index)
        if output is not None:
            yield KEPT_TAG, (output, self._label_map.names[output], record)



def _assign_split(item: tuple[int, str, SourceRecord], split: str, spec: SplitSpec) -> Iterator[Assigned]:
    label, name, record = item
    if spec.source_split == record.split and spec.contains(record.id):
        yield split, label, name, record


def _shot_rank(item: Assigned, seed: int) -> tuple[float, str]:
    """Sampling order within a class: a hash of (seed, id), the id breaking ties."""
    return stable_fraction(str(seed), item[3].id), item[3].id


class _SampleShots(beam.PTransform):
    """Keeps the k examples of lowest rank per class (all of a class with fewer: the executor then fails the run)."""

    def __init__(self, k: int, seed: int):
        super().__init__()
        self.k = k
        self.seed = seed

    def expand(self, assigned: Any) -> Any:
        seed = self.seed
        return (
            assigned
            | "Key by class" >> beam.Map(lambda item: (item[1], item))
            | "Smallest ranks" >> beam.combiners.Top.SmallestPerKey(self.k, key=lambda item: _shot_rank(item, seed))
            | "Unkey" >> beam.FlatMap(lambda keyed: keyed[1])
        )


class _Encode(beam.DoFn):
    """Loads and serializes an example: (EXAMPLE_TAG, serialized) and, for the shared-content check,
    (CONTENT_TAG, (digest of its content, (split, id)))."""

    def __init__(self, source: Source, content_key: str, labeler: TaskLabeler):
        self.source = source
        self.content_key = content_key
        self.labeler = labeler

    def process(self, item: Assigned, label_set: LabelSet) -> Iterator[Any]:
        split, label, name, record = item
        content = self.source.load(record.payload)
        yield CONTENT_TAG, (content_digest(content), (split, record.id))
        yield EXAMPLE_TAG, serialize_example(self.content_key, content, label, name, record.id,
                                             self.labeler.labels(name, label_set, record))


def _task_stats(item: Assigned, labeler: TaskLabeler, label_set: LabelSet) -> Iterator[tuple[str, str, int]]:
    """One stats row per label task of a written example: (task's stat kind, split, task label)."""
    split, _, name, record = item
    for task, task_label, _ in labeler.labels(name, label_set, record):
        yield stat_kind(task), split, task_label


def _to_unlabeled_example(item: Assigned, source: Source, content_key: str) -> bytes:
    record = item[3]
    return serialize_example(content_key, source.load(record.payload), None, None, record.id)


def _not_sampled(item: Assigned, sampled_ids: set[str]) -> bool:
    return item[3].id not in sampled_ids


def _write(examples: Any, split: str, artifact_dir: str, num_shards: int) -> None:
    (
        examples
        | f"Progress {split}" >> beam.ParDo(_CountProgress(f"ingest: write {split}"))
        | f"Write {split}" >> WriteShardedTFRecords(
            example_format.shard_prefix(artifact_dir, split), num_shards, example_format.SHARD_SUFFIX)
    )


def _stats_json(counts: list[tuple[tuple[str, Any, Any], int]], label_set: LabelSet) -> str:
    rows = [[kind, split, label, n] for (kind, split, label), n in counts]
    return json.dumps({"counts": sorted(rows, key=str), "label_set": label_set.to_json()})


class _ReadSplit(beam.PTransform):
    """The records of one source split ("records") and their relabelled pairs ("relabelled": KEPT_TAG /
    UNKNOWN_TAG, see _Relabel), read from the source.

    A composite, so that a split can be read twice under one root (its steps
    are named inside it)."""

    def __init__(self, source: Source, split: str, classes: Sequence[str], label_set: Any):
        super().__init__()
        self._source = source
        self._split = split
        self._classes = classes
        self._label_set = label_set

    def expand(self, root: Any) -> Any:
        records = self._source.read(root, self._split) | "Progress read" >> beam.ParDo(_CountProgress("ingest: read"))
        return {
            "records": records,
            "relabelled": records | "Relabel" >> beam.ParDo(_Relabel(self._classes),
                                                           beam.pvalue.AsSingleton(self._label_set)),
        }


def _split_part(relabelled: Any, split: str, spec: SplitSpec, step: str) -> Any:
    """The examples of output split `split` among a source split's relabelled records (steps named `step`)."""
    return relabelled | f"Kept {step}" >> beam.FlatMap(values_tagged, KEPT_TAG) | f"Assign {step}" >> beam.FlatMap(
        _assign_split, split, spec)


def build_ingest(root: Any, source: Source, config: IngestConfig, artifact_dir: str, stats_path: str) -> None:
    """Add the ingest graph to Beam pipeline `root`, writing under `artifact_dir` and `stats_path`.

    Each source split is its own branch, never merged with another: on Beam's
    in-process runner a Flatten of several stages' outputs is a buffer that
    would hold every record of the source in memory. For the same reason the
    unlabelled split reads its source split a second time rather than keep the
    `train` split's records until the sampled ids are known. Statistics are
    counted per branch and the counts summed.
    """
    specs = config.split_specs()
    source_splits = sorted({spec.source_split for spec in specs.values()})
    declared = source.label_set()
    if declared is not None:
        label_set = root | "Declared label set" >> beam.Create([declared])
    else:
        label_set = (
            [source.read(root, split) | f"Labels {split}" >> beam.Map(lambda record: record.label)
             | f"Distinct labels {split}" >> beam.Distinct() for split in source_splits]
            | "Merge labels" >> beam.Flatten()
            | "Distinct labels" >> beam.Distinct()
            | "All labels" >> beam.combiners.ToList()
            | "Discovered label set" >> beam.Map(LabelSet.from_values)
        )
    relabelled = {}
    stats = []
    for split in source_splits:
        read = root | f"Read {split}" >> _ReadSplit(source, split, config.classes, label_set)
        relabelled[split] = read["relabelled"]
        stats.append(read["records"] | f"Stat read {split}" >> beam.Map(lambda record: ("read", record.split, None)))
        stats.append(relabelled[split] | f"Unknown {split}" >> beam.FlatMap(values_tagged, UNKNOWN_TAG)
                     | f"Stat unknown {split}" >> beam.Map(lambda label: ("unknown", None, label)))
    labeler = TaskLabeler(config.label_tasks, config.classes)
    content_key = example_format.IMAGE_ENCODED_KEY if source.modality == "image" else example_format.TEXT_KEY
    digests = []
    for split, spec in specs.items():
        part = _split_part(relabelled[spec.source_split], split, spec, split)
        stats.append(part | f"Stat available {split}" >> beam.Map(lambda item: ("available", item[0], item[1])))
        if split in config.shots:
            sampled = part | f"Sample {split}" >> _SampleShots(config.shots[split], config.seed)
            if config.unlabeled and split == example_format.UNLABELED_SOURCE_SPLIT:
                again = root | f"Read {spec.source_split} again" >> _ReadSplit(source, spec.source_split,
                                                                                config.classes, label_set)
                stats.append(_unlabeled(_split_part(again["relabelled"], split, spec, f"{split} again"), sampled, source,
                                        content_key,
                                        artifact_dir, config.num_shards))
            part = sampled
        stats.append(part | f"Stat written {split}" >> beam.Map(lambda item: ("written", item[0], item[1])))
        if config.label_tasks:
            stats.append(part | f"Stat tasks {split}" >> beam.FlatMap(_task_stats, labeler,
                                                                      beam.pvalue.AsSingleton(label_set)))
        encoded = part | f"Encode {split}" >> beam.ParDo(
            _Encode(source, content_key, labeler), beam.pvalue.AsSingleton(label_set)
        )
        _write(encoded | f"Examples {split}" >> beam.FlatMap(values_tagged, EXAMPLE_TAG), split, artifact_dir,
               config.num_shards)
        digests.append(encoded | f"Digests {split}" >> beam.FlatMap(values_tagged, CONTENT_TAG))
    stats.append(digests | "Merge digests" >> beam.Flatten() | "Shared content" >> SharedContentStats())
    (
        [rows | f"Count {index}" >> beam.combiners.Count.PerElement() for index, rows in enumerate(stats)]
        | "Merge counts" >> beam.Flatten()
        | "Sum counts" >> beam.CombinePerKey(sum)
        | "Collect counts" >> beam.combiners.ToList()
        | "Stats JSON" >> beam.Map(_stats_json, beam.pvalue.AsSingleton(label_set))
        | "Write stats" >> WriteLines(stats_path)
    )


def _unlabeled(part: Any, sampled: Any, source: Source, content_key: str, artifact_dir: str,
               num_shards: int) -> Any:
    """Write the examples of `part` that are not in `sampled`, without labels; returns their stat rows."""
    split = example_format.UNLABELED_SPLIT
    sampled_ids = (
        sampled
        | "Sampled ids" >> beam.Map(lambda item: item[3].id)
        | "Sampled id set" >> beam.combiners.ToSet()
    )
    rest = part | "Not sampled" >> beam.Filter(_not_sampled, beam.pvalue.AsSingleton(sampled_ids))
    _write(rest | f"Encode {split}" >> beam.Map(_to_unlabeled_example, source, content_key), split, artifact_dir,
           num_shards)
    return rest | f"Stat written {split}" >> beam.Map(lambda item: ("written", split, item[1]))

