"""The pusher: versioned, atomic pushes of blessed models only, with a history and retention."""

from __future__ import annotations

import json
import os

import pytest

from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.pusher.executor import (
    HISTORY_FILE, latest_pushed_model, pushed_versions, read_push_history, run_pusher,
)
from tlpipe.components.config_schema import from_dict
from tlpipe.models.errors import ConfigError, ModelError, NotBlessedError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """A real tlpipe serving export of a tiny classifier."""
    import keras

    from tlpipe.models.serving import export_for_serving

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax", name="classifier")])
    return export_for_serving(model, str(tmp_path_factory.mktemp("trainer") / "model"), label_names=["a", "b"],
                              modality="image", image_size=[4, 4], channels=1)


def _blessing(path, model_dir: str | None, blessed: bool = True, reason: str = "it beats the baseline") -> str:
    """A blessing record as the evaluator writes it (the fields the pusher reads)."""
    record = {
        "blessed": blessed,
        "candidate": "fine_tune_all" if blessed else None,
        "candidate_model_dir": model_dir if blessed else None,
        "reason": reason,
        "report": "/runs/evaluate/report/index.html",
        "candidates": {"fine_tune_all": {"accuracy": {"value": 0.8, "lower": 0.7, "upper": 0.9}}},
    }
    path.write_text(json.dumps(record))
    return str(path)


def test_pushes_get_increasing_versions_and_a_history(tmp_path, model_dir):
    blessing = _blessing(tmp_path / "blessing.json", model_dir)
    serving = str(tmp_path / "serving")
    assert latest_pushed_model(serving) is None
    first = run_pusher(PusherConfig(), model_dir, blessing, serving)
    second = run_pusher(PusherConfig(), model_dir, blessing, serving)
    assert (first["version"], second["version"]) == (1, 2)
    assert pushed_versions(serving) == [1, 2]
    assert latest_pushed_model(serving) == os.path.join(serving, "2")
    assert sorted(os.listdir(os.path.join(serving, "2"))) == sorted(os.listdir(model_dir))
    assert sorted(os.listdir(serving)) == ["1", "2", HISTORY_FILE]  # no temp folders left

    history = read_push_history(serving)
    assert [entry["version"] for entry in history] == [1, 2]
    assert history[1] == json.loads(json.dumps(second))
    assert history[0]["source_model_dir"] == model_dir
    assert history[0]["serving_model_dir"] == os.path.join(serving, "1")
    assert history[0]["blessing"]["candidate"] == "fine_tune_all"
    assert history[0]["blessing"]["accuracy"]["value"] == 0.8
    assert history[0]["pushed_at"].endswith("+00:00")

    import tensorflow as tf

    answer = tf.saved_model.load(os.path.join(serving, "2")).signatures["serving_default"]
    assert "examples" in answer.structured_input_signature[1]


def test_version_numbers_continue_after_the_highest_existing_one(tmp_path, model_dir):
    serving = tmp_path / "serving"
    (serving / "7").mkdir(parents=True)
    (serving / "notes").mkdir()  # not a version: ignored
    record = run_pusher(PusherConfig(), model_dir, _blessing(tmp_path / "blessing.json", model_dir), str(serving))
    assert record["version"] == 8


def test_unblessed_model_is_refused_with_the_reason_and_the_report(tmp_path, model_dir):
    blessing = _blessing(tmp_path / "blessing.json", model_dir, blessed=False,
                         reason="negative transfer: 'fine_tune_all' reached 0.400, below the baseline (0.600).")
    serving = tmp_path / "serving"
    with pytest.raises(NotBlessedError) as error:
        run_pusher(PusherConfig(), model_dir, blessing, str(serving))
    message = str(error.value)
    assert "did not bless it" in message and "negative transfer" in message
    assert "/runs/evaluate/report/index.html" in message
    assert pushed_versions(str(serving)) == [] and read_push_history(str(serving)) == []


def test_a_blessing_for_another_model_is_refused(tmp_path, model_dir):
    blessing = _blessing(tmp_path / "blessing.json", "/elsewhere/feature_extraction/model")
    with pytest.raises(NotBlessedError, match="blesses 'fine_tune_all' .*/elsewhere/feature_extraction/model"):
        run_pusher(PusherConfig(), model_dir, blessing, str(tmp_path / "serving"))


def test_a_missing_blessing_is_refused(tmp_path, model_dir):
    with pytest.raises(NotBlessedError, match="no blessing record .*run the evaluator first"):
        run_pusher(PusherConfig(), model_dir, str(tmp_path / "blessing.json"), str(tmp_path / "serving"))


def test_a_failed_copy_leaves_no_partial_version(tmp_path, model_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    os.symlink(str(tmp_path / "does-not-exist"), broken / "variables" / "dangling")  # copytree fails on it
    serving = tmp_path / "serving"
    run_pusher(PusherConfig(), model_dir, _blessing(tmp_path / "ok.json", model_dir), str(serving))
    with pytest.raises(ModelError, match="copying it into"):
        run_pusher(PusherConfig(), str(broken), _blessing(tmp_path / "blessing.json", str(broken)), str(serving))
    assert sorted(os.listdir(serving)) == ["1", HISTORY_FILE]  # the partial copy was removed
    assert [entry["version"] for entry in read_push_history(str(serving))] == [1]


def test_a_folder_that_is_no_saved_model_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a SavedModel"):
        run_pusher(PusherConfig(), str(empty), _blessing(tmp_path / "blessing.json", str(empty)),
                   str(tmp_path / "serving"))


def test_keep_versions_removes_the_oldest(tmp_path, model_dir):
    blessing = _blessing(tmp_path / "blessing.json", model_dir)
    serving = str(tmp_path / "serving")
    records = [run_pusher(PusherConfig(keep_versions=2), model_dir, blessing, serving) for _ in range(4)]
    assert pushed_versions(serving) == [3, 4]
    assert [record["removed_versions"] for record in records] == [[], [], [1], [2]]
    assert sorted(os.listdir(serving)) == ["3", "4", HISTORY_FILE]
    assert [entry["version"] for entry in read_push_history(serving)] == [1, 2, 3, 4]  # history keeps all


def test_negative_keep_versions_is_refused_before_anything_is_deleted(tmp_path, model_dir):
    with pytest.raises(ConfigError, match="keep_versions.*-1.*0 \\(keep all\\)"):
        from_dict(PusherConfig, {"keep_versions": -1})
    serving = tmp_path / "serving"
    blessing = _blessing(tmp_path / "blessing.json", model_dir)
    run_pusher(PusherConfig(), model_dir, blessing, str(serving))
    with pytest.raises(ConfigError, match="keep_versions"):
        run_pusher(PusherConfig(keep_versions=-1), model_dir, blessing, str(serving))
    assert pushed_versions(str(serving)) == [1]
