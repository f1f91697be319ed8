"""One raw tf.Example in, one transformed tf.Example (or the reason it is bad) out.

This is the per-element work of the transform pipeline, kept free of Beam so it
can be tested and reasoned about alone. A good record yields the serialized
transformed example plus a small summary for the statistics; a bad one yields
`BadRecord(id, kind, reason)`. See `tlpipe.models.plumbing.example_format` for the
feature keys on both sides. No TensorFlow here (see `example_proto`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple

import numpy as np
from google.protobuf.message import DecodeError

from tlpipe.components.transform import example_proto as proto
from tlpipe.components.transform.images import ImageDecodeError, transform_image
from tlpipe.components.transform.text import normalize_text
from tlpipe.models.plumbing import example_format as fmt


@dataclasses.dataclass(frozen=True)
class RecordSpec:
    """Everything the per-record transform needs, resolved by the executor."""

    modality: str  # 'image' or 'text'
    label_names: tuple[str, ...]
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    resize_method: str = "bilinear"
    text_lowercase: bool = True
    labelled: bool = True  # False for the `unlabeled` split: no label expected, none written
    tasks: tuple[tuple[str, tuple[str, ...]], ...] = ()  # further label tasks: (name, label names), copied through


class ImageSummary(NamedTuple):
    """What the statistics need from one transformed image."""

    label: int | None  # None for unlabelled examples
    source_shape: tuple[int, int, int]
    pixels: int  # per channel
    channel_sums: tuple[int, ...]
    channel_square_sums: tuple[int, ...]


class TextSummary(NamedTuple):
    """What the statistics need from one normalised text."""

    label: int | None
    chars: int
    tokens: int


class BadRecord(NamedTuple):
    """A record set aside: its id, a short kind for counting, and a reason a person can act on."""

    id: str
    kind: str
    reason: str


class Transformed(NamedTuple):
    """A good record: the serialized transformed example and its summary for the statistics."""

    example: bytes
    summary: ImageSummary | TextSummary


def transform_record(record: bytes, spec: RecordSpec) -> Transformed | BadRecord:
    """Transform one serialized raw example according to `spec`."""
    try:
        raw = proto.Example.FromString(record)
    except DecodeError:
        return BadRecord(_fallback_id(record), "not_an_example", "record is not a serialized tf.Example")
    features = raw.features.feature
    record_id = _first_bytes(features, fmt.ID_KEY)
    record_id = record_id.decode("utf-8", "replace") if record_id is not None else _fallback_id(record)

    out = {fmt.ID_KEY: _bytes(record_id.encode("utf-8"))}
    label = None
    if spec.labelled:
        labels = features[fmt.LABEL_KEY].int64_list.value if fmt.LABEL_KEY in features else ()
        if len(labels) != 1:
            return BadRecord(record_id, "missing_feature", f"missing int64 feature '{fmt.LABEL_KEY}' (one value expected)")
        label = int(labels[0])
        if not 0 <= label < len(spec.label_names):
            return BadRecord(
                record_id, "label_out_of_range",
                f"label {label} is outside the label set 0..{len(spec.label_names) - 1} ({len(spec.label_names)} classes)",
            )
        out[fmt.LABEL_KEY] = _int64s([label])
        out[fmt.LABEL_NAME_KEY] = _bytes(spec.label_names[label].encode("utf-8"))
        bad = _copy_task_labels(features, spec, record_id, out)
        if bad is not None:
            return bad
    key = fmt.IMAGE_ENCODED_KEY if spec.modality == "image" else fmt.TEXT_KEY
    value = _first_bytes(features, key)
    if value is None:
        return BadRecord(record_id, "missing_feature", f"missing bytes feature '{key}'")
    transform = _image if spec.modality == "image" else _text
    result = transform(value, label, record_id, spec, out)
    if isinstance(result, BadRecord):
        return result
    example = proto.Example(features=proto.Features(feature=out))
    return Transformed(example.SerializeToString(deterministic=True), result)  # the same bytes in every process


def _copy_task_labels(features, spec: RecordSpec, record_id: str, out: dict) -> BadRecord | None:
    """Copy each label task's label (checked against its label set) and write its class name."""
    for task, names in spec.tasks:
        key = fmt.task_label_key(task)
        labels = features[key].int64_list.value if key in features else ()
        if len(labels) != 1:
            return BadRecord(record_id, "missing_feature", f"missing int64 feature '{key}' (one value expected)")
        label = int(labels[0])
        if not 0 <= label < len(names):
            return BadRecord(record_id, "label_out_of_range",
                             f"label {label} of task '{task}' is outside its label set 0..{len(names) - 1}")
        out[key] = _int64s([label])
        out[fmt.task_label_name_key(task)] = _bytes(names[label].encode("utf-8"))
    return None


def _image(encoded: bytes, label: int | None, record_id: str, spec: RecordSpec, out: dict) -> ImageSummary | BadRecord:
    """Fill the image features of `out`; return the summary, or why the image is bad."""
    try:
        pixels, source_shape = transform_image(encoded, spec.image_size, spec.channels, spec.resize_method)
    except ImageDecodeError as error:
        return BadRecord(record_id, "undecodable_image", f"cannot decode image: {error}")
    out[fmt.IMAGE_RAW_KEY] = _bytes(pixels.tobytes())
    out[fmt.IMAGE_SHAPE_KEY] = _int64s(pixels.shape)
    flat = pixels.reshape(-1, pixels.shape[-1]).astype(np.int64)
    return ImageSummary(
        label=label,
        source_shape=source_shape,
        pixels=flat.shape[0],
        channel_sums=tuple(int(v) for v in flat.sum(axis=0)),
        channel_square_sums=tuple(int(v) for v in np.einsum("ij,ij->j", flat, flat)),
    )


def _text(raw: bytes, label: int | None, record_id: str, spec: RecordSpec, out: dict) -> TextSummary | BadRecord:
    """Fill the text feature of `out`; return the summary, or why the text is bad."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return BadRecord(record_id, "invalid_text", f"text is not valid UTF-8 ({error})")
    text = normalize_text(text, spec.text_lowercase)
    if not text:
        return BadRecord(record_id, "empty_text", "text is empty after normalisation")
    out[fmt.TEXT_KEY] = _bytes(text.encode("utf-8"))
    return TextSummary(label=label, chars=len(text), tokens=len(text.split(" ")))


def _first_bytes(features, key: str) -> bytes | None:
    if key not in features or not features[key].bytes_list.value:
        return None
    return features[key].bytes_list.value[0]


def _fallback_id(record: bytes) -> str:
    """A stable id for a record that carries none: a digest of its bytes."""
    return "sha1:" + hashlib.sha1(record).hexdigest()[:16]


def _bytes(value: bytes) -> proto.Feature:
    return proto.Feature(bytes_list=proto.BytesList(value=[value]))


def _int64s(values) -> proto.Feature:
    return proto.Feature(int64_list=proto.Int64List(value=[int(v) for v in values]))
