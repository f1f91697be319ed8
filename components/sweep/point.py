"""One grid point of a data-efficiency sweep: a run's evaluation condensed to what the curve needs.

The point is written beside the run (an artifact of its own), so the final
gather step reads small, self-describing files, whichever machine or pod ran
the point: the grid coordinates it was asked for, the labels per class the
training split really holds (from the transformed data's metadata), every
model's test accuracy with its interval and every candidate's paired
difference to each baseline, as the evaluator computed them.
"""

from __future__ import annotations

import os
import statistics
from typing import Any, Optional

from tlpipe.components.evaluator.blessing import BASELINE_ROLE
from tlpipe.models.plumbing.artifacts import atomic_output_dir, read_json, write_json
from tlpipe.models.plumbing import example_format
from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.plumbing.layout import SUMMARY_FILE

POINT_FILE = "point.json"
TRAIN_SPLIT = "train"


def condense(summary: dict[str, Any], metadata: dict[str, Any], *, shots: Optional[int], seed: int,
             evaluation_dir: str = "") -> dict[str, Any]:
    """The point of one run: `summary` is the evaluator's summary.json, `metadata` the transformed data's."""
    train_counts = metadata.get("counts", {}).get(TRAIN_SPLIT)
    if not train_counts:
        raise DataError(f"the transformed data has no labelled '{TRAIN_SPLIT}' split (its metadata counts: "
                        f"{sorted(metadata.get('counts', {}))}); a sweep varies the labels per class of that split")
    configured = metadata.get("shots", {}).get(TRAIN_SPLIT)
    if configured != shots:
        raise DataError(f"grid point asks for {shots if shots is not None else 'all'} labels per class, but the "
                        f"data it was given was sampled with shots.{TRAIN_SPLIT}={configured}")
    return {
        "shots": shots,
        "seed": seed,
        "labels_per_class": statistics.fmean(train_counts.values()),
        "train_counts": dict(train_counts),
        "num_test_examples": summary["num_examples"],
        "split": summary["split"],
        "confidence": summary["confidence"],
        "models": {name: {"role": entry["role"], "accuracy": _interval(entry["accuracy"])}
                   for name, entry in summary["models"].items()},
        "differences": {
            reference: {name: _interval(entry["accuracy_diff"]) for name, entry in comparison["candidates"].items()}
            for reference, comparison in summary["comparisons"].items() if comparison["role"] == BASELINE_ROLE
        },
        "blessed": summary["blessing"].get("candidate") if summary["blessing"].get("blessed") else None,
        "evaluation_dir": evaluation_dir,
    }


def _interval(entry: dict[str, Any]) -> dict[str, float]:
    return {"value": entry["value"], "lower": entry["lower"], "upper": entry["upper"]}


def write_point(transformed_dir: str, evaluation_dir: str, output_dir: str, *, shots: Optional[int],
                seed: int) -> dict[str, Any]:
    """Condense the run whose data is `transformed_dir` and evaluation `evaluation_dir` into `output_dir`."""
    point = condense(read_json(os.path.join(evaluation_dir, SUMMARY_FILE)),
                     read_json(os.path.join(transformed_dir, example_format.METADATA_FILE)),
                     shots=shots, seed=seed, evaluation_dir=os.path.abspath(evaluation_dir))
    with atomic_output_dir(output_dir) as tmp_dir:
        write_json(os.path.join(tmp_dir, POINT_FILE), point)
    return point


def read_point(point_dir: str) -> dict[str, Any]:
    """The point written into `point_dir`."""
    return read_json(os.path.join(point_dir, POINT_FILE))
