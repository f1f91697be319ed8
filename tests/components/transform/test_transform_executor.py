"""run_transform end to end on real Beam runners over small hand-written ingest artifacts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.components.beam import BeamConfig
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.transform.executor import run_transform
from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick

NAMES = ["Sandal", "Shirt", "Bag"]
IN_PROCESS = BeamConfig(runner="in_process")
RNG = np.random.default_rng(11)


def _pixels(h: int, w: int, c: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)


@pytest.fixture
def image_input(kit, tmp_path):
    """Grey, RGB and RGBA PNGs of different sizes and a BMP already at the target size; two train shards."""
    sources = {
        "train": [(_pixels(10, 12, 1), "PNG", 0), (_pixels(10, 12, 1), "PNG", 1), (_pixels(10, 12, 1), "PNG", 2),
                  (_pixels(10, 12, 1), "PNG", 0), (_pixels(16, 16, 3), "PNG", 1), (_pixels(16, 16, 3), "PNG", 1),
                  (_pixels(16, 16, 3), "PNG", 2), (_pixels(9, 9, 4), "PNG", 0), (_pixels(9, 9, 4), "PNG", 0),
                  (_pixels(8, 8, 3), "BMP", 2)],
        "test": [(_pixels(10, 12, 1), "PNG", 1), (_pixels(10, 12, 1), "PNG", 2), (_pixels(10, 12, 1), "PNG", 2)],
    }
    pixels = {f"{split}-{i}": (p, label) for split, items in sources.items() for i, (p, _, label) in enumerate(items)}
    records = {
        split: [kit.image_example(kit.encode(p, image_format), label, f"{split}-{i}")
                for i, (p, image_format, label) in enumerate(items)]
        for split, items in sources.items()
    }
    folder = kit.write_artifact(str(tmp_path / "ingest"), records, modality="image", label_names=NAMES,
                                shards={"train": 2, "test": 1})
    return folder, pixels


def _expected_source_stats(pixels: dict, split: str) -> dict:
    shapes = [p.shape for key, (p, _) in pixels.items() if key.startswith(split + "-")]
    counts: dict[str, int] = {}
    for shape in shapes:
        counts["x".join(map(str, shape))] = counts.get("x".join(map(str, shape)), 0) + 1
    return {
        "min_height": min(s[0] for s in shapes), "max_height": max(s[0] for s in shapes),
        "min_width": min(s[1] for s in shapes), "max_width": max(s[1] for s in shapes), "shapes": counts,
    }


def test_images_are_resized_converted_and_counted(kit, image_input, tmp_path):
    input_dir, pixels = image_input
    output_dir = str(tmp_path / "transformed")
    # the keyword arguments (the module's input size) win over the config
    config = TransformConfig(image_size=[20, 20], channels=1, resize_method="bilinear")
    statistics = run_transform(config, IN_PROCESS, input_dir, output_dir, image_size=(8, 8), channels=3)

    assert read_json(os.path.join(output_dir, "statistics.json")) == statistics
    assert statistics["image_size"] == [8, 8] and statistics["channels"] == 3
    assert sorted(os.listdir(os.path.join(output_dir, "train"))) == [
        "part-00000-of-00002.tfrecord", "part-00001-of-00002.tfrecord"]
    assert os.listdir(os.path.join(output_dir, "test")) == ["part-00000-of-00001.tfrecord"]

    for split in ("train", "test"):
        examples = kit.read_examples(output_dir, split)
        assert sorted(examples) == sorted(k for k in pixels if k.startswith(split + "-"))
        stored = {}
        for key, example in examples.items():
            source, label = pixels[key]
            stored[key] = kit.stored_pixels(example)
            expected = kit.tf_reference(source[..., :3], (8, 8), 3, "bilinear")
            assert stored[key].shape == (8, 8, 3)
            assert np.abs(stored[key].astype(int) - expected.astype(int)).max() <= 1
            assert example.features.feature["label/name"].bytes_list.value == [NAMES[label].encode()]

        report = statistics["splits"][split]
        all_pixels = np.stack(list(stored.values())).reshape(-1, 3) / 255.0
        np.testing.assert_allclose(report["image"]["pixel_mean"], all_pixels.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(report["image"]["pixel_std"], all_pixels.std(axis=0), rtol=1e-12)
        labels = [label for key, (_, label) in pixels.items() if key.startswith(split + "-")]
        assert report["class_counts"] == {name: labels.count(i) for i, name in enumerate(NAMES)}
        assert report["examples"] == len(labels) and report["bad_records"] == 0
        assert report["image"]["source"] == _expected_source_stats(pixels, split)
        assert os.path.getsize(os.path.join(output_dir, "bad_records", f"{split}.jsonl")) == 0

    metadata = read_json(os.path.join(output_dir, "metadata.json"))
    assert metadata["label_names"] == NAMES and metadata["source"] == "written by the transform tests"
    assert metadata["transform"] == {
        "image_size": [8, 8], "channels": 3, "resize_method": "bilinear", "text_lowercase": None,
        "examples": {"test": 3, "train": 10},
    }


def test_text_is_normalised_and_measured(kit, tmp_path):
    texts = ["  The  QUICK\tfox ", "ｆｕｌｌ width", "one", "\ufb01ne  print here"]
    records = [kit.text_example(text, i % 2, f"t{i}") for i, text in enumerate(texts)]
    input_dir = kit.write_artifact(str(tmp_path / "ingest"), {"train": records}, modality="text", label_names=NAMES)
    statistics = run_transform(TransformConfig(), IN_PROCESS, input_dir, str(tmp_path / "out"))

    examples = kit.read_examples(str(tmp_path / "out"), "train")
    normalised = ["the quick fox", "full width", "one", "fine print here"]
    assert {k: e.features.feature["text"].bytes_list.value[0].decode() for k, e in examples.items()} == {
        f"t{i}": text for i, text in enumerate(normalised)}
    report = statistics["splits"]["train"]
    assert report["text"] == {
        "chars": {"min": 3, "max": 15, "mean": sum(map(len, normalised)) / 4},
        "tokens": {"min": 1, "max": 3, "mean": 9 / 4},
    }
    assert report["class_counts"] == {"Sandal": 2, "Shirt": 2, "Bag": 0}
    assert statistics["image_size"] is None and "image" not in report


@pytest.fixture
def input_with_bad_records(kit, tmp_path):
    good = [kit.image_example(kit.encode(_pixels(6, 6, 1)), i % 3, f"good-{i}") for i in range(6)]
    truncated = kit.encode(_pixels(16, 16, 3))[:60]
    bad = [
        kit.image_example(truncated, 0, "bad-truncated"),
        kit.image_example(kit.encode(_pixels(6, 6, 1)), 9, "bad-label"),
        kit.text_example("no image here", 1, "bad-missing"),
        b"\x0a\x05abc",  # not a tf.Example
    ]
    test = [kit.image_example(kit.encode(_pixels(6, 6, 1)), 1, f"test-{i}") for i in range(2)]
    return kit.write_artifact(str(tmp_path / "ingest"), {"train": good + bad, "test": test}, modality="image",
                              label_names=NAMES, shards=2)


def test_bad_records_fail_the_run_past_the_threshold_and_leave_nothing(input_with_bad_records, tmp_path):
    output_dir = tmp_path / "out"
    with pytest.raises(DataError) as failure:
        run_transform(TransformConfig(image_size=[6, 6]), IN_PROCESS, input_with_bad_records, str(output_dir))
    message = str(failure.value)
    for part in ("split 'train'", "4 of 10 records are bad (40.00%)", "transform.max_bad_fraction=0",
                 "id 'bad-label': label 9 is outside the label set 0..2",
                 "id 'bad-missing': missing bytes feature 'image/encoded'",
                 "id 'bad-truncated': cannot decode image", "--set transform.max_bad_fraction=0.4"):
        assert part in message
    assert "'test'" not in message
    assert sorted(os.listdir(tmp_path)) == ["ingest"]  # no output, no temporary folder


def test_bad_records_are_set_aside_within_the_threshold(kit, input_with_bad_records, tmp_path):
    output_dir = str(tmp_path / "out")
    config = TransformConfig(image_size=[6, 6], max_bad_fraction=0.4)
    statistics = run_transform(config, IN_PROCESS, input_with_bad_records, output_dir)

    with open(os.path.join(output_dir, "bad_records", "train.jsonl"), encoding="utf-8") as handle:
        lines = sorted((json.loads(line) for line in handle), key=lambda line: line["id"])
    assert [(line["id"], line["split"], line["kind"]) for line in lines] == [
        ("bad-label", "train", "label_out_of_range"),
        ("bad-missing", "train", "missing_feature"),
        ("bad-truncated", "train", "undecodable_image"),
        (lines[3]["id"], "train", "not_an_example"),
    ]
    assert lines[3]["id"].startswith("sha1:") and all(line["reason"] for line in lines)
    report = statistics["splits"]["train"]
    assert (report["examples"], report["bad_records"], report["bad_fraction"]) == (6, 4, 0.4)
    assert report["bad_reasons"] == {"label_out_of_range": 1, "missing_feature": 1, "not_an_example": 1,
                                     "undecodable_image": 1}
    assert sorted(kit.read_examples(output_dir, "train")) == [f"good-{i}" for i in range(6)]
    assert statistics["channels"] == 1  # channels null keeps grey images grey


def test_mixed_grey_and_colour_need_a_channels_setting(kit, tmp_path):
    records = [kit.image_example(kit.encode(_pixels(5, 5, c)), 0, f"c{c}") for c in (1, 3)]
    input_dir = kit.write_artifact(str(tmp_path / "ingest"), {"train": records}, modality="image", label_names=NAMES)
    with pytest.raises(DataError, match="set transform.channels to 1 or 3"):
        run_transform(TransformConfig(image_size=[5, 5]), IN_PROCESS, input_dir, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_multi_processing_runner_transforms_too(kit, image_input, tmp_path):
    input_dir, pixels = image_input
    beam_config = BeamConfig(runner="multi_processing", num_workers=2)
    statistics = run_transform(TransformConfig(image_size=[7, 9], channels=1, resize_method="area"),
                               beam_config, input_dir, str(tmp_path / "out"))
    examples = kit.read_examples(str(tmp_path / "out"), "train")
    assert sorted(examples) == sorted(k for k in pixels if k.startswith("train-"))
    for key, example in examples.items():
        expected = kit.tf_reference(pixels[key][0][..., :3], (7, 9), 1, "area")
        assert np.abs(kit.stored_pixels(example).astype(int) - expected.astype(int)).max() <= 1
    assert statistics["splits"]["train"]["examples"] == 10 and statistics["channels"] == 1
    assert len(os.listdir(str(tmp_path / "out" / "train"))) == 2


def test_image_data_without_an_image_size_is_a_config_error(image_input, tmp_path):
    with pytest.raises(ConfigError, match="transform.image_size.*received None.*--set transform.image_size"):
        run_transform(TransformConfig(), IN_PROCESS, image_input[0], str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="'image_size': received \\(8, 0\\)"):
        run_transform(TransformConfig(), IN_PROCESS, image_input[0], str(tmp_path / "out"), image_size=(8, 0))


def test_input_and_output_folders_are_checked(image_input, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        run_transform(TransformConfig(), IN_PROCESS, str(tmp_path / "missing"), str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="'output_dir'"):
        run_transform(TransformConfig(image_size=[4, 4]), IN_PROCESS, image_input[0],
                      os.path.join(image_input[0], "transformed"))
    os.remove(os.path.join(image_input[0], "metadata.json"))
    with pytest.raises(DataError, match="has no metadata.json"):
        run_transform(TransformConfig(), IN_PROCESS, image_input[0], str(tmp_path / "out"))
