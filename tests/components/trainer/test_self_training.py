"""Self-training: a teacher pseudo-labels the unlabeled split, students learn from labels + pseudo-labels."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tlpipe.components.trainer.config import BaselineConfig, TrainerConfig
from tlpipe.components.trainer.data import load_transformed
from tlpipe.components.trainer import self_training
from tlpipe.components.trainer.executor import train_baseline, train_transfer
from tlpipe.components.trainer.self_training import (
    PSEUDO_LABELS_FILE, load_unlabeled, select_pseudo_labels, train_baseline_self_training, train_self_training,
    with_pseudo_labels,
)
from tlpipe.components.trainer.self_training_config import SelfTrainingConfig
from tlpipe.models import shuffle
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError, ModelError

from .conftest import class_images, write_split

pytestmark = pytest.mark.quick


def _write_unlabeled(directory: str, pixels: np.ndarray) -> list[str]:
    """An `unlabeled` split as transform writes it: pixels, shape and id, no label; returns the ids."""
    os.makedirs(fmt.split_dir(directory, fmt.UNLABELED_SPLIT), exist_ok=True)
    ids = [f"unlabeled-{index}" for index in range(len(pixels))]
    path = f"{fmt.shard_prefix(directory, fmt.UNLABELED_SPLIT)}-00000-of-00001{fmt.SHARD_SUFFIX}"
    with tf.io.TFRecordWriter(path) as writer:
        for example_id, image in zip(ids, pixels):
            feature = {
                fmt.IMAGE_RAW_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                fmt.IMAGE_SHAPE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
                fmt.ID_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[example_id.encode()])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return ids


def _split_ids(directory: str, split: str) -> set[str]:
    records = tf.data.TFRecordDataset(fmt.split_files(directory, split)).as_numpy_iterator()
    return {tf.train.Example.FromString(r).features.feature[fmt.ID_KEY].bytes_list.value[0].decode() for r in records}


def _config(**self_training) -> TrainerConfig:
    return TrainerConfig(batch_size=6, head_epochs=2, fine_tune_epochs=1, head_learning_rate=0.05,
                         baseline=BaselineConfig(epochs=2), self_training=SelfTrainingConfig(**self_training))


@pytest.fixture
def with_unlabeled(transformed_dir) -> tuple[str, list[str]]:
    pixels, _ = class_images(8, seed=7)  # 24 unlabelled images, 8 of each class
    write_split(transformed_dir, "test", *class_images(2, seed=9))
    return transformed_dir, _write_unlabeled(transformed_dir, pixels)


def test_selection_keeps_confident_predictions_at_most_n_per_class_most_confident_first():
    probabilities = np.array([
        [0.95, 0.05, 0.00],  # 0: class 0, confident
        [0.60, 0.40, 0.00],  # 1: class 0, not confident
        [0.99, 0.01, 0.00],  # 2: class 0, most confident
        [0.97, 0.03, 0.00],  # 3: class 0, confident but the third of class 0
        [0.00, 0.91, 0.09],  # 4: class 1, confident
        [0.00, 0.10, 0.90],  # 5: class 2, exactly at the threshold
    ])
    indices, labels = select_pseudo_labels(probabilities, threshold=0.9, max_per_class=2)
    assert indices.tolist() == [2, 3, 4, 5] and labels.tolist() == [0, 0, 1, 2]


def test_the_pseudo_labelled_examples_stream_from_the_pool_in_its_order_with_their_labels(with_unlabeled):
    transformed_dir, unlabeled_ids = with_unlabeled
    pixels, _ = class_images(8, seed=7)
    pool = load_unlabeled(transformed_dir)
    assert pool.count == 24 and len(pool.files) == 1
    indices, labels = np.array([1, 5, 6, 20]), np.array([2, 0, 1, 1])
    assert self_training._ids(pool, indices) == [unlabeled_ids[i] for i in indices]
    labelled = load_transformed(transformed_dir)
    data = with_pseudo_labels(labelled, pool, indices, labels)
    assert data.num_train == labelled.num_train + 4 and data.train.cardinality() == data.num_train
    pseudo = list(data.train.skip(labelled.num_train).as_numpy_iterator())
    np.testing.assert_allclose(np.stack([image for image, _ in pseudo]), pixels[indices] / 255.0, atol=1e-6)
    assert [label for _, label in pseudo] == labels.tolist()


def test_more_pseudo_labelled_examples_than_the_shuffle_holds_come_in_hash_buckets(with_unlabeled, monkeypatch):
    transformed_dir, _ = with_unlabeled
    pixels, _ = class_images(8, seed=7)  # in class order, as a source written class by class
    pool, labelled = load_unlabeled(transformed_dir), load_transformed(transformed_dir)
    indices = np.arange(2, 22)
    labels = indices % 3
    per_example = 12 * 12 * 1 * 4 + 8  # float32 pixels, an int64 label
    monkeypatch.setattr(shuffle, "SHUFFLE_BUFFER_BYTES", 10 * per_example)  # 20 examples, 5 a bucket: 4 buckets
    order = self_training._in_data_order(pool, indices, labelled, labelled.num_train + len(indices))
    assert sorted(order.tolist()) == indices.tolist() and order.tolist() != indices.tolist()
    data = with_pseudo_labels(labelled, pool, indices, labels)
    pseudo = list(data.train.skip(labelled.num_train).as_numpy_iterator())
    np.testing.assert_allclose(np.stack([image for image, _ in pseudo]), pixels[order] / 255.0, atol=1e-6)
    assert [label for _, label in pseudo] == (order % 3).tolist()


def test_self_training_pseudo_labels_only_the_unlabeled_split(with_unlabeled, grey_hub_module, tmp_path):
    transformed_dir, unlabeled_ids = with_unlabeled
    teacher = train_transfer(_config(), transformed_dir, str(tmp_path / "teacher"), strategy="fine_tune_all",
                             handle=grey_hub_module)
    output = str(tmp_path / "self_training")
    summary = train_self_training(_config(threshold=0.34, max_per_class=3, rounds=2), transformed_dir, output,
                                  handle=grey_hub_module, teacher_model_dir=str(tmp_path / "teacher"), strategy="self_training")

    seen = summary["self_training"]
    assert summary["strategy"] == "self_training" and summary["kind"] == "transfer"
    assert seen["round"] == seen["rounds"] == 2 and seen["teacher"].startswith(os.path.join(output, "rounds"))
    assert all(count <= 3 for count in seen["pseudo_labels_per_class"].values())
    assert summary["num_train"] == 18 + seen["pseudo_labelled"] and summary["num_eval"] == 9
    assert "never pseudo-labelled" in seen["eval"] and "never seen" in seen["test"]
    assert os.path.isfile(os.path.join(output, "model", "saved_model.pb"))

    first_round = os.path.join(output, "rounds", "round-1")
    with open(os.path.join(first_round, PSEUDO_LABELS_FILE)) as handle:
        first = json.load(handle)
    assert first["teacher"] == teacher["model_dir"] and first["unlabeled_pool"] == 24
    with open(os.path.join(output, PSEUDO_LABELS_FILE)) as handle:
        final = json.load(handle)
    labelled_ids = {split: _split_ids(transformed_dir, split) for split in ("train", "eval", "test")}
    for pseudo in (first, final):
        ids = [example["id"] for example in pseudo["examples"]]
        assert len(ids) == pseudo["pseudo_labelled"] > 0 and set(ids) <= set(unlabeled_ids)
        assert not set(ids) & (labelled_ids["eval"] | labelled_ids["test"] | labelled_ids["train"])
    with open(os.path.join(first_round, "summary.json")) as handle:
        assert json.load(handle)["model_dir"] == final["teacher"]


def test_propagation_labels_the_unlabeled_split_by_its_neighbourhoods(with_unlabeled, grey_hub_module, tmp_path):
    transformed_dir, unlabeled_ids = with_unlabeled
    _, truth = class_images(8, seed=7)  # the labels the unlabeled split was written without
    train_transfer(_config(), transformed_dir, str(tmp_path / "teacher"), strategy="fine_tune_all",
                   handle=grey_hub_module)
    output = str(tmp_path / "self_training")
    summary = train_self_training(_config(neighbors=3, raw_components=8), transformed_dir, output,
                                  handle=grey_hub_module, teacher_model_dir=str(tmp_path / "teacher"), strategy="self_training")
    seen = summary["self_training"]
    assert seen["labeler"].startswith("label propagation") and "8 principal components" in seen["labeler"]
    assert (seen["threshold"], seen["max_per_class"]) == (0.5, 100_000)  # the propagation labeler's defaults
    assert seen["student_schedule"] == {}  # 18 + 24 examples: the size tiers apply
    with open(os.path.join(output, PSEUDO_LABELS_FILE)) as handle:
        examples = json.load(handle)["examples"]
    assert examples and {example["id"] for example in examples} <= set(unlabeled_ids)
    by_id = dict(zip(unlabeled_ids, truth.tolist()))
    right = sum(example["label"] == by_id[example["id"]] for example in examples)
    assert right / len(examples) >= 0.9, examples


@pytest.mark.parametrize("bucketed", [False, True])
def test_frozen_teacher_and_student_keep_the_module_and_the_last_epoch(with_unlabeled, grey_hub_module, tmp_path,
                                                                      monkeypatch, bucketed):
    transformed_dir, _ = with_unlabeled
    if bucketed:  # more pseudo-labelled examples than the shuffle holds: the teacher's features follow their order
        monkeypatch.setattr(shuffle, "SHUFFLE_BUFFER_BYTES", 6 * (12 * 12 * 4 + 8))
    train_transfer(_config(), transformed_dir, str(tmp_path / "teacher"), strategy="feature_extraction",
                   handle=grey_hub_module)
    settings = dict(teacher="feature_extraction", student="feature_extraction", student_epoch="last",
                    neighbors=3, raw_components=8)
    shared = []
    real = self_training._student_features
    monkeypatch.setattr(self_training, "_student_features", lambda *args: shared.append(real(*args)) or shared[-1])

    def run(name: str) -> dict:
        train_self_training(_config(**settings), transformed_dir, str(tmp_path / name), handle=grey_hub_module,
                            teacher_model_dir=str(tmp_path / "teacher"), strategy="self_training")
        with open(tmp_path / name / "history.json") as handle:
            return json.load(handle)

    history = run("self_training")
    # One phase, the head on the frozen module, trained to its last planned epoch, which is what is kept.
    assert list(history["phases"]) == ["head"] and history["phases"]["head"]["trainable_base_variables"] == []
    assert history["best"]["epoch"] == history["entries"][-1]["epoch"] == 2
    # The student took the teacher's features of its training examples instead of running the module again...
    with open(tmp_path / "self_training" / "summary.json") as handle:
        assert shared[0] is not None and len(shared[0]) == json.load(handle)["num_train"]
    # ...and trains exactly as when it computes them itself.
    monkeypatch.setattr(self_training, "_student_features", lambda *args: None)
    recomputed = run("recomputed")
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([e[key] for e in history["entries"]], [e[key] for e in recomputed["entries"]],
                                   rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError) as error:
        SelfTrainingConfig(student_epoch="middle").validate()
    assert error.value.key == "student_epoch"
    with pytest.raises(ConfigError) as error:
        SelfTrainingConfig(teacher="baseline").validate()
    assert error.value.key == "teacher"


def test_teacher_labeler_takes_the_teacher_predictions(with_unlabeled, grey_hub_module, tmp_path):
    transformed_dir, _ = with_unlabeled
    train_transfer(_config(), transformed_dir, str(tmp_path / "teacher"), strategy="fine_tune_all",
                   handle=grey_hub_module)
    summary = train_self_training(_config(labeler="teacher", threshold=0.34, max_per_class=2), transformed_dir,
                                  str(tmp_path / "out"), handle=grey_hub_module,
                                  teacher_model_dir=str(tmp_path / "teacher"), strategy="self_training")
    seen = summary["self_training"]
    assert seen["labeler"] == "the teacher's own predictions" and seen["pseudo_labelled"] <= 6


def test_scratch_baseline_self_trains_from_a_scratch_teacher(with_unlabeled, grey_hub_module, tmp_path):
    transformed_dir, _ = with_unlabeled
    train_baseline(_config(), transformed_dir, str(tmp_path / "baseline"), handle=grey_hub_module,
                   strategy="baseline")
    summary = train_baseline_self_training(_config(threshold=0.34, max_per_class=2), transformed_dir,
                                           str(tmp_path / "baseline_self_training"), handle=grey_hub_module,
                                           teacher_model_dir=str(tmp_path / "baseline" / "model"),
                                           strategy="baseline_self_training")
    assert summary["kind"] == "baseline" and summary["strategy"] == "baseline_self_training"
    assert summary["self_training"]["student"] == "randomly initialised (from scratch)"
    assert summary["num_train"] == 18 + summary["self_training"]["pseudo_labelled"]


def test_self_training_errors_name_what_is_missing(transformed_dir, grey_hub_module, tmp_path):
    with pytest.raises(DataError, match="set ingest.unlabeled: true"):
        load_unlabeled(transformed_dir)
    _write_unlabeled(transformed_dir, class_images(1, seed=3)[0])
    with pytest.raises(ModelError, match="neither an exported model"):
        train_self_training(_config(), transformed_dir, str(tmp_path / "out"), handle=grey_hub_module,
                            teacher_model_dir=str(tmp_path), strategy="self_training")
    with pytest.raises(ConfigError) as error:
        SelfTrainingConfig(threshold=1.0).validate()
    assert error.value.key == "threshold"
    with pytest.raises(ConfigError) as error:
        SelfTrainingConfig(labeler="oracle").validate()
    assert error.value.key == "labeler"
