"""transform executor: an ingest artifact in, a model-ready artifact out, with Apache Beam.

Input (`input_dir`, written by ingest): `<split>/part-*.tfrecord` of raw
tf.Examples and `metadata.json` (label_names, num_classes, modality, ...).

Output (`output_dir`, written atomically, nothing is left there on failure):
  <split>/part-NNNNN-of-MMMMM.tfrecord   transformed tf.Examples, as many shards
                                         as the input split has
  bad_records/<split>.jsonl              one JSON line per record set aside:
                                         id, split, kind, reason (empty when none)
  statistics.json                        per-split statistics (also returned)
  metadata.json                          the input's metadata plus a `transform`
                                         entry: image_size, channels, resize_method,
                                         text_lowercase, examples per split

Images are decoded, converted to the wanted channels and resized (see
`images`); the pixels stay uint8 in `image/raw` with `image/shape` [H, W, C]:
a stored value v stands for v / 255 in [0, 1], the scale the model applies.
Texts are normalised (see `text`). `label/name` is written from the metadata's
label_names; `id` is kept (a digest of the record when it has none).

A record that is not a tf.Example, lacks its label or its image/text feature,
has a label outside 0..num_classes-1, or whose image does not decode is set
aside with the reason; when the bad fraction of a split exceeds
`transform.max_bad_fraction`, the run fails with `DataError`. Statistics per
split: examples, class counts by name, bad records by kind, pixel mean/std per
channel in [0, 1] and source image sizes, or text length in chars and tokens.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import shutil
from typing import Any, Optional

from tlpipe.models.plumbing.artifacts import atomic_output_dir, read_json, write_json
from tlpipe.components.beam import BeamConfig, create_pipeline
from tlpipe.models.plumbing.progress import Progress, is_quiet, log
from tlpipe.components.transform.beam_stages import TransformSplit
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.transform.records import RecordSpec
from tlpipe.components.transform.statistics import check_bad_fractions, resolve_channels
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError

STATISTICS_FILE = "statistics.json"
BAD_RECORDS_DIR = "bad_records"
_SCRATCH_DIR = ".split_statistics"


def run_transform(
    config: TransformConfig,
    beam_config: BeamConfig,
    input_dir: str,
    output_dir: str,
    *,
    image_size: Optional[tuple[int, int]] = None,
    channels: Optional[int] = None,
) -> dict[str, Any]:
    """Transform the ingest artifact at `input_dir` into `output_dir`; returns the statistics.

    `image_size` (height, width) and `channels` override `config.image_size` and
    `config.channels`; the pipeline passes the input size of the trainer's module.
    """
    metadata = _read_metadata(input_dir)
    shards = _input_shards(input_dir)
    if _is_inside(output_dir, input_dir) or _is_inside(input_dir, output_dir):
        raise ConfigError(
            "output_dir", output_dir, f"a folder that neither contains nor lies inside the input {input_dir!r}"
        )
    spec = _record_spec(config, metadata, image_size, channels)

    geometry = (
        f"image size {spec.image_size[0]}x{spec.image_size[1]}, channels {spec.channels or 'as decoded'}, "
        f"resize {spec.resize_method}" if spec.modality == "image" else f"lowercase {spec.text_lowercase}"
    )
    log(
        f"transform: {spec.modality} splits "
        + ", ".join(f"{s} ({n} shards)" for s, n in shards.items())
        + f" from {input_dir}; {geometry}; Beam runner {beam_config.runner}"
    )
    progress = Progress("transform")
    with atomic_output_dir(output_dir) as tmp_dir:
        reports = _run_pipeline(beam_config, spec, shards, input_dir, tmp_dir)
        check_bad_fractions(reports, config.max_bad_fraction)
        out_channels = resolve_channels(reports, spec.channels) if spec.modality == "image" else None
        statistics = {
            "modality": spec.modality,
            "image_size": list(spec.image_size) if spec.image_size else None,
            "channels": out_channels,
            "splits": reports,
        }
        write_json(os.path.join(tmp_dir, STATISTICS_FILE), statistics)
        transform_entry = {
            "image_size": statistics["image_size"],
            "channels": out_channels,
            "resize_method": spec.resize_method if spec.modality == "image" else None,
            "text_lowercase": spec.text_lowercase if spec.modality == "text" else None,
            "examples": {split: report["examples"] for split, report in reports.items()},
        }
        write_json(os.path.join(tmp_dir, fmt.METADATA_FILE), {**metadata, "transform": transform_entry})
    progress.count = sum(r["examples"] + r["bad_records"] for r in reports.values())
    progress.done(
        "; ".join(f"{s}: {r['examples']} examples, {r['bad_records']} bad" for s, r in reports.items())
        + f" -> {output_dir}"
    )
    return statistics


def _run_pipeline(
    beam_config: BeamConfig, spec: RecordSpec, shards: dict[str, int], input_dir: str, tmp_dir: str
) -> dict[str, dict[str, Any]]:
    """Run the Beam graph over all splits in one pipeline; returns each split's statistics report."""
    scratch = os.path.join(tmp_dir, _SCRATCH_DIR)
    os.makedirs(os.path.join(tmp_dir, BAD_RECORDS_DIR))
    with create_pipeline(beam_config) as pipeline:
        for split, num_shards in shards.items():
            pipeline | TransformSplit(
                split=split,
                input_dir=os.path.abspath(input_dir),
                output_dir=tmp_dir,
                num_shards=num_shards,
                spec=dataclasses.replace(spec, labelled=split != fmt.UNLABELED_SPLIT),
                bad_records_path=os.path.join(tmp_dir, BAD_RECORDS_DIR, f"{split}.jsonl"),
                statistics_path=os.path.join(scratch, f"{split}.json"),
                quiet=is_quiet(),
            )
    reports = {split: read_json(os.path.join(scratch, f"{split}.json")) for split in shards}
    shutil.rmtree(scratch)
    return reports


def _record_spec(
    config: TransformConfig, metadata: dict[str, Any], image_size: Optional[tuple[int, int]], channels: Optional[int]
) -> RecordSpec:
    """Resolve image geometry (keyword arguments over config) and labels into a `RecordSpec`."""
    modality = metadata["modality"]
    size = image_size if image_size is not None else config.image_size
    channels = channels if channels is not None else config.channels
    if modality == "image":
        if size is None:
            raise ConfigError(
                "transform.image_size", None,
                "[height, width] for image data, e.g. --set transform.image_size=[28,28] "
                "(needed when the trainer's module or preset does not declare its input size)",
            )
        if len(size) != 2 or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in size):
            raise ConfigError("image_size", size, "[height, width] with both integers >= 1")
        if channels not in (None, 1, 3):
            raise ConfigError("channels", channels, [None, 1, 3])
    return RecordSpec(
        modality=modality,
        label_names=tuple(metadata["label_names"]),
        image_size=(int(size[0]), int(size[1])) if modality == "image" else None,
        channels=channels if modality == "image" else None,
        resize_method=config.resize_method,
        text_lowercase=config.text_lowercase,
        tasks=tuple((task, tuple(info["label_names"])) for task, info in (metadata.get("label_tasks") or {}).items()),
    )


def _read_metadata(input_dir: str) -> dict[str, Any]:
    """The ingest metadata, checked for what transform relies on."""
    expected = f"an ingest artifact: {input_dir}/<split>/part-*{fmt.SHARD_SUFFIX} and {fmt.METADATA_FILE}"
    return fmt.read_metadata(input_dir, expected=expected)


def _input_shards(input_dir: str) -> dict[str, int]:
    """Number of shards of each split present in the ingest artifact, splits in name order."""
    shards = {}
    for name in sorted(os.listdir(input_dir)):
        files = fmt.split_files(input_dir, name) if os.path.isdir(os.path.join(input_dir, name)) else []
        if files:
            shards[name] = len(files)
    if not shards:
        raise DataError(
            f"transform input {input_dir!r} has no split folders with *{fmt.SHARD_SUFFIX} shards; "
            f"expected {input_dir}/<split>/part-*{fmt.SHARD_SUFFIX} written by ingest"
        )
    return shards


def _is_inside(path: str, folder: str) -> bool:
    """True when `path` is `folder` or lies below it."""
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder
