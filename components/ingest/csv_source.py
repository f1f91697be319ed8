"""`csv:FILE`: a CSV file with a header row, one example per row.

An image source when the header has the column `image_feature` (paths of
image files, relative to the CSV's folder or absolute), otherwise a text
source when it has `text_feature`; `label_feature` holds class names or
integer labels (and the `feature` columns of `label_tasks`, further
labels). The id is the `id_feature` column when present, otherwise the
image path as written, or `row-N` (N counting data rows from 1) for text.

The file is read on the driver and checked row by row: text that is not UTF-8,
broken quoting or a row whose cell count differs from the header's is a
DataError naming the file and the line; so are missing or unreadable images.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Optional

import apache_beam as beam

from tlpipe.components.ingest.config import ALL_SPLIT, IngestConfig
from tlpipe.components.ingest.label_tasks import feature_tasks
from tlpipe.components.ingest.labels import LabelSet
from tlpipe.components.ingest.records import SourceRecord
from tlpipe.components.ingest.sources import Source, file_fingerprint, read_file_bytes, require_path
from tlpipe.models.plumbing.errors import ConfigError, DataError

_MAX_LISTED = 5


def _read_rows(path: str) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a UTF-8 CSV file; a row that cannot be read, or whose cell count differs from the
    header's, is a DataError naming the file and its line."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise DataError(f"CSV file {path!r} cannot be read: {error.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(f"CSV file {path!r}, line {line}: not UTF-8 text ({error.reason} at byte {error.start}); "
                        "save the file as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
        rows = []
        for cells in reader:
            if not cells:
                continue  # blank line
            if len(cells) != len(header):
                raise DataError(
                    f"CSV file {path!r}, line {reader.line_num}: {len(cells)} cells, but the header has "
                    f"{len(header)} columns ({', '.join(header)}); quote cells that contain commas"
                )
            rows.append(dict(zip(header, cells)))
    except csv.Error as error:
        raise DataError(f"CSV file {path!r}, line {reader.line_num}: {error}; fix the quoting of that row") from None
    return header, rows


class CsvSource(Source):
    """Reads the rows of one CSV file."""

    def __init__(self, config: IngestConfig, location: str):
        require_path(location, "csv", "file")
        self.path = os.path.abspath(location)
        self.folder = os.path.dirname(self.path)
        columns, rows = _read_rows(self.path)
        if not columns or not rows:
            raise DataError(f"empty dataset: CSV file {location!r} has {'no header row' if not columns else 'a header but no rows'}")
        if config.label_feature not in columns:
            raise ConfigError("label_feature", config.label_feature, f"a column of {location}: {', '.join(columns)}")
        task_columns = feature_tasks(config.label_tasks)
        for task, column in task_columns.items():
            if column not in columns:
                raise ConfigError(f"label_tasks.{task}.feature", column, f"a column of {location}: {', '.join(columns)}")
        if config.image_feature in columns:
            self.modality, content_column = "image", config.image_feature
        elif config.text_feature in columns:
            self.modality, content_column = "text", config.text_feature
        else:
            raise ConfigError(
                "image_feature", config.image_feature,
                f"a column of {location} with image paths (or text_feature: a text column); columns: {', '.join(columns)}",
            )
        self._label_set = LabelSet.from_names(config.label_names) if config.label_names else None
        self.records: list[SourceRecord] = []
        missing: list[str] = []
        for number, row in enumerate(rows, start=1):
            label = row[config.label_feature].strip()
            if not label:
                raise DataError(f"CSV file {location!r}, data row {number}: empty {config.label_feature!r} cell")
            if self.modality == "image":
                relative = row[content_column].strip()
                if not relative:
                    raise DataError(f"CSV file {location!r}, data row {number}: empty {content_column!r} cell")
                payload, default_id = os.path.join(self.folder, relative), relative
                if not os.path.isfile(payload):
                    missing.append(f"row {number}: {relative!r}")
                elif not os.access(payload, os.R_OK):
                    missing.append(f"row {number}: {relative!r} (not readable by this user)")
            else:
                payload, default_id = row[content_column], f"row-{number}"
            values = tuple((task, row[column].strip()) for task, column in task_columns.items())
            empty_tasks = [task_columns[task] for task, value in values if not value]
            if empty_tasks:
                raise DataError(f"CSV file {location!r}, data row {number}: empty {empty_tasks[0]!r} cell")
            self.records.append(SourceRecord(row.get(config.id_feature, "").strip() or default_id, ALL_SPLIT, label,
                                             payload, values))
        if missing:
            listed = "; ".join(missing[:_MAX_LISTED]) + ("; ..." if len(missing) > _MAX_LISTED else "")
            raise DataError(
                f"{len(missing)} image path(s) in CSV file {location!r} do not exist or cannot be read (paths are "
                f"relative to {self.folder!r}): {listed}; fix the paths or the files' permissions"
            )

    def splits(self) -> tuple[str, ...]:
        return (ALL_SPLIT,)

    def label_set(self) -> Optional[LabelSet]:
        return self._label_set

    def fingerprint(self) -> str:
        images = [r.payload for r in self.records] if self.modality == "image" else []
        return file_fingerprint({self.path, *images}, self.folder)

    def read(self, root: Any, split: str) -> Any:
        return root | f"List {split} CSV rows" >> beam.Create(self.records)

    def load(self, payload: Any) -> bytes:
        return read_file_bytes(payload) if self.modality == "image" else payload.encode("utf-8")
