"""The data-coverage table: examples per class and split, what a reader checks before trusting a verdict.

A verdict on 3 test images of one class, or a class that trained on 2
examples, reads like any other in the accuracy tables; this table shows it.
Ingest writes it beside its metadata as `coverage.csv` (a row per class, a
column per split, totals); the evaluator's report shows the same table, built
from the counts that `metadata.json` carries through transform.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from tlpipe.models.plumbing.artifacts import read_json, write_text
from tlpipe.models.plumbing.example_format import METADATA_FILE

COVERAGE_FILE = "coverage.csv"
TOTAL = "total"

Table = tuple[list[str], list[list[str]]]


def coverage_table(counts: dict[str, dict[str, int]]) -> Table:
    """(header, rows) of `counts` {split: {class: n}}: a row per class and a total row; a column per split."""
    splits = list(counts)
    classes = list(dict.fromkeys(name for per_class in counts.values() for name in per_class))
    rows = [[name, *[str(counts[split].get(name, 0)) for split in splits],
             str(sum(counts[split].get(name, 0) for split in splits))] for name in classes]
    totals = [sum(per_class.values()) for per_class in counts.values()]
    rows.append([TOTAL, *map(str, totals), str(sum(totals))])
    return ["class", *splits, TOTAL], rows


def write_coverage(artifact_dir: str, counts: dict[str, dict[str, int]]) -> None:
    """Write `coverage.csv` into `artifact_dir` (atomically)."""
    header, rows = coverage_table(counts)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    write_text(os.path.join(artifact_dir, COVERAGE_FILE), buffer.getvalue())


def read_counts(examples_dir: str) -> dict[str, dict[str, int]]:
    """The per-class counts of an ingest or transform artifact ({} when its metadata has none)."""
    path = os.path.join(examples_dir, METADATA_FILE)
    metadata: Any = read_json(path) if os.path.isfile(path) else {}
    counts = metadata.get("counts") if isinstance(metadata, dict) else None
    return counts if isinstance(counts, dict) else {}
