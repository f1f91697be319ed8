"""Multi-task evaluation: TFMA per task (one output name per task), per-task thresholds, the blessing.

The stripe images of conftest.py carry a second label, `group`: 'right' (class
2) or 'other'. Models are `MultiTaskClassifier`s over a Flatten base with head
weights set by hand, so every accuracy is exact: a head that reads the
stripes is always right; a constant head answers 'left' / 'other'
(item 6/20 = 0.30, group 13/20 = 0.65).
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.multi_task import _judge_task, run_multi_task_evaluator
from tlpipe.components.evaluator.multi_task_config import TaskThresholds
from tlpipe.components.production import ProductionModel, fingerprint_dir
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.multi_task import MultiTaskClassifier, TaskHead
from tlpipe.models.serving import export_for_serving

from .conftest import LABEL_NAMES, SIZE, TEST_COUNTS, make_images

GROUPS = ["other", "right"]
TASKS = {"item": ("label", LABEL_NAMES), "group": ("group", GROUPS)}


def _stripes(read_as: list[int], classes: int) -> np.ndarray:
    weights = np.zeros((SIZE, SIZE, classes))
    for stripe, target in enumerate(read_as):
        weights[:, 2 * stripe:2 * stripe + 2, target] += 1.0
    return weights.reshape(SIZE * SIZE, classes)


def _head_weights(task: str, good: bool) -> list[np.ndarray]:
    classes = len(TASKS[task][1])
    if not good:  # a constant answer: class 0
        return [np.zeros((SIZE * SIZE, classes)), np.eye(classes)[0] * 5.0]
    return [_stripes([0, 1, 2] if task == "item" else [0, 0, 1], classes) * 3.0, np.zeros(classes)]


def _export(path: str, good: dict[str, bool]) -> str:
    base = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Flatten()], name="feature_extractor")
    model = MultiTaskClassifier(base, [TaskHead(task, len(TASKS[task][1]), dropout=0.0) for task in good],
                                input_shape=(SIZE, SIZE, 1))
    for task, is_good in good.items():
        model.get_layer(f"{task}_classifier").set_weights([w.astype("float32") for w in _head_weights(task, is_good)])
    config = {"trainer": {"tasks": [{"name": task, "label": TASKS[task][0]} for task in good]}}
    return export_for_serving(model, path, label_names=TASKS[next(iter(good))][1], modality="image",
                              image_size=[SIZE, SIZE], channels=1, config=config,
                              task_label_names={task: TASKS[task][1] for task in good})


@pytest.fixture(scope="module")
def task_dataset(tmp_path_factory) -> str:
    import tensorflow as tf

    images, labels = make_images(TEST_COUNTS, seed=1)
    root = str(tmp_path_factory.mktemp("transformed"))
    os.makedirs(fmt.split_dir(root, "test"))
    with tf.io.TFRecordWriter(fmt.shard_prefix(root, "test") + "-00000-of-00001" + fmt.SHARD_SUFFIX) as writer:
        for i, (image, label) in enumerate(zip(images, labels)):
            ints = {fmt.IMAGE_SHAPE_KEY: list(image.shape), fmt.LABEL_KEY: [int(label)],
                    fmt.task_label_key("group"): [int(label == 2)]}
            feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=v)) for k, v in ints.items()}
            feature[fmt.IMAGE_RAW_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()]))
            feature[fmt.ID_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"s-{i}".encode()]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with open(os.path.join(root, fmt.METADATA_FILE), "w") as handle:
        json.dump({"label_names": LABEL_NAMES, "num_classes": 3, "modality": "image",
                   "label_tasks": {"group": {"label_names": GROUPS, "num_classes": 2}}}, handle)
    return root


def _models(root, candidate_good: dict[str, bool]) -> tuple[dict[str, str], dict[str, str]]:
    train_dir = root / "multi_task"
    candidate = _export(str(train_dir / "model"), candidate_good)
    for task in TASKS:
        _export(str(train_dir / "single_task" / task / "model"), {task: True})
    baseline = _export(str(root / "baseline" / "model"), {"item": False, "group": False})
    return {"multi_task": candidate}, {"multi_task_baseline": baseline}


def test_a_task_below_its_single_task_model_blocks_the_blessing_naming_the_task(task_dataset, tmp_path):
    candidates, baseline = _models(tmp_path, {"item": True, "group": False})
    summary = run_multi_task_evaluator(EvaluatorConfig(), task_dataset, candidates, baseline, str(tmp_path / "eval"))

    blessing = summary["blessing"]
    assert not blessing["blessed"] and blessing["failed_tasks"] == ["group"]
    assert "task 'group'" in blessing["reason"] and "single-task model" in blessing["reason"]
    assert "task 'item'" not in blessing["reason"]
    group = summary["tasks"]["group"]
    assert group["models"]["multi_task"]["accuracy"]["value"] == pytest.approx(0.65, abs=1e-6)
    assert group["models"]["single_task_group"]["accuracy"]["value"] == pytest.approx(1.0)
    assert group["verdict"]["vs_single_task"]["value"] == pytest.approx(-0.35, abs=1e-6)
    assert not group["verdict"]["checks"]["single_task"] and group["verdict"]["checks"]["floor"]
    item = summary["tasks"]["item"]
    assert item["verdict"]["passed"]
    assert item["models"]["multi_task_baseline"]["accuracy"]["value"] == pytest.approx(0.30, abs=1e-6)
    # Per class with intervals, per task, from the slices of the task's own label.
    assert set(item["models"]["multi_task"]["per_class"]) == set(LABEL_NAMES)
    assert set(group["models"]["multi_task"]["per_class"]) == set(GROUPS)
    assert group["models"]["multi_task"]["per_class"]["right"]["accuracy"]["value"] == pytest.approx(0.0)
    assert group["models"]["multi_task"]["confusion_matrix"] == [[13, 0], [7, 0]]
    assert set(summary["models"]) == {f"{m} [{t}]" for m in ("multi_task", "multi_task_baseline") for t in TASKS} | {
        "single_task_item [item]", "single_task_group [group]"}
    on_disk = json.loads((tmp_path / "eval" / "blessing.json").read_text())
    assert on_disk["blessed"] is False and on_disk["failed_tasks"] == ["group"]
    markdown = (tmp_path / "eval" / "summary.md").read_text()
    assert "## Task 'item'" in markdown and "## Task 'group'" in markdown and "sharing the base hurt" in markdown
    assert "<h2>Task 'group'" in (tmp_path / "eval" / "report" / "index.html").read_text()


def test_every_task_passing_blesses(task_dataset, tmp_path):
    candidates, baseline = _models(tmp_path, {"item": True, "group": True})
    summary = run_multi_task_evaluator(EvaluatorConfig(), task_dataset, candidates, baseline, str(tmp_path / "a"))
    assert summary["blessing"]["blessed"] and summary["blessing"]["candidate"] == "multi_task"
    assert summary["blessing"]["candidate_model_dir"] == candidates["multi_task"]
    assert summary["tasks"]["group"]["verdict"]["vs_baseline"]["value"] == pytest.approx(0.35, abs=1e-6)
    # the same pipeline again, with that model in production: nothing to bless or push
    production = ProductionModel(1, candidates["multi_task"], fingerprint_dir(candidates["multi_task"]))
    again = run_multi_task_evaluator(EvaluatorConfig(), task_dataset, candidates, baseline, str(tmp_path / "b"),
                                     production=production)
    assert not again["blessing"]["blessed"] and again["blessing"]["unchanged"]
    assert again["blessing"]["reason"].startswith("production unchanged: 'multi_task' is the model in production")


def _diff(value: float, lower: float, upper: float) -> dict[str, float]:
    return {"value": value, "lower": lower, "upper": upper}


@pytest.mark.parametrize("gate, failing", [("interval", {"floor", "single_task"}), ("point", {"floor"})])
def test_a_task_s_floor_and_margin_are_its_own(gate, failing):
    config = EvaluatorConfig(gate=gate, min_accuracy=0.5, tasks={"group": TaskThresholds(min_accuracy=0.9,
                                                                                         max_drop=0.01)})
    verdict = _judge_task(config, "multi_task", "group", _diff(0.85, 0.8, 0.9), _diff(-0.005, -0.02, 0.01),
                          _diff(0.3, 0.2, 0.4), "multi_task_baseline")
    assert {check for check, passed in verdict["checks"].items() if not passed} == failing
    assert verdict["floor"] == 0.9 and not verdict["passed"]
    assert "floor 0.900 (evaluator.tasks.group.min_accuracy" in verdict["reasons"][0]
    default = _judge_task(config, "multi_task", "item", _diff(0.85, 0.8, 0.9), _diff(-0.005, -0.02, 0.01),
                          _diff(0.3, 0.2, 0.4), "multi_task_baseline")
    assert default["floor"] == 0.5 and default["max_drop"] == 0.02 and default["passed"]
