"""Turning transformed tf.Examples (see `tlpipe.models.plumbing.example_format`) into model inputs.

One decoder serves training (the trainer's tf.data pipelines) and serving (the
exported `serving_default` signature), so a model sees in production exactly
the numbers it saw in training: uint8 pixels scaled to float32 in [0, 1], or
the normalised text string.
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.models.plumbing.example_format import MODALITIES


def check_modality(modality: str, image_shape: Optional[Sequence[int]]) -> None:
    """Raise ConfigError unless `modality` is known and images come with their [H, W, C]."""
    if modality not in MODALITIES:
        raise ConfigError("modality", modality, MODALITIES)
    if modality == "image" and (image_shape is None or len(image_shape) != 3 or min(image_shape) < 1):
        raise ConfigError("image_shape", image_shape, "[height, width, channels] of the transformed images")


def feature_spec(modality: str, *, with_label: bool) -> dict[str, tf.io.FixedLenFeature]:
    """Parsing spec of the transformed example's model input (and label, for training)."""
    if modality == "image":
        spec = {
            fmt.IMAGE_RAW_KEY: tf.io.FixedLenFeature([], tf.string),
            fmt.IMAGE_SHAPE_KEY: tf.io.FixedLenFeature([3], tf.int64),
        }
    else:
        spec = {fmt.TEXT_KEY: tf.io.FixedLenFeature([], tf.string)}
    if with_label:
        spec[fmt.LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def decode_examples(
    serialized: tf.Tensor,
    modality: str,
    image_shape: Optional[Sequence[int]] = None,
    *,
    with_label: bool = False,
) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
    """Decode a batch of serialized transformed examples into (inputs, labels or None).

    Images become float32 [B, H, W, C] in [0, 1]; an example whose `image/shape`
    differs from `image_shape` fails with an error naming both shapes. Text
    becomes a string tensor [B].
    """
    check_modality(modality, image_shape)
    parsed = tf.io.parse_example(serialized, feature_spec(modality, with_label=with_label))
    labels = parsed[fmt.LABEL_KEY] if with_label else None
    if modality == "text":
        return parsed[fmt.TEXT_KEY], labels
    height, width, channels = (int(d) for d in image_shape)
    expected = tf.constant([height, width, channels], tf.int64)
    shapes = parsed[fmt.IMAGE_SHAPE_KEY]
    check = tf.debugging.assert_equal(
        shapes, tf.broadcast_to(expected, tf.shape(shapes)),
        message=f"transformed example's image/shape differs from the model's input [{height}, {width}, {channels}]",
    )
    with tf.control_dependencies([check]):
        pixels = tf.io.decode_raw(parsed[fmt.IMAGE_RAW_KEY], tf.uint8)
    images = tf.reshape(pixels, [-1, height, width, channels])
    return scale_pixels(images), labels


def scale_pixels(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1], the models' input range."""
    return tf.cast(images, tf.float32) / 255.0
