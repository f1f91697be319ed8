"""Checking edge exports before they ship: convert, score on the test split beside the SavedModel, time.

The evaluator converts the blessed candidate into every edge format that
`pusher.formats` asks for (`tlpipe.models.edge`), into its own output folder,
and checks each file there; the pusher then copies exactly those files (their
sha256 is in the record) beside the SavedModel in the same atomic push. So the
contract "the evaluator blesses, the pusher ships what was checked" covers the
edge files too: the pusher converts nothing.

The check of one format, on the same test examples as the evaluation:
- accuracy of the edge file in the LiteRT interpreter (batched) and of the
  SavedModel it came from (its `serving_pixels` signature, the same graph
  TFMA scored);
- the paired difference (edge minus SavedModel), with a seeded bootstrap over
  the test examples (`BOOTSTRAP_RESAMPLES` resamples of the per-example
  difference of correctness, percentile interval at the evaluator's
  `confidence_level`): pairing makes "int8 loses 0.2% of the answers" visible
  on a few thousand examples;
- blocked when the drop is surely above `evaluator.edge_max_drop`: the upper
  end of the difference's interval is below -edge_max_drop;
- latency per image on this CPU: the median of a warm run of single-image
  predictions (`tlpipe.models.edge.median_latency_ms`), the SavedModel's
  beside them.

Calibration of `tflite_int8`: a seeded sample (reservoir sampling, one pass)
of the transformed `train` and `unlabeled` splits, never eval or test; the
record lists the files the sample was read from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Any, Optional, Sequence

import numpy as np

from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import DataError, ModelError
from tlpipe.models.plumbing.layout import EDGE_RECORD_FILE

CALIBRATION_SPLITS = (fmt.UNLABELED_SOURCE_SPLIT, fmt.UNLABELED_SPLIT)
BOOTSTRAP_RESAMPLES = 1000
_READ_BATCH = 256


@dataclasses.dataclass(frozen=True)
class EdgeCheckSettings:
    """What decides a format's fate: the allowed drop, the interval's level, the seed, the calibration size."""

    max_drop: float
    confidence_level: float
    seed: int
    calibration_examples: int


@dataclasses.dataclass(frozen=True)
class CalibrationSample:
    """uint8 images [N, H, W, C] for int8 calibration, and the shard files they were read from."""

    images: np.ndarray
    files: list[str]


def calibration_sample(transformed_dir: str, count: int, seed: int,
                       image_shape: Sequence[int]) -> CalibrationSample:
    """A seeded sample of `count` images of the train and unlabelled splits (all of them when fewer)."""
    import tensorflow as tf

    files = [path for split in CALIBRATION_SPLITS for path in fmt.split_files(transformed_dir, split)]
    if not files:
        raise DataError(f"{transformed_dir!r} has no {' or '.join(CALIBRATION_SPLITS)} split to calibrate "
                        f"tflite_int8 on (eval and test are never used for it); pass a transformed dataset "
                        "with a train split")
    rng = np.random.default_rng(seed)
    chosen: list[bytes] = []
    for seen, record in enumerate(tf.data.TFRecordDataset(files).as_numpy_iterator()):
        if len(chosen) < count:
            chosen.append(record)
        else:
            slot = rng.integers(0, seen + 1)
            if slot < count:
                chosen[slot] = record
    if not chosen:
        raise DataError(f"the {' and '.join(CALIBRATION_SPLITS)} splits of {transformed_dir!r} hold no examples "
                        "to calibrate tflite_int8 on")
    images, _ = _decode(chosen, image_shape, with_label=False)
    return CalibrationSample(images, files)


def read_split(transformed_dir: str, split: str, image_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W, C] and int labels [N] of one labelled split."""
    import tensorflow as tf

    files = fmt.split_files(transformed_dir, split)
    if not files:
        raise DataError(f"{transformed_dir!r} has no {split!r} split to check edge exports on")
    batches = [_decode(batch, image_shape, with_label=True)
               for batch in tf.data.TFRecordDataset(files).batch(_READ_BATCH).as_numpy_iterator()]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _decode(serialized: Any, image_shape: Sequence[int], *, with_label: bool) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    from tlpipe.models.examples import feature_spec

    parsed = tf.io.parse_example(tf.constant(serialized), feature_spec("image", with_label=with_label))
    images = tf.reshape(tf.io.decode_raw(parsed[fmt.IMAGE_RAW_KEY], tf.uint8), [-1, *image_shape]).numpy()
    labels = parsed[fmt.LABEL_KEY].numpy() if with_label else np.zeros(len(images), np.int64)
    return images, labels


def paired_difference(edge_correct: np.ndarray, reference_correct: np.ndarray, confidence_level: float,
                      seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, float]:
    """Accuracy difference (edge minus reference) on the same examples, with its seeded bootstrap interval."""
    diff = edge_correct.astype(np.float32) - reference_correct.astype(np.float32)
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(resamples)])
    tail = (1.0 - confidence_level) / 2.0
    lower, upper = np.quantile(means, [tail, 1.0 - tail])
    return {"value": float(diff.mean()), "lower": float(lower), "upper": float(upper)}


def saved_model_probabilities(signature: Any, images: np.ndarray) -> np.ndarray:
    """Probabilities [N, K] of a SavedModel's `serving_pixels` signature for uint8 images, in batches."""
    import tensorflow as tf

    from tlpipe.models.serving import PIXELS_INPUT, PROBABILITIES_OUTPUT

    return np.concatenate([
        signature(**{PIXELS_INPUT: tf.constant(images[start:start + _READ_BATCH], tf.float32)})[
            PROBABILITIES_OUTPUT].numpy()
        for start in range(0, len(images), _READ_BATCH)
    ])


def check_edge_formats(model_dir: str, formats: Sequence[str], examples_dir: str, output_dir: str,
                       settings: EdgeCheckSettings, *, split: str = "test",
                       calibration_dir: Optional[str] = None) -> dict[str, Any]:
    """Convert `model_dir` into each edge format of `formats` under `output_dir` and check each file.

    `examples_dir`: the transformed dataset whose `split` scores the files;
    `calibration_dir` (default `examples_dir`): where tflite_int8's calibration
    sample comes from. Writes `edge.json` (the returned record) into
    `output_dir`: per format its file, size, sha256, accuracy, paired
    difference, latency, and whether it is blocked and why; "passed" is
    True when no format is blocked or refused; "seconds" is the wall time of it all.
    """
    import tensorflow as tf

    from tlpipe.models import edge
    from tlpipe.models.plumbing.artifacts import write_json
    from tlpipe.models.edge import median_latency_ms
    from tlpipe.models.serving import PIXELS_SIGNATURE, load_serving_metadata

    check_started = time.perf_counter()
    serving = load_serving_metadata(model_dir)
    if serving.get("tasks"):
        raise ModelError(f"cannot check edge exports of {model_dir!r}: it is a multi-task model "
                         f"({', '.join(serving['tasks'])}) and the check scores one label; export it unchecked "
                         "(tlpipe export without --examples)")
    wanted = [name for name in formats if name in edge.EDGE_FORMATS]
    refused = edge.unsupported_formats(serving, wanted)
    record: dict[str, Any] = {"model_dir": os.path.abspath(model_dir), "split": split, "formats": wanted,
                              "max_drop": settings.max_drop, "confidence_level": settings.confidence_level,
                              "seed": settings.seed, "results": {}, "refused": refused}
    os.makedirs(output_dir, exist_ok=True)
    if len(refused) < len(wanted):
        image_shape = [*serving["image_size"], serving["channels"]]
        images, labels = read_split(examples_dir, split, image_shape)
        started = time.perf_counter()
        loaded = tf.saved_model.load(model_dir)  # once: the reference's predictions and every conversion
        signature = loaded.signatures[PIXELS_SIGNATURE]
        reference = saved_model_probabilities(signature, images)
        record["saved_model"] = {
            "accuracy": float(np.mean(reference.argmax(axis=1) == labels)),
            "size_bytes": _folder_size(model_dir),
            "latency_ms": median_latency_ms(lambda: saved_model_probabilities(signature, images[:1])),
            "predict_seconds": round(time.perf_counter() - started, 2),
        }
        calibration = None
        if any(name in edge.CALIBRATED_FORMATS for name in wanted if name not in refused):
            calibration = calibration_sample(calibration_dir or examples_dir, settings.calibration_examples,
                                             settings.seed, image_shape)
            record["calibration"] = {"examples": len(calibration.images), "files": calibration.files}
        for name in wanted:
            if name not in refused:
                record["results"][name] = _check_one(model_dir, loaded, name, output_dir, images, labels,
                                                     reference, calibration, settings)
    blocked = {name: result["reason"] for name, result in record["results"].items() if result["blocked"]}
    record["reasons"] = [f"{name} is refused: {why}." for name, why in refused.items()] + list(blocked.values())
    record["passed"] = not record["reasons"]
    record["seconds"] = round(time.perf_counter() - check_started, 1)  # what the check adds to the evaluation
    write_json(os.path.join(output_dir, EDGE_RECORD_FILE), record)
    return record


def _check_one(model_dir: str, loaded: Any, edge_format: str, output_dir: str, images: np.ndarray,
               labels: np.ndarray, reference: np.ndarray, calibration: Optional[CalibrationSample],
               settings: EdgeCheckSettings) -> dict[str, Any]:
    from tlpipe.models import edge
    from tlpipe.models.edge import median_latency_ms

    path = os.path.join(output_dir, edge.edge_file_name(edge_format))
    exported = edge.export_edge(model_dir, edge_format, path, loaded=loaded,
                                calibration=calibration.images if calibration is not None else None)
    started = time.perf_counter()
    model = edge.EdgeModel(path)
    predicted = model.probabilities(images).argmax(axis=1)
    predict_seconds = time.perf_counter() - started
    correct = predicted == labels
    difference = paired_difference(correct, reference.argmax(axis=1) == labels, settings.confidence_level,
                                   settings.seed)
    blocked = difference["upper"] < -settings.max_drop
    result = {
        "file": os.path.basename(path),
        "size_bytes": exported["size_bytes"],
        "sha256": file_sha256(path),
        "accuracy": float(correct.mean()),
        "difference": difference,
        "latency_ms": median_latency_ms(lambda: model.probabilities(images[:1])),
        "convert_seconds": exported["convert_seconds"],
        "predict_seconds": round(predict_seconds, 2),
        "blocked": bool(blocked),
    }
    if blocked:
        result["reason"] = (
            f"{edge_format} is blocked: it classifies {correct.mean():.3f} of the {len(labels)} test examples "
            f"right, {-difference['value']:.3f} fewer than the SavedModel it was converted from; the "
            f"{settings.confidence_level:.0%} interval of that drop [{-difference['upper']:.3f}, "
            f"{-difference['lower']:.3f}] lies above evaluator.edge_max_drop {settings.max_drop:.3f}, so it surely "
            f"loses more than allowed. Take it out of pusher.formats or raise evaluator.edge_max_drop.")
    return result


def file_sha256(path: str) -> str:
    """sha256 of one file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _folder_size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)


def apply_to_blessing(blessing: dict[str, Any], record: dict[str, Any], edge_dir: str) -> None:
    """Record the check in the blessing (what the pusher copies, with checksums); withdraw it when a format failed."""
    blessing["edge"] = {
        "dir": edge_dir,
        "formats": record["formats"],
        "passed": record["passed"],
        "files": {name: {"file": result["file"], "sha256": result["sha256"]}
                  for name, result in record["results"].items()},
        "reasons": record["reasons"],
    }
    if record["passed"]:
        return
    blessing.update(
        blessed=False,
        reason=(f"'{blessing['candidate']}' passed the evaluation, but not every edge export that pusher.formats "
                f"asks for: " + " ".join(record["reasons"]) + " Nothing is pushed."),
        reasons=[*blessing["reasons"], *record["reasons"]],
    )
