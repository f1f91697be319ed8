"""The Beam graph of one split: read raw TFRecords, transform, set bad records aside, combine statistics.

Reading checks every record's checksums: a damaged input file fails the run
with a DataError naming the file and the record (checked_tfrecords).

Per split, one `TransformSplit` writes
  - transformed examples at `example_format.shard_prefix`, in the given number
    of shards (sharded_writes: the same files on every runner);
  - bad records as JSON lines (id, split, kind, reason), sorted, at `bad_records_path`;
  - the split's statistics (`SplitStatistics.report`) as one JSON line at
    `statistics_path`, for the driver to check and publish.
"""

from __future__ import annotations

import glob
import json
from typing import Any

import apache_beam as beam

from tlpipe.components.beam import values_tagged
from tlpipe.components.checked_tfrecords import ReadCheckedTFRecords
from tlpipe.components.sharded_writes import WriteLines, WriteShardedTFRecords
from tlpipe.models.plumbing.progress import Progress, set_quiet
from tlpipe.components.transform.records import BadRecord, RecordSpec, transform_record
from tlpipe.components.transform.statistics import SplitStatistics
from tlpipe.models.plumbing import example_format as fmt

_EXAMPLE = "example"
_BAD = "bad"
_SUMMARY = "summary"


class _TransformRecords(beam.DoFn):
    """Transforms raw records into (tag, value) pairs: the example, or the bad record's JSON line, and the summary.

    One output of tagged pairs, not Beam's tagged outputs: the DaskRunner does
    not keep a ParDo's outputs apart (see dask_runner.py)."""

    def __init__(self, spec: RecordSpec, split: str, quiet: bool):
        self._spec = spec
        self._split = split
        self._quiet = quiet
        self._progress: Progress | None = None

    def setup(self) -> None:
        set_quiet(self._quiet)  # worker processes do not inherit the driver's -q
        self._progress = Progress(f"transform '{self._split}'")

    def process(self, record: bytes):
        outcome = transform_record(record, self._spec)
        self._progress.update()
        if isinstance(outcome, BadRecord):
            line = {"id": outcome.id, "split": self._split, "kind": outcome.kind, "reason": outcome.reason}
            yield _BAD, json.dumps(line, ensure_ascii=False)
            yield _SUMMARY, outcome
        else:
            yield _EXAMPLE, outcome.example
            yield _SUMMARY, outcome.summary



class _CombineStatistics(beam.CombineFn):
    """Folds record summaries into a `SplitStatistics` and emits its JSON report."""

    def __init__(self, modality: str, label_names: list[str]):
        self._modality = modality
        self._label_names = label_names

    def create_accumulator(self) -> SplitStatistics:
        return SplitStatistics()

    def add_input(self, accumulator: SplitStatistics, summary: Any) -> SplitStatistics:
        accumulator.add(summary)
        return accumulator

    def merge_accumulators(self, accumulators) -> SplitStatistics:
        merged = SplitStatistics()
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: SplitStatistics) -> str:
        return json.dumps(accumulator.report(self._modality, self._label_names), sort_keys=True)


class TransformSplit(beam.PTransform):
    """Transform one split of an ingest artifact into `output_dir` (see the module docstring)."""

    def __init__(
        self, *, split: str, input_dir: str, output_dir: str, num_shards: int, spec: RecordSpec,
        bad_records_path: str, statistics_path: str, quiet: bool,
    ):
        super().__init__(label=f"Transform[{split}]")
        self._split = split
        self._input_dir = input_dir
        self._output_dir = output_dir
        self._num_shards = num_shards
        self._spec = spec
        self._bad_records_path = bad_records_path
        self._statistics_path = statistics_path
        self._quiet = quiet

    def expand(self, pbegin):
        pattern = fmt.split_dir(self._input_dir, self._split) + "/*" + fmt.SHARD_SUFFIX
        fix = (f"the ingest artifact {self._input_dir!r} is damaged: run ingest again (in a pipeline: "
               "--set pipeline.enable_caching=false, so the damaged artifact is not reused)")
        outputs = (
            pbegin
            | "Read" >> ReadCheckedTFRecords(sorted(glob.glob(pattern)), fix)
            | "Transform" >> beam.ParDo(_TransformRecords(self._spec, self._split, self._quiet))
        )
        (
            outputs
            | "Examples" >> beam.FlatMap(values_tagged, _EXAMPLE)
            | "WriteExamples" >> WriteShardedTFRecords(
                fmt.shard_prefix(self._output_dir, self._split), self._num_shards, fmt.SHARD_SUFFIX)
        )
        outputs | "BadRecords" >> beam.FlatMap(values_tagged, _BAD) | "WriteBadRecords" >> WriteLines(
            self._bad_records_path)
        return (
            outputs
            | "Summaries" >> beam.FlatMap(values_tagged, _SUMMARY)
            | "Statistics" >> beam.CombineGlobally(
                _CombineStatistics(self._spec.modality, list(self._spec.label_names))
            )
            | "WriteStatistics" >> WriteLines(self._statistics_path)
        )
