"""Label tasks pass through transform: copied, checked against their label set, named."""

from __future__ import annotations

import tensorflow as tf

import pytest

from tlpipe.components.transform.records import BadRecord, RecordSpec, Transformed, transform_record
from tlpipe.models.plumbing import example_format as fmt

pytestmark = pytest.mark.quick

SPEC = RecordSpec(modality="text", label_names=("cat", "dog", "eel"), tasks=(("kind", ("mammal", "fish")),))


def _with_task(label: int, task_label: int | None) -> bytes:
    feature = {fmt.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a text"])),
               fmt.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
               fmt.ID_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"t-1"]))}
    if task_label is not None:
        feature[fmt.task_label_key("kind")] = tf.train.Feature(int64_list=tf.train.Int64List(value=[task_label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_a_task_label_is_copied_and_named():
    outcome = transform_record(_with_task(2, 1), SPEC)
    assert isinstance(outcome, Transformed)
    feature = tf.train.Example.FromString(outcome.example).features.feature
    assert list(feature[fmt.task_label_key("kind")].int64_list.value) == [1]
    assert feature[fmt.task_label_name_key("kind")].bytes_list.value == [b"fish"]


def test_a_missing_or_out_of_range_task_label_sets_the_record_aside():
    missing = transform_record(_with_task(0, None), SPEC)
    assert isinstance(missing, BadRecord) and missing.kind == "missing_feature" and "task/kind/label" in missing.reason
    outside = transform_record(_with_task(0, 2), SPEC)
    assert isinstance(outside, BadRecord) and outside.kind == "label_out_of_range" and "'kind'" in outside.reason
