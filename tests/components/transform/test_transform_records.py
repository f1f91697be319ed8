"""Per-record transform, the statistics accumulator and its checks, without Beam."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tlpipe.components.transform import example_proto
from tlpipe.components.transform.records import BadRecord, RecordSpec, Transformed, transform_record
from tlpipe.components.transform.statistics import SplitStatistics, check_bad_fractions, resolve_channels
from tlpipe.models.plumbing.errors import DataError

pytestmark = pytest.mark.quick

NAMES = ("cat", "dog", "eel")
IMAGE_SPEC = RecordSpec(modality="image", label_names=NAMES, image_size=(4, 6), channels=3, resize_method="nearest")
TEXT_SPEC = RecordSpec(modality="text", label_names=NAMES, text_lowercase=True)


def test_example_classes_are_wire_compatible_with_tensorflow():
    ours = example_proto.Example(features=example_proto.Features(feature={
        "b": example_proto.Feature(bytes_list=example_proto.BytesList(value=[b"\x00x", b"y"])),
        "i": example_proto.Feature(int64_list=example_proto.Int64List(value=[-1, 2**40])),
    }))
    theirs = tf.train.Example.FromString(ours.SerializeToString())
    assert list(theirs.features.feature["b"].bytes_list.value) == [b"\x00x", b"y"]
    assert list(theirs.features.feature["i"].int64_list.value) == [-1, 2**40]
    theirs.features.feature["f"].float_list.value.append(0.5)
    back = example_proto.Example.FromString(theirs.SerializeToString())
    assert list(back.features.feature["f"].float_list.value) == [0.5]
    assert list(back.features.feature["i"].int64_list.value) == [-1, 2**40]


def test_a_good_image_record_becomes_raw_uint8_pixels(kit):
    pixels = np.arange(2 * 3, dtype=np.uint8).reshape(2, 3, 1) * 40
    outcome = transform_record(kit.image_example(kit.encode(pixels), 2, "img-1"), IMAGE_SPEC)
    assert isinstance(outcome, Transformed)
    feature = tf.train.Example.FromString(outcome.example).features.feature
    stored = kit.stored_pixels(tf.train.Example.FromString(outcome.example))
    np.testing.assert_array_equal(stored, kit.tf_reference(pixels, (4, 6), 3, "nearest"))
    assert list(feature["label"].int64_list.value) == [2]
    assert feature["label/name"].bytes_list.value == [b"eel"]
    assert feature["id"].bytes_list.value == [b"img-1"]
    assert "image/encoded" not in feature
    assert outcome.summary.source_shape == (2, 3, 1)
    assert outcome.summary.pixels == 24
    assert outcome.summary.channel_sums == (int(stored[..., 0].sum()),) * 3


def test_a_record_without_id_gets_a_stable_digest_id(kit):
    record = kit.example(0, None, text=b"x")
    first, second = transform_record(record, TEXT_SPEC), transform_record(record, TEXT_SPEC)
    ids = [tf.train.Example.FromString(o.example).features.feature["id"].bytes_list.value[0] for o in (first, second)]
    assert ids[0] == ids[1] and ids[0].startswith(b"sha1:")


@pytest.mark.parametrize(
    "spec, build, kind, reason",
    [
        (IMAGE_SPEC, lambda k: b"\x0a\x05abc", "not_an_example", "not a serialized tf.Example"),
        (IMAGE_SPEC, lambda k: k.example(None, "r", image__encoded=k.encode(np.zeros((2, 2), np.uint8))),
         "missing_feature", "missing int64 feature 'label'"),
        (IMAGE_SPEC, lambda k: k.image_example(k.encode(np.zeros((2, 2), np.uint8)), 3, "r"),
         "label_out_of_range", "label 3 is outside the label set 0..2 (3 classes)"),
        (IMAGE_SPEC, lambda k: k.image_example(k.encode(np.zeros((2, 2), np.uint8)), -1, "r"),
         "label_out_of_range", "label -1 is outside"),
        (IMAGE_SPEC, lambda k: k.text_example("words", 0, "r"),
         "missing_feature", "missing bytes feature 'image/encoded'"),
        (IMAGE_SPEC, lambda k: k.image_example(b"GIF89a-broken", 0, "r"), "undecodable_image", "cannot decode image"),
        (TEXT_SPEC, lambda k: k.example(1, "r", text=b"\xff\xfe"), "invalid_text", "not valid UTF-8"),
        (TEXT_SPEC, lambda k: k.text_example(" \t ", 1, "r"), "empty_text", "empty after normalisation"),
    ],
)
def test_bad_records_carry_kind_and_reason(kit, spec, build, kind, reason):
    outcome = transform_record(build(kit), spec)
    assert isinstance(outcome, BadRecord)
    assert outcome.kind == kind
    assert reason in outcome.reason
    if kind != "not_an_example":
        assert outcome.id == "r"


def _image_summaries(kit, count: int):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8) for _ in range(count)]
    outcomes = [transform_record(kit.image_example(kit.encode(im), i % 2, f"i{i}"), IMAGE_SPEC)
                for i, im in enumerate(images)]
    return images, [o.summary for o in outcomes]


def test_statistics_are_exact_and_independent_of_merge_order(kit):
    images, summaries = _image_summaries(kit, 7)
    bad = [BadRecord(f"b{i}", "undecodable_image", f"reason {i}") for i in range(8, 1, -1)]
    whole = SplitStatistics()
    for summary in summaries + bad:
        whole.add(summary)
    parts = [SplitStatistics() for _ in range(3)]
    for index, summary in enumerate(summaries + bad):
        parts[index % 3].add(summary)
    merged = SplitStatistics()
    for part in reversed(parts):
        merged.merge(part)

    report = whole.report("image", list(NAMES))
    assert merged.report("image", list(NAMES)) == report
    stacked = np.stack(images).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(report["image"]["pixel_mean"], stacked.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(report["image"]["pixel_std"], stacked.std(axis=0), rtol=1e-12)
    assert report["class_counts"] == {"cat": 4, "dog": 3, "eel": 0}
    assert report["examples"] == 7 and report["bad_records"] == 7
    assert report["bad_fraction"] == 0.5
    assert [b["id"] for b in report["first_bad_records"]] == ["b2", "b3", "b4", "b5", "b6"]
    assert report["image"]["source"]["shapes"] == {"4x6x3": 7}


def _report(examples: int, bad: int) -> dict:
    return {
        "examples": examples, "bad_records": bad, "bad_fraction": bad / (examples + bad),
        "first_bad_records": [{"id": "x1", "reason": "cannot decode image: truncated"}],
    }


def test_bad_fraction_at_the_threshold_passes_and_above_it_fails():
    check_bad_fractions({"train": _report(3, 1)}, 0.25)
    with pytest.raises(DataError) as failure:
        check_bad_fractions({"train": _report(3, 1), "test": _report(5, 0)}, 0.2)
    message = str(failure.value)
    for part in ("split 'train'", "1 of 4 records", "25.00%", "transform.max_bad_fraction=0.2",
                 "id 'x1': cannot decode image: truncated", "--set transform.max_bad_fraction=0.25"):
        assert part in message
    assert "'test'" not in message


def test_mixed_channel_counts_need_an_explicit_channels_setting():
    reports = {"train": {"image": {"channel_counts": {"1": 5}}}, "test": {"image": {"channel_counts": {"3": 2}}}}
    with pytest.raises(DataError, match="5 images with 1 channel.*2 images with 3 channel.*transform.channels"):
        resolve_channels(reports, None)
    assert resolve_channels({"train": {"image": {"channel_counts": {"3": 2}}}}, None) == 3
