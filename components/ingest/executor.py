"""The ingest component (an ExampleGen): a source -> raw tf.Examples per split + metadata.json + coverage.csv.

`run_ingest` resolves the span, opens the source on the driver (existence,
listing, declared classes: the errors that need no data come first), runs the
Beam graph of transforms.py into a temporary folder, checks what only the data
can reveal (metadata.py) and moves the folder into place. On any error
nothing is left at `output_dir` (an earlier artifact there stays untouched).
"""

from __future__ import annotations

import os
from typing import Any

from tlpipe.models.plumbing.artifacts import atomic_output_dir, read_json, write_json
from tlpipe.components.beam import BeamConfig, create_pipeline
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.coverage import write_coverage
from tlpipe.components.ingest.label_tasks import resolve_label_tasks
from tlpipe.components.ingest.labels import select_classes
from tlpipe.components.ingest.metadata import build_metadata
from tlpipe.components.ingest.sources import Source, open_source
from tlpipe.components.ingest.spans import resolve_span
from tlpipe.components.ingest.transforms import build_ingest
from tlpipe.models.plumbing.progress import Progress, log
from tlpipe.models.plumbing import example_format
from tlpipe.models.plumbing.errors import ConfigError

_STATS_FILE = ".ingest-stats.json"


def _check_source_splits(config: IngestConfig, source: Source) -> None:
    available = source.splits()
    for split, spec in config.split_specs().items():
        if spec.source_split not in available:
            raise ConfigError(f"splits.{split}", config.splits[split], f"a split of {config.source}: {', '.join(available)}")


def run_ingest(config: IngestConfig, beam_config: BeamConfig, output_dir: str) -> dict[str, Any]:
    """Ingest `config.source` into `output_dir`; returns the metadata also written as metadata.json.

    Output: `<output_dir>/<split>/part-NNNNN-of-MMMMM.tfrecord` of raw
    tf.Examples (pipeline/example_format.py) for each configured split, and
    `<output_dir>/metadata.json` (see metadata.py for its fields). Raises
    ConfigError / DataError (TlpipeError) for bad config or data.
    """
    config.validate()
    resolved = resolve_span(config.location, config.span)
    if resolved.span is not None:
        log(f"ingest: span {resolved.span} of {', '.join(map(str, resolved.available))}: {resolved.location}")
    source = open_source(config, resolved.location)
    _check_source_splits(config, source)
    declared = source.label_set()
    if declared is not None:  # fail before reading when a class does not exist or a task mapping misses one
        resolve_label_tasks(config.label_tasks, select_classes(declared, config.classes).names)
    fingerprint = source.fingerprint()  # of what was listed, before reading
    log(f"ingest: {source.modality} source {config.scheme}:{resolved.location}, Beam runner {beam_config.runner}")
    progress = Progress("ingest", interval_s=float("inf"))  # Beam stages report their own progress
    with atomic_output_dir(output_dir) as tmp_dir:
        stats_path = os.path.join(tmp_dir, _STATS_FILE)
        with create_pipeline(beam_config) as root:
            build_ingest(root, source, config, tmp_dir, stats_path)
        stats = read_json(stats_path)
        os.remove(stats_path)
        metadata = build_metadata(config, resolved, source.modality, fingerprint, stats)
        write_json(os.path.join(tmp_dir, example_format.METADATA_FILE), metadata)
        write_coverage(tmp_dir, metadata["counts"])
        progress.update(sum(metadata["source_counts"].values()))
    summary = "; ".join(f"{split}: {n}" for split, n in metadata["num_examples"].items())
    progress.done(f"wrote {summary} examples of {metadata['num_classes']} classes to {output_dir}")
    return metadata
