"""The multi_task strategy: a single-task model per head, the multi-task model, and its from-scratch baseline."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from .conftest import IMAGE_SHAPE, LABEL_NAMES, class_images, write_split
from tlpipe.components.trainer.config import BaselineConfig, TrainerConfig
from tlpipe.components.trainer.multi_task import single_task_dir, train_multi_task, train_multi_task_baseline
from tlpipe.components.trainer.multi_task_config import TaskConfig
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.serving import load_serving_metadata, task_output_key

pytestmark = pytest.mark.quick

GROUPS = ["footwear", "bags"]
GROUP_OF = [0, 0, 1]  # Sandal, Sneaker -> footwear; Bag -> bags
TASKS = [TaskConfig(name="item", label="label"), TaskConfig(name="group", label="group", loss_weight=0.5)]


@pytest.fixture
def task_dir(tmp_path) -> str:
    directory = str(tmp_path / "transformed")
    write_split(directory, "train", *class_images(6, seed=0), extra_labels={"group": GROUP_OF})
    write_split(directory, "eval", *class_images(3, seed=1), extra_labels={"group": GROUP_OF})
    write_json(os.path.join(directory, fmt.METADATA_FILE), {
        "label_names": LABEL_NAMES, "num_classes": 3, "modality": "image",
        "label_tasks": {"group": {"label_names": GROUPS, "num_classes": 2}},
        "transform": {"image_size": list(IMAGE_SHAPE[:2]), "channels": 1, "resize_method": "bilinear",
                      "text_lowercase": None, "examples": {"train": 18, "eval": 9}},
    })
    return directory


def small_config(**overrides) -> TrainerConfig:
    settings = dict(strategies=["multi_task"], tasks=TASKS, batch_size=6, head_epochs=2, fine_tune_epochs=1,
                    head_learning_rate=0.05, baseline=BaselineConfig(epochs=2, architecture="small_cnn",
                                                                      cnn_filters=[4]))
    return TrainerConfig(**{**settings, **overrides})


def _serve(model_dir: str, transformed_dir: str) -> dict[str, np.ndarray]:
    serialized = list(tf.data.TFRecordDataset(fmt.split_files(transformed_dir, "eval")).as_numpy_iterator())
    outputs = tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant(serialized))
    return {key: value.numpy() for key, value in outputs.items()}


def test_multi_task_trains_a_single_task_model_per_head_and_the_shared_model(grey_hub_module, task_dir, tmp_path):
    output_dir = str(tmp_path / "multi_task")
    summary = train_multi_task(small_config(), task_dir, output_dir, strategy="multi_task", handle=grey_hub_module)

    assert summary["strategy"] == "multi_task"
    assert summary["tasks"] == {"item": {"label": "label", "label_names": LABEL_NAMES, "loss_weight": 1.0},
                                "group": {"label": "group", "label_names": GROUPS, "loss_weight": 0.5}}
    history = json.load(open(os.path.join(output_dir, "history.json")))
    assert [entry["phase"] for entry in history["entries"]] == ["head", "head", "fine_tune"]
    assert set(history["entries"][0]["tasks"]) == {"item", "group"}
    metadata = load_serving_metadata(os.path.join(output_dir, "model"))
    assert metadata["tasks"] == {"item": {"label_names": LABEL_NAMES}, "group": {"label_names": GROUPS}}
    outputs = _serve(os.path.join(output_dir, "model"), task_dir)
    assert outputs[task_output_key("item", "probabilities")].shape == (9, 3)
    assert outputs[task_output_key("group", "probabilities")].shape == (9, 2)
    for task in ("item", "group"):
        single = single_task_dir(output_dir, task)
        assert summary["single_task"][task]["model_dir"] == os.path.join(single, "model")
        single_meta = load_serving_metadata(os.path.join(single, "model"))
        assert list(single_meta["tasks"]) == [task]
        single_history = json.load(open(os.path.join(single, "history.json")))
        assert set(single_history["entries"][0]["tasks"]) == {task}
        assert os.path.isfile(os.path.join(single, "summary.json"))


def test_the_baseline_trains_the_same_heads_from_scratch(grey_hub_module, task_dir, tmp_path):
    summary = train_multi_task_baseline(small_config(), task_dir, str(tmp_path / "b"), strategy="multi_task_baseline",
                                        handle=grey_hub_module)
    assert summary["kind"] == "baseline" and summary["baseline_architecture"] == "small_cnn"
    outputs = _serve(os.path.join(str(tmp_path / "b"), "model"), task_dir)
    assert set(outputs) == {task_output_key(t, k) for t in ("item", "group")
                            for k in ("probabilities", "class_ids", "class_names")}


def test_a_task_whose_label_the_data_lacks_is_a_data_error_naming_it(grey_hub_module, task_dir, tmp_path):
    config = small_config(tasks=[TASKS[0], TaskConfig(name="colour", label="colour")])
    with pytest.raises(DataError, match=r"task 'colour' reads label 'colour'.*labels present: \['group', 'label'\]"):
        train_multi_task(config, task_dir, str(tmp_path / "m"), strategy="multi_task", handle=grey_hub_module)
