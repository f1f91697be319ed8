"""The pusher: versioned, atomic pushes of blessed models only, with a history and retention."""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest

from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.pusher.executor import (
    HISTORY_FILE, LOCK_FILE, latest_pushed_model, pushed_versions, read_push_history, run_pusher,
)
from tlpipe.components.production import describe_production, fingerprint_dir, strangers
from tlpipe.components.config_schema import from_dict
from tlpipe.models.plumbing.errors import ConfigError, ModelError, NotBlessedError

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """A real tlpipe serving export of a tiny classifier."""
    import keras

    from tlpipe.models.serving import export_for_serving

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax", name="classifier")])
    return export_for_serving(model, str(tmp_path_factory.mktemp("trainer") / "model"), label_names=["a", "b"],
                              modality="image", image_size=[4, 4], channels=1)


def _blessing(path, model_dir: str | None, blessed: bool = True, reason: str = "it beats the baseline",
              production: dict | None = None, **extra) -> str:
    """A blessing record as the evaluator writes it (the fields the pusher reads)."""
    record = {
        "blessed": blessed,
        "candidate": "fine_tune_all" if blessed else None,
        "candidate_model_dir": model_dir if blessed else None,
        "reason": reason,
        "report": "/runs/evaluate/report/index.html",
        "candidates": {"fine_tune_all": {"accuracy": {"value": 0.8, "lower": 0.7, "upper": 0.9}}},
        "production": production,
        **extra,
    }
    path.write_text(json.dumps(record))
    return str(path)


def _variant(tmp_path, model_dir: str, name: str) -> str:
    """A copy of the model with different files (another trained model, as far as the pusher can tell)."""
    copy = tmp_path / name
    shutil.copytree(model_dir, copy)
    (copy / "assets").mkdir(exist_ok=True)
    (copy / "assets" / "variant.txt").write_text(name)
    return str(copy)


def _push(tmp_path, model_dir: str, serving: str, **config) -> dict:
    """Evaluate-then-push in one go: the blessing records production as it is now."""
    production = describe_production(serving).to_dict()
    blessing = _blessing(tmp_path / f"blessing-{uuid.uuid4().hex[:6]}.json", model_dir, production=production)
    return run_pusher(PusherConfig(**config), model_dir, blessing, serving)


def test_pushes_get_increasing_versions_and_a_history(tmp_path, model_dir):
    serving = str(tmp_path / "serving")
    assert latest_pushed_model(serving) is None
    first = _push(tmp_path, model_dir, serving)
    better = _variant(tmp_path, model_dir, "better")
    second = _push(tmp_path, better, serving)
    assert (first["version"], second["version"]) == (1, 2)
    assert first["pushed"] and second["pushed"]
    assert pushed_versions(serving) == [1, 2]
    assert latest_pushed_model(serving) == os.path.join(serving, "2")
    assert sorted(os.listdir(os.path.join(serving, "2"))) == sorted(os.listdir(better))
    assert sorted(os.listdir(serving)) == [LOCK_FILE, "1", "2", HISTORY_FILE]  # no temp folders left
    assert describe_production(serving).fingerprint == second["fingerprint"]

    history = read_push_history(serving)
    assert [entry["version"] for entry in history] == [1, 2]
    assert history[1] == json.loads(json.dumps(second))
    assert history[0]["source_model_dir"] == model_dir
    assert history[0]["serving_model_dir"] == os.path.join(serving, "1")
    assert history[0]["blessing"]["candidate"] == "fine_tune_all"
    assert history[0]["blessing"]["accuracy"]["value"] == 0.8
    assert history[0]["pushed_at"].endswith("+00:00")
    assert history[1]["production_compared"]["version"] == 1

    import tensorflow as tf

    answer = tf.saved_model.load(os.path.join(serving, "2")).signatures["serving_default"]
    assert "examples" in answer.structured_input_signature[1]


def test_a_push_is_refused_when_production_moved_on_since_the_evaluation(tmp_path, model_dir):
    serving = str(tmp_path / "serving")
    stale = _blessing(tmp_path / "stale.json", model_dir, production=describe_production(serving).to_dict())
    other = _variant(tmp_path, model_dir, "other_run")
    assert _push(tmp_path, other, serving)["version"] == 1  # another run pushed after our evaluation

    record = run_pusher(PusherConfig(), model_dir, stale, serving)
    assert record["pushed"] is False and record["refused"] is True
    assert "production moved on" in record["reason"]
    assert "nothing (empty serving folder)" in record["reason"] and "version 1" in record["reason"]
    assert pushed_versions(serving) == [1] and describe_production(serving).fingerprint == fingerprint_dir(other)
    history = read_push_history(serving)
    assert [entry["pushed"] for entry in history] == [True, False]
    assert history[1]["reason"] == record["reason"] and history[1]["production_found"]["version"] == 1


def test_a_changed_production_model_under_the_same_version_is_also_refused(tmp_path, model_dir):
    serving = tmp_path / "serving"
    _push(tmp_path, model_dir, str(serving))
    compared = describe_production(str(serving)).to_dict()
    (serving / "1" / "assets").mkdir(exist_ok=True)
    (serving / "1" / "assets" / "edited.txt").write_text("someone replaced version 1")
    candidate = _variant(tmp_path, model_dir, "candidate")
    record = run_pusher(PusherConfig(), candidate, _blessing(tmp_path / "b.json", candidate, production=compared),
                        str(serving))
    assert record["pushed"] is False and "version 1" in record["reason"]
    assert pushed_versions(str(serving)) == [1]


def test_without_production_comparison_the_push_goes_on_top(tmp_path, model_dir):
    serving = str(tmp_path / "serving")
    _push(tmp_path, model_dir, serving)
    candidate = _variant(tmp_path, model_dir, "candidate")
    blessing = _blessing(tmp_path / "b.json", candidate, production=None,
                         thresholds={"compare_with_production": False})
    assert run_pusher(PusherConfig(), candidate, blessing, serving)["version"] == 2


def test_pushing_a_model_that_is_already_on_top_copies_nothing_and_is_recorded_once(tmp_path, model_dir):
    serving = str(tmp_path / "serving")
    blessing = _blessing(tmp_path / "b.json", model_dir, production=None)
    first = run_pusher(PusherConfig(), model_dir, blessing, serving)
    again = run_pusher(PusherConfig(), model_dir, blessing, serving)  # e.g. the same push step, rerun
    assert first == again and again["version"] == 1
    assert pushed_versions(serving) == [1] and len(read_push_history(serving)) == 1


def test_leftovers_of_a_killed_push_are_cleared_and_the_push_completes(tmp_path, model_dir):
    serving = tmp_path / "serving"
    blessing = _blessing(tmp_path / "b.json", model_dir, production=None)
    # A killed pusher left a half-copied temp folder and the version it had renamed, without a history line.
    shutil.copytree(model_dir, serving / ".push-tmp-deadbeef")
    shutil.copytree(model_dir, serving / "1")
    (serving / HISTORY_FILE).write_text('{"version": 0, "pushed": tr')  # a half-written line
    record = run_pusher(PusherConfig(), model_dir, blessing, str(serving))
    assert record["pushed"] and record["version"] == 1
    assert sorted(os.listdir(serving)) == [LOCK_FILE, "1", HISTORY_FILE]
    assert [entry["version"] for entry in read_push_history(str(serving))] == [1]


def test_version_numbers_continue_after_the_highest_existing_one(tmp_path, model_dir):
    serving = tmp_path / "serving"
    (serving / "7").mkdir(parents=True)
    (serving / "notes").mkdir()  # not a version: ignored
    record = _push(tmp_path, model_dir, str(serving))
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


def test_an_unreadable_model_is_refused_and_leaves_no_partial_version(tmp_path, model_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    os.symlink(str(tmp_path / "does-not-exist"), broken / "variables" / "dangling")  # copytree fails on it
    serving = tmp_path / "serving"
    _push(tmp_path, model_dir, str(serving))
    with pytest.raises(ModelError, match="cannot push .*broken.*cannot be read"):
        _push(tmp_path, str(broken), str(serving))
    assert sorted(os.listdir(serving)) == [LOCK_FILE, "1", HISTORY_FILE]  # the partial copy was removed
    assert [entry["version"] for entry in read_push_history(str(serving))] == [1]


def test_a_folder_that_is_no_saved_model_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a SavedModel"):
        run_pusher(PusherConfig(), str(empty), _blessing(tmp_path / "blessing.json", str(empty)),
                   str(tmp_path / "serving"))


def test_keep_versions_removes_the_oldest(tmp_path, model_dir):
    serving = str(tmp_path / "serving")
    models = [_variant(tmp_path, model_dir, f"model{i}") for i in range(4)]
    records = [_push(tmp_path, model, serving, keep_versions=2) for model in models]
    assert pushed_versions(serving) == [3, 4]
    assert [record["removed_versions"] for record in records] == [[], [], [1], [2]]
    assert sorted(os.listdir(serving)) == [LOCK_FILE, "3", "4", HISTORY_FILE]
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


def test_strangers_in_the_serving_folder_are_ignored_and_numbered_past(tmp_path, model_dir, capsys):
    serving = tmp_path / "serving"
    first = _push(tmp_path, model_dir, str(serving))
    assert first["version"] == 1
    (serving / "2").write_text("a stray file named like a version")
    (serving / "3").mkdir()  # an empty "version" someone made
    (serving / "4").mkdir()
    (serving / "4" / "notes.txt").write_text("junk")
    assert pushed_versions(str(serving)) == [1] and strangers(str(serving)) == ["2", "3", "4"]
    assert describe_production(str(serving)).version == 1  # junk is never production

    second = _push(tmp_path, _variant(tmp_path, model_dir, "second"), str(serving))
    assert second["pushed"] and second["version"] == 5  # past every numbered entry: no collision
    assert pushed_versions(str(serving)) == [1, 5]
    assert not [name for name in os.listdir(serving) if name.startswith(".push-tmp-")]
    assert "ignoring 2, 3, 4 in" in capsys.readouterr().err
    assert (serving / "2").read_text() == "a stray file named like a version"  # strangers are left alone
