"""What flows through the ingest pipeline, and the raw tf.Example it ends as."""

from __future__ import annotations

import io
from typing import Any, NamedTuple, Union

import numpy as np
from PIL import Image
from tensorflow.core.example import example_pb2

from tlpipe.models.plumbing import example_format


class SourceRecord(NamedTuple):
    """One example as read from a source, before relabelling.

    `payload` is whatever the source's `load` turns into the stored bytes (a
    file path, pixels, the bytes themselves): loading happens only for the
    examples that are finally written, after class selection and k-shot
    sampling.
    """

    id: str
    split: str
    label: Union[int, str]
    payload: Any
    task_values: tuple[tuple[str, Union[int, str]], ...] = ()  # (task, source value) of label tasks read from the source


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image array, H x W or H x W x C with C in 1, 3, 4."""
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def serialize_example(content_key: str, content: bytes, label: int | None, label_name: str | None,
                      example_id: str, task_labels: tuple[tuple[str, int, str], ...] = ()) -> bytes:
    """A raw example (see tlpipe.models.plumbing.example_format), serialized; without label features when `label` is None.

    `task_labels` are (task, label, class name) of further label tasks."""
    example = example_pb2.Example()
    features = example.features.feature
    features[content_key].bytes_list.value.append(content)
    if label is not None:
        features[example_format.LABEL_KEY].int64_list.value.append(label)
        features[example_format.LABEL_NAME_KEY].bytes_list.value.append(label_name.encode("utf-8"))
        for task, task_label, task_name in task_labels:
            features[example_format.task_label_key(task)].int64_list.value.append(task_label)
            features[example_format.task_label_name_key(task)].bytes_list.value.append(task_name.encode("utf-8"))
    features[example_format.ID_KEY].bytes_list.value.append(example_id.encode("utf-8"))
    return example.SerializeToString(deterministic=True)  # map keys sorted: the same bytes in every process
