"""Exporting a trained classifier as a SavedModel that TFMA evaluates and TF Serving serves.

Signatures (all return `probabilities` float32 [None, K], `class_ids` int64
[None] and `class_names` string [None]; a multi-task model returns these three
per task, as `<task>/probabilities` etc.):

- `serving_default(examples)`: serialized *transformed* tf.Examples
  (`tlpipe.models.plumbing.example_format`), what the evaluator feeds TFMA;
- `serving_image_bytes(images)` (image models): encoded PNG/JPEG/GIF/BMP
  bytes, decoded, converted to the model's channels, resized and rounded to
  uint8 in-graph with the transform component's recipe
  (`tlpipe.components.transform.images`), so clients send files as they are;
- `serving_text(texts)` (text models): raw strings, lower-cased (when the
  transform lower-cased) and whitespace-collapsed in-graph;
- `serving_pixels(pixels)` (image models): float32 pixel values [None, H, W, C]
  in 0..255 at the transformed geometry, returning `probabilities` only (per
  task for a multi-task model). No parsing, decoding or string lookup: it is
  the graph `tlpipe.models.edge` converts to LiteRT (TFLite), whose builtin
  op set has none of those.

The label names are a SavedModel asset (`assets/label_names.txt`, one per
line) that the class-name lookup table reads, and, with the modality, input
geometry, the config used and the training history, also in
`<export_dir>/tlpipe.json` (`load_serving_metadata`).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Optional, Sequence

import keras
import tensorflow as tf

from tlpipe.models.plumbing.artifacts import atomic_output_dir, read_json, write_json
from tlpipe.models._classifier import outputs_logits
from tlpipe.models.task import ClassifierTask
from tlpipe.models.examples import check_modality, decode_examples, scale_pixels
from tlpipe.models.plumbing.errors import ConfigError, ModelError
from tlpipe.models.plumbing.layout import SERVING_METADATA_FILE

METADATA_FILE = SERVING_METADATA_FILE
LABEL_NAMES_FILE = "label_names.txt"
TASK_LABEL_NAMES_FILE = "label_names_{task}.txt"
DEFAULT_SIGNATURE = "serving_default"
IMAGE_BYTES_SIGNATURE = "serving_image_bytes"
TEXT_SIGNATURE = "serving_text"
PIXELS_SIGNATURE = "serving_pixels"
PIXELS_INPUT = "pixels"
PROBABILITIES_OUTPUT = "probabilities"
# The penultimate features of a single-task Classifier, over serialized examples:
# what label propagation (self-training), drift checks or a nearest-neighbour
# search need from a served model besides its predictions.
FEATURES_SIGNATURE = "serving_features"
FEATURES_OUTPUT = "features"
RESIZE_METHODS = ("bilinear", "nearest", "area", "bicubic")


def _class_names_table(label_file: str) -> tf.lookup.StaticHashTable:
    """Class id -> class name, read from a label file asset (one name per line)."""
    return tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            label_file,
            key_dtype=tf.int64, key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="",
    )


def task_output_key(task: str, output: str) -> str:
    """A multi-task model's signature output: `<task>/probabilities`, `<task>/class_ids`, `<task>/class_names`."""
    return f"{task}/{output}"


class _ServingModule(tf.Module):
    """The exported object: the Keras model, the class-name table(s) and the signature functions."""

    def __init__(self, model: keras.Model, label_file: str, modality: str,
                 image_shape: Optional[tuple[int, int, int]], resize_method: str, text_lowercase: bool,
                 task_label_files: Optional[dict[str, str]] = None):
        super().__init__(name="tlpipe_serving")
        self.model = model
        self._from_logits = outputs_logits(model)
        self.class_names_table = _class_names_table(label_file)
        # A multi-task model: one table per task (tf.Module tracks the dict's tables as assets).
        self.task_tables = {task: _class_names_table(path) for task, path in (task_label_files or {}).items()}
        self._modality = modality
        self._image_shape = image_shape
        self._resize_method = resize_method
        self._text_lowercase = text_lowercase
        # Only the signatures of this modality are traced: tf.saved_model.save traces
        # every tf.function the module holds.
        self.serving_functions = {DEFAULT_SIGNATURE: _string_signature(self._serve_examples, "examples")}
        if modality == "image":
            self.serving_functions[IMAGE_BYTES_SIGNATURE] = _string_signature(self._serve_image_bytes, "images")
            self.serving_functions[PIXELS_SIGNATURE] = tf.function(
                self._serve_pixels, input_signature=[tf.TensorSpec([None, *image_shape], tf.float32, name=PIXELS_INPUT)])
        else:
            self.serving_functions[TEXT_SIGNATURE] = _string_signature(self._serve_texts, "texts")
        features = getattr(model, "features", None)
        if features is not None and not self.task_tables:
            self.feature_model = keras.Model(model.inputs, features, name="features")
            self.serving_functions[FEATURES_SIGNATURE] = _string_signature(self._serve_features, "examples")

    def _outputs(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        predictions = self.model(inputs, training=False)
        if self.task_tables:
            outputs = {}
            for task, table in self.task_tables.items():
                for key, value in self._group(predictions[task], table).items():
                    outputs[task_output_key(task, key)] = value
            return outputs
        return self._group(predictions, self.class_names_table)

    def _probabilities(self, predictions: tf.Tensor) -> tf.Tensor:
        predictions = tf.cast(predictions, tf.float32)
        return tf.nn.softmax(predictions, axis=-1) if self._from_logits else predictions

    def _group(self, predictions: tf.Tensor, table: tf.lookup.StaticHashTable) -> dict[str, tf.Tensor]:
        probabilities = self._probabilities(predictions)
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            PROBABILITIES_OUTPUT: probabilities,
            "class_ids": class_ids,
            "class_names": table.lookup(class_ids),
        }

    def _serve_pixels(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        predictions = self.model(scale_pixels(pixels), training=False)
        if self.task_tables:
            return {task_output_key(task, PROBABILITIES_OUTPUT): self._probabilities(predictions[task])
                    for task in self.task_tables}
        return {PROBABILITIES_OUTPUT: self._probabilities(predictions)}

    def _serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs, _ = decode_examples(examples, self._modality, self._image_shape)
        return self._outputs(inputs)

    def _serve_features(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs, _ = decode_examples(examples, self._modality, self._image_shape)
        return {FEATURES_OUTPUT: tf.cast(self.feature_model(inputs, training=False), tf.float32)}

    def _serve_image_bytes(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        height, width, channels = self._image_shape
        pixels = tf.map_fn(
            self._decode_image, images,
            fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8),
        )
        return self._outputs(scale_pixels(pixels))

    def _decode_image(self, encoded: tf.Tensor) -> tf.Tensor:
        """The transform component's recipe: decode as RGB, grey if wanted, resize, round to uint8."""
        height, width, channels = self._image_shape
        image = tf.cast(tf.io.decode_image(encoded, channels=3, expand_animations=False), tf.float32)
        if channels == 1:
            image = tf.image.rgb_to_grayscale(image)
        same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], [height, width]))
        image = tf.cond(
            same_size,
            lambda: image,
            lambda: tf.image.resize(image, [height, width], method=self._resize_method, antialias=True),
        )
        image = tf.ensure_shape(image, [height, width, channels])
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)

    def _serve_texts(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        if self._text_lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        texts = tf.strings.strip(tf.strings.regex_replace(texts, r"\s+", " "))
        return self._outputs(texts)


def _string_signature(fn: Any, input_name: str) -> Any:
    """`fn` as a tf.function over one string batch [None] named `input_name`."""
    return tf.function(fn, input_signature=[tf.TensorSpec([None], tf.string, name=input_name)])


def export_for_serving(
    model: keras.Model,
    export_dir: str,
    *,
    label_names: Sequence[str],
    modality: str,
    image_size: Optional[Sequence[int]] = None,
    channels: Optional[int] = None,
    config: Optional[dict[str, Any]] = None,
    history: list | dict | None = None,
    resize_method: str = "bilinear",
    text_lowercase: bool = True,
    task_label_names: Optional[dict[str, Sequence[str]]] = None,
) -> str:
    """Write `model` as a SavedModel with tlpipe's serving signatures into `export_dir`, atomically.

    A `MultiTaskClassifier` needs `task_label_names` ({task: names}); its
    signatures return one group per task (`task_output_key`: `<task>/probabilities`,
    `<task>/class_ids`, `<task>/class_names`), each task's names are an asset
    (`assets/label_names_<task>.txt`) and `tlpipe.json` lists them under
    `tasks`. `label_names` are then the first task's.

    `model` maps inputs (float32 images [B, H, W, C] in [0, 1], or strings [B])
    to class probabilities or logits [B, K], K = len(label_names), through a
    last layer named 'classifier' (softmax or linear; logits get a softmax). `image_size` (H, W) and
    `channels` are the transformed images' geometry; `resize_method` and
    `text_lowercase` must match the transform config so raw inputs are prepared
    as the training data was. Returns the absolute export path.
    """
    label_names = [str(name) for name in label_names]
    image_shape = _image_shape(modality, image_size, channels)
    check_modality(modality, image_shape)
    tasks = _check_task_labels(model, task_label_names)
    if not tasks:
        _check_labels(model, label_names)
    if resize_method not in RESIZE_METHODS:
        raise ConfigError("resize_method", resize_method, RESIZE_METHODS)

    with tempfile.TemporaryDirectory() as scratch:
        label_file = os.path.join(scratch, LABEL_NAMES_FILE)
        with open(label_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(label_names) + "\n")
        task_files = {}
        for task, names in tasks.items():
            task_files[task] = os.path.join(scratch, TASK_LABEL_NAMES_FILE.format(task=task))
            with open(task_files[task], "w", encoding="utf-8") as handle:
                handle.write("\n".join(names) + "\n")
        module = _ServingModule(model, label_file, modality, image_shape, resize_method, text_lowercase, task_files)
        signatures = dict(module.serving_functions)
        with atomic_output_dir(export_dir) as tmp_dir:
            tf.saved_model.save(module, tmp_dir, signatures=signatures)
            write_json(os.path.join(tmp_dir, METADATA_FILE), {
                "label_names": label_names,
                "modality": modality,
                "image_size": list(image_shape[:2]) if image_shape else None,
                "channels": image_shape[2] if image_shape else None,
                "resize_method": resize_method if modality == "image" else None,
                "text_lowercase": text_lowercase if modality == "text" else None,
                "signatures": sorted(signatures),
                **({"tasks": {task: {"label_names": names} for task, names in tasks.items()}} if tasks else {}),
                "config": config or {},
                "history": history,
            })
    return os.path.abspath(export_dir)


def load_serving_metadata(export_dir: str) -> dict[str, Any]:
    """The `tlpipe.json` written beside an exported model (label names, geometry, config, history)."""
    path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.isfile(path):
        raise ModelError(
            f"{export_dir!r} is not a tlpipe serving export: {METADATA_FILE} is missing "
            "(export models with tlpipe.models.export_for_serving)"
        )
    return read_json(path)


def _image_shape(modality: str, image_size: Optional[Sequence[int]],
                 channels: Optional[int]) -> Optional[tuple[int, int, int]]:
    if modality != "image":
        return None
    if image_size is None or len(image_size) != 2 or min(image_size) < 1:
        raise ConfigError("image_size", image_size, "[height, width] of the transformed images, both >= 1")
    if channels not in (1, 3):
        raise ConfigError("channels", channels, [1, 3])
    return int(image_size[0]), int(image_size[1]), int(channels)


def _check_task_labels(model: keras.Model,
                       task_label_names: Optional[dict[str, Sequence[str]]]) -> dict[str, list[str]]:
    """{task: names} for a model with a head per task (one name list per head, one name per output class),
    else {}."""
    task_classes = model.task_classes() if isinstance(model, ClassifierTask) else {}
    if not task_classes:
        if task_label_names:
            raise ConfigError("task_label_names", sorted(task_label_names), "none for a single-task model")
        return {}
    received = dict(task_label_names or {})
    if sorted(received) != sorted(task_classes):
        raise ConfigError("task_label_names", sorted(received), f"label names for each task: {list(task_classes)}")
    tasks = {}
    for task, num_classes in task_classes.items():
        names = [str(name) for name in received[task]]
        _check_names(names)
        if len(names) != num_classes:
            raise ModelError(f"task {task!r} outputs {num_classes} classes but {len(names)} label names "
                             f"were given ({names}); pass one name per output class")
        tasks[task] = names
    return tasks


def _check_names(label_names: list[str]) -> None:
    if len(label_names) < 2:
        raise ConfigError("label_names", label_names, "at least two class names")
    bad = [name for name in label_names if not name or "\n" in name or "\r" in name]
    if bad:
        raise ConfigError("label_names", bad[0], "non-empty names without line breaks")


def _check_labels(model: keras.Model, label_names: list[str]) -> None:
    if len(label_names) < 2:
        raise ConfigError("label_names", label_names, "at least two class names")
    bad = [name for name in label_names if not name or "\n" in name or "\r" in name]
    if bad:
        raise ConfigError("label_names", bad[0], "non-empty names without line breaks")
    outputs = getattr(model, "outputs", None)
    if outputs and outputs[0].shape[-1] != len(label_names):
        raise ModelError(
            f"the model outputs {outputs[0].shape[-1]} classes but {len(label_names)} label names were given "
            f"({label_names}); pass one name per output class"
        )
