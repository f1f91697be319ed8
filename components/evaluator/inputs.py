"""Checking what the evaluator is given, before any TFMA work starts.

The dataset must be a transformed-dataset artifact (metadata.json with label
names, shards of the split); every model must be a tlpipe serving export that
predicts the dataset's classes from inputs of the dataset's modality and image
shape. A model in production that no longer fits the data (the classes
changed, say) is not an error: it is left out of the comparison, with a note.
"""

from __future__ import annotations

import os
from typing import Any

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError, ModelError
from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE

PRODUCTION = "production"


def evaluation_data(examples_dir: str, split: str) -> dict[str, Any]:
    """What the models are evaluated on, and what they must accept.

    Returns {"files": the split's shards, "label_names", "modality",
    "image_shape": [H, W, C] of the images (None for text)}.
    """
    import tensorflow as tf

    path = os.path.join(examples_dir, fmt.METADATA_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{examples_dir!r} is not a transformed dataset: {fmt.METADATA_FILE} is missing")
    metadata = read_json(path)
    label_names = metadata.get("label_names")
    if not isinstance(label_names, list) or len(label_names) < 2:
        raise DataError(f"{path} must list at least two 'label_names'; found {label_names!r}")
    files = fmt.split_files(examples_dir, split)
    if not files:
        available = [s for s in fmt.SPLITS if fmt.split_files(examples_dir, s)]
        raise DataError(f"split {split!r} has no {fmt.SHARD_SUFFIX} files under {examples_dir!r}; "
                        f"splits present: {available or 'none'}")
    first = next(iter(tf.data.TFRecordDataset(files).take(1)), None)
    if first is None:
        raise DataError(f"split {split!r} of {examples_dir!r} holds no examples")
    modality = metadata.get("modality", "image")
    shape = None
    if modality == "image":
        example = tf.train.Example.FromString(first.numpy())
        shape = list(example.features.feature[fmt.IMAGE_SHAPE_KEY].int64_list.value)
    return {"files": files, "label_names": [str(name) for name in label_names], "modality": modality,
            "image_shape": shape}


def check_names(candidates: dict[str, str], baseline: dict[str, str]) -> None:
    """At least one candidate and one baseline, and names that keep the models apart."""
    if not candidates:
        raise ConfigError("candidates", candidates, "at least one transfer model to evaluate, {name: model_dir}")
    if not baseline:
        raise ConfigError("baseline", baseline, "at least one from-scratch model to compare with, {name: model_dir}")
    clashes = sorted((set(candidates) & set(baseline)) | ({PRODUCTION} & (set(candidates) | set(baseline))))
    if clashes:
        raise ConfigError("candidates", clashes[0],
                          f"model names that differ between candidates and baselines and are not {PRODUCTION!r}")


def _mismatch(name: str, model_dir: str, data: dict[str, Any]) -> str | None:
    """Why the model cannot be evaluated on the data (other classes, modality or image shape), or None.

    ModelError when `model_dir` is not a tlpipe serving export at all.
    """
    from tlpipe.models.serving import load_serving_metadata

    if not os.path.isfile(os.path.join(model_dir, SAVED_MODEL_FILE)):
        raise ModelError(f"model '{name}': {model_dir!r} is not a SavedModel (no saved_model.pb); "
                         "pass the folder written by tlpipe.models.export_for_serving")
    metadata = load_serving_metadata(model_dir)
    labels = [str(label) for label in metadata.get("label_names", [])]
    if labels != data["label_names"]:
        return f"it predicts the classes {labels}, the evaluation data has {data['label_names']}"
    if metadata.get("modality") != data["modality"]:
        return f"it takes {metadata.get('modality')!r} inputs, the evaluation data is {data['modality']!r}"
    if data["modality"] == "image":
        model_shape = [*(metadata.get("image_size") or []), metadata.get("channels")]
        if model_shape != data["image_shape"]:
            return f"it takes images of shape {model_shape}, the evaluation data has {data['image_shape']}"
    return None


def checked_model(name: str, model_dir: str, data: dict[str, Any]) -> str:
    """The model's absolute folder, after checking that it fits the evaluation data."""
    reason = _mismatch(name, model_dir, data)
    if reason:
        raise ModelError(f"model '{name}' ({model_dir}) cannot be evaluated on this data: {reason}; "
                         "evaluate it on the data it was trained for")
    return os.path.abspath(model_dir)


def production_skip_reason(config: EvaluatorConfig, model_dir: str, data: dict[str, Any]) -> str | None:
    """Why the model in production is not compared, or None when it is."""
    if not config.compare_with_production:
        return f"the model in production ({model_dir}) is not compared: evaluator.compare_with_production is off"
    reason = _mismatch(PRODUCTION, model_dir, data)
    if reason:
        return f"the model in production ({model_dir}) is not compared: {reason}"
    return None
