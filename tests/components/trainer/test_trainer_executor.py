"""The trainer component end to end on a tiny transform artifact (see conftest.py)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tlpipe.components.trainer.config import BaselineConfig, TrainerConfig
from tlpipe.components.trainer.data import load_transformed
from tlpipe.components.trainer.executor import train_baseline, train_transfer
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError, ModelError

pytestmark = pytest.mark.quick


def small_config(**overrides) -> TrainerConfig:
    settings = dict(batch_size=6, head_epochs=2, fine_tune_epochs=1, head_learning_rate=0.05,
                    baseline=BaselineConfig(epochs=2))
    return TrainerConfig(**{**settings, **overrides})


def read(path: str):
    with open(path) as handle:
        return json.load(handle)


def serve_split(model_dir: str, transformed_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(class ids the exported model predicts, true labels) for one split's serialized examples."""
    serialized = list(tf.data.TFRecordDataset(fmt.split_files(transformed_dir, split)).as_numpy_iterator())
    labels = [tf.train.Example.FromString(s).features.feature[fmt.LABEL_KEY].int64_list.value[0] for s in serialized]
    outputs = tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant(serialized))
    return outputs["class_ids"].numpy(), np.array(labels)


def test_train_transfer_writes_model_history_and_summary(grey_hub_module, transformed_dir, tmp_path, capsys):
    output_dir = str(tmp_path / "fine_tune_all")
    summary = train_transfer(small_config(), transformed_dir, output_dir, strategy="fine_tune_all",
                             handle=grey_hub_module)

    assert sorted(os.listdir(output_dir)) == ["checkpoints", "config.json", "history.json", "logs", "model",
                                              "summary.json"]
    assert sorted(os.listdir(os.path.join(output_dir, "logs"))) == ["fine_tune", "head"]
    assert read(os.path.join(output_dir, "summary.json")) == json.loads(json.dumps(summary))
    history = read(os.path.join(output_dir, "history.json"))
    assert [(e["phase"], e["step"]) for e in history["entries"]] == [("head", 3), ("head", 6), ("fine_tune", 9)]
    assert summary["strategy"] == "fine_tune_all" and summary["total_steps"] == 9
    assert summary["eval_accuracy"] == history["best"]["val_accuracy"]
    assert summary["epochs_run"] == {"head": 2, "fine_tune": 1}
    assert set(summary["timings"]) == {"load_s", "build_s", "train_s", "export_s", "total_s", "phases_s"}

    effective = read(os.path.join(output_dir, "config.json"))
    schedule = effective["schedule"]
    assert (schedule["batch_size"], schedule["head_epochs"], schedule["fine_tune_epochs"]) == (6, 2, 1)
    assert schedule["fine_tune_learning_rate"] == pytest.approx(0.05 * 0.03)  # chosen by the hyper-rule
    assert effective["data"]["num_train"] == 18 and effective["data"]["image_shape"] == [12, 12, 1]

    # the exported model is the one whose eval accuracy the summary reports
    predicted, labels = serve_split(summary["model_dir"], transformed_dir, "eval")
    assert np.mean(predicted == labels) == pytest.approx(summary["eval_accuracy"])
    metadata = read(os.path.join(summary["model_dir"], "tlpipe.json"))
    assert metadata["label_names"] == ["Sandal", "Sneaker", "Bag"]
    assert metadata["config"]["schedule"] == schedule and metadata["history"]["entries"] == history["entries"]

    progress = capsys.readouterr().err
    assert "trainer [fine_tune_all] fine_tune  [####################]  epoch 1/1  step 9" in progress  # its bar


def test_train_baseline_trains_the_same_architecture_from_scratch(grey_hub_module, transformed_dir, tmp_path):
    summary = train_baseline(small_config(), transformed_dir, str(tmp_path / "baseline"), handle=grey_hub_module,
                             strategy="baseline")

    assert summary["kind"] == "baseline" and summary["strategy"] == "baseline"
    assert summary["baseline_architecture"] == "same"
    assert summary["epochs_run"] == {"baseline": 2} and summary["total_steps"] == 6
    schedule = read(str(tmp_path / "baseline" / "config.json"))["schedule"]
    assert schedule["baseline_epochs"] == 2
    predicted, labels = serve_split(summary["model_dir"], transformed_dir, "eval")
    assert np.mean(predicted == labels) == pytest.approx(summary["eval_accuracy"])


def test_feature_extraction_with_augmentation(grey_hub_module, transformed_dir, tmp_path):
    summary = train_transfer(small_config(augment=True), transformed_dir, str(tmp_path / "fe"),
                             strategy="feature_extraction", handle=grey_hub_module)
    history = read(str(tmp_path / "fe" / "history.json"))
    assert summary["epochs_run"] == {"head": 2}
    assert history["phases"]["head"]["cached_features"] is False  # augmented inputs change every epoch


def test_text_models_train_and_serve_raw_texts(text_hub_module, text_transformed_dir, tmp_path):
    summary = train_transfer(small_config(batch_size=2, head_epochs=1), text_transformed_dir, str(tmp_path / "text"),
                             strategy="feature_extraction", handle=text_hub_module)
    loaded = tf.saved_model.load(summary["model_dir"])
    assert set(loaded.signatures) == {"serving_default", "serving_text", "serving_features"}
    outputs = loaded.signatures["serving_text"](texts=tf.constant(["Good  CAST", "dull film"]))
    assert outputs["probabilities"].shape == (2, 2)
    assert {name.decode() for name in outputs["class_names"].numpy()} <= {"positive", "negative"}
    with pytest.raises(ConfigError, match="trainer.augment"):
        train_transfer(small_config(augment=True), text_transformed_dir, str(tmp_path / "augmented"),
                       strategy="feature_extraction", handle=text_hub_module)


def test_datasets_decode_the_contract(transformed_dir):
    data = load_transformed(transformed_dir)
    assert (data.num_train, data.num_eval, data.num_classes) == (18, 9, 3)
    images, labels = next(iter(data.train.batch(18)))
    assert images.shape == (18, 12, 12, 1) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert sorted(labels.numpy().tolist()) == [0] * 6 + [1] * 6 + [2] * 6


def test_a_missing_split_is_a_clear_error(grey_hub_module, transformed_dir, tmp_path):
    shutil.rmtree(os.path.join(transformed_dir, "eval"))
    with pytest.raises(DataError, match=r"no 'eval' split.*splits present: \['train'\]"):
        train_transfer(small_config(), transformed_dir, str(tmp_path / "out"), strategy="feature_extraction",
                       handle=grey_hub_module)
    assert not os.path.exists(tmp_path / "out" / "summary.json")


def test_an_empty_split_is_a_clear_error(grey_hub_module, transformed_dir, tmp_path):
    (shard,) = fmt.split_files(transformed_dir, "train")
    open(shard, "wb").close()
    with pytest.raises(DataError, match="'train' split .* is empty"):
        train_baseline(small_config(), transformed_dir, str(tmp_path / "out"), handle=grey_hub_module,
                       strategy="baseline")


def test_a_bad_handle_or_strategy_is_a_clear_error(transformed_dir, tmp_path):
    missing = str(tmp_path / "no_such_module")
    with pytest.raises(ModelError, match="no_such_module"):
        train_transfer(small_config(), transformed_dir, str(tmp_path / "out"), strategy="fine_tune_all",
                       handle=missing)
    with pytest.raises(ConfigError, match="strategy.*'fine_tune_some'"):
        train_transfer(small_config(), transformed_dir, str(tmp_path / "out"), strategy="fine_tune_some",
                       handle=missing)
