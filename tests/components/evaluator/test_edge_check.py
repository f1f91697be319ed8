"""Edge exports: each LiteRT format classifies raw images, carries its label names, and is checked before it ships.

One conversion of the conftest's `trained` model into every format (module
fixture), checked on the conftest's test split; the pusher then ships exactly
the checked files. Calibration data: the train and unlabelled splits of a
dataset that also has eval and test splits, so the record shows which files
the calibration reader opened.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from .conftest import LABEL_NAMES, make_images, serialize
from tlpipe.components.evaluator.edge_check import (
    EdgeCheckSettings, apply_to_blessing, calibration_sample, check_edge_formats, paired_difference,
)
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.pusher.executor import run_pusher
from tlpipe.components.production import fingerprint_dir
from tlpipe.models import edge
from tlpipe.models.plumbing.errors import ConfigError, DataError, ModelError, NotBlessedError
from tlpipe.models.plumbing.layout import EDGE_DIR, EDGE_RECORD_FILE

pytestmark = pytest.mark.quick

SETTINGS = EdgeCheckSettings(max_drop=0.01, confidence_level=0.95, seed=0, calibration_examples=16)


@pytest.fixture(scope="module")
def full_dataset(tmp_path_factory, dataset_writer, test_split) -> str:
    """train, unlabeled, eval and test splits; only the first two may calibrate."""
    splits = {name: serialize(*make_images((4, 4, 4), seed=seed))
              for name, seed in (("train", 3), ("unlabeled", 4), ("eval", 5))}
    return dataset_writer(str(tmp_path_factory.mktemp("full")), {**splits, "test": test_split[2]})


@pytest.fixture(scope="module")
def checked(tmp_path_factory, model_dirs, full_dataset) -> tuple[dict, str]:
    output = str(tmp_path_factory.mktemp("evaluation") / EDGE_DIR)
    return check_edge_formats(model_dirs["trained"], list(edge.EDGE_FORMATS), full_dataset, output, SETTINGS), output


def test_every_format_classifies_raw_images_in_the_litert_interpreter(checked, test_split):
    record, output = checked
    images, labels, _ = test_split
    assert record["passed"] and record["reasons"] == []
    assert record["saved_model"]["accuracy"] >= 0.9
    for name in edge.EDGE_FORMATS:
        model = edge.EdgeModel(os.path.join(output, edge.edge_file_name(name)))
        probabilities = model.probabilities(images)  # raw uint8 pixels, as an app has them
        assert probabilities.shape == (len(labels), len(LABEL_NAMES))
        assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.9, name
        result = record["results"][name]
        assert result["accuracy"] == pytest.approx(np.mean(probabilities.argmax(axis=1) == labels))
        assert result["difference"]["lower"] <= result["difference"]["value"] <= result["difference"]["upper"]
        assert result["latency_ms"] > 0 and not result["blocked"]
    int8 = edge.read_edge_metadata(os.path.join(output, edge.edge_file_name(edge.TFLITE_INT8)))
    assert int8["input"] == {"shape": [8, 8, 1], "dtype": "uint8", "range": [0, 255]}


def test_label_names_are_in_each_file_metadata(checked):
    _, output = checked
    for name in edge.EDGE_FORMATS:
        metadata = edge.read_edge_metadata(os.path.join(output, edge.edge_file_name(name)))
        assert metadata["label_names"] == LABEL_NAMES and metadata["format"] == name


def test_int8_calibration_reads_only_the_train_and_unlabelled_splits(checked, full_dataset):
    record, _ = checked
    opened = record["calibration"]["files"]
    assert opened and {os.path.basename(os.path.dirname(path)) for path in opened} == {"train", "unlabeled"}
    assert record["calibration"]["examples"] == SETTINGS.calibration_examples
    sample = calibration_sample(full_dataset, 5, seed=1, image_shape=[8, 8, 1])
    assert sample.files == opened and sample.images.shape == (5, 8, 8, 1)
    assert np.array_equal(sample.images, calibration_sample(full_dataset, 5, 1, [8, 8, 1]).images)  # seeded


def test_calibration_without_train_or_unlabelled_split_is_a_clear_error(dataset_dir):
    with pytest.raises(DataError, match="no train or unlabeled split to calibrate tflite_int8"):
        calibration_sample(dataset_dir, 5, seed=0, image_shape=[8, 8, 1])


def test_paired_difference_is_seeded_and_sees_a_sure_drop():
    rng = np.random.default_rng(0)
    reference = rng.random(2000) < 0.9
    worse = reference & (rng.random(2000) < 0.9)  # loses ~9 points, only ever on examples the reference had right
    first = paired_difference(worse, reference, 0.95, seed=3)
    assert first == paired_difference(worse, reference, 0.95, seed=3)
    assert first["upper"] < -0.05 < first["value"] + 0.2
    same = paired_difference(reference, reference, 0.95, seed=3)
    assert same == {"value": 0.0, "lower": 0.0, "upper": 0.0}


def test_the_pusher_ships_the_checked_files_beside_the_saved_model(tmp_path, checked, model_dirs):
    record, output = checked
    blessing_path = _blessing(tmp_path, model_dirs["trained"], record, output)
    serving = tmp_path / "serving"
    pushed = run_pusher(PusherConfig(formats=["saved_model", *edge.EDGE_FORMATS]), model_dirs["trained"],
                        blessing_path, str(serving))
    version = serving / str(pushed["version"])
    assert pushed["edge_formats"] == list(edge.EDGE_FORMATS)
    for name in edge.EDGE_FORMATS:
        shipped = version / EDGE_DIR / edge.edge_file_name(name)
        assert shipped.read_bytes() == open(os.path.join(output, edge.edge_file_name(name)), "rb").read()
    assert json.loads((version / EDGE_DIR / EDGE_RECORD_FILE).read_text())["passed"]
    assert fingerprint_dir(str(version)) == fingerprint_dir(model_dirs["trained"])  # the version is the SavedModel


def test_the_pusher_refuses_formats_that_were_not_checked_or_changed_since(tmp_path, checked, model_dirs):
    record, output = checked
    blessing_path = _blessing(tmp_path, model_dirs["trained"], record, output)
    serving = str(tmp_path / "serving")
    with pytest.raises(NotBlessedError, match=r"asks for edge formats \['tflite_int8'\], but the evaluator checked"):
        run_pusher(PusherConfig(formats=["saved_model", "tflite_int8"]), model_dirs["trained"], blessing_path,
                   serving)
    tampered = tmp_path / "evaluation"
    os.makedirs(tampered / EDGE_DIR)
    for name in os.listdir(output):
        (tampered / EDGE_DIR / name).write_bytes(open(os.path.join(output, name), "rb").read())
    (tampered / EDGE_DIR / edge.edge_file_name(edge.TFLITE)).write_bytes(b"not the checked model")
    with pytest.raises(NotBlessedError, match="the tflite file the evaluator checked is missing or changed"):
        run_pusher(PusherConfig(formats=["saved_model", *edge.EDGE_FORMATS]), model_dirs["trained"],
                   _blessing(tampered, model_dirs["trained"], record, str(tampered / EDGE_DIR)), serving)
    assert not os.path.isdir(serving) or not [n for n in os.listdir(serving) if n.isdigit()]


def test_a_large_drop_withdraws_the_blessing_with_its_reason(model_dirs):
    record = {"formats": ["tflite_int8"], "reasons": ["tflite_int8 is blocked: it classifies 0.300 ..."],
              "passed": False, "results": {}}
    blessing = {"blessed": True, "candidate": "fine_tune_all", "reasons": ["it beats the baseline"]}
    apply_to_blessing(blessing, record, "/evaluation/edge")
    assert not blessing["blessed"]
    assert "tflite_int8 is blocked" in blessing["reason"] and blessing["reason"].endswith("Nothing is pushed.")


def test_text_models_and_bad_formats_are_refused_plainly(model_dirs):
    refused = edge.unsupported_formats({"modality": "text"}, ["saved_model", "tflite", "tflite_int8"])
    assert sorted(refused) == ["tflite", "tflite_int8"]
    assert "string ops that are not LiteRT builtins" in refused["tflite"]
    with pytest.raises(ConfigError, match=r"config key 'format': received 'onnx'"):
        edge.edge_file_name("onnx")
    with pytest.raises(ModelError, match="tflite_int8 needs calibration images"):
        edge.convert(model_dirs["trained"], edge.TFLITE_INT8)
    with pytest.raises(ConfigError, match=r"'formats': received \['tflite'\]; allowed: a list .* includes"):
        PusherConfig(formats=["tflite"]).validate()


def test_a_multi_task_model_is_not_checked_and_says_why(tmp_path, full_dataset):
    (tmp_path / "tlpipe.json").write_text(json.dumps({"label_names": LABEL_NAMES, "modality": "image",
                                                       "tasks": {"item": {}, "group": {}}}))
    with pytest.raises(ModelError, match=r"multi-task model \(item, group\) and the check scores one label"):
        check_edge_formats(str(tmp_path), ["tflite"], full_dataset, str(tmp_path / EDGE_DIR), SETTINGS)


def _blessing(folder, model_dir: str, record: dict, edge_dir: str) -> str:
    """The blessing record the evaluator writes beside its edge/ folder (the fields the pusher reads)."""
    blessing = {"blessed": True, "candidate": "fine_tune_all", "candidate_model_dir": model_dir,
                "reason": "it beats the baseline", "reasons": [], "candidates": {}, "production": None}
    apply_to_blessing(blessing, record, edge_dir)
    path = os.path.join(os.path.dirname(edge_dir), "blessing.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(blessing, handle)
    return path
