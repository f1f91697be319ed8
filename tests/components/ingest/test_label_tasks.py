"""Label tasks: a further label per example derived from the main label through a mapping."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import tensorflow as tf

from tlpipe.components.ingest.label_tasks import LabelTaskConfig
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError
from tlpipe.pipeline.config import FASHION_MNIST_LABELS

pytestmark = pytest.mark.quick

SPLITS = {"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}
CLASSES = ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
GROUPS = {"Sandal": "footwear", "Shirt": "tops", "Sneaker": "footwear", "Bag": "bags", "Ankle boot": "footwear"}


def _task_features(out: str, split: str) -> list[tuple[str, int, str]]:
    rows = []
    for path in fmt.split_files(out, split):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            rows.append((feature[fmt.LABEL_NAME_KEY].bytes_list.value[0].decode(),
                         feature[fmt.task_label_key("group")].int64_list.value[0],
                         feature[fmt.task_label_name_key("group")].bytes_list.value[0].decode()))
    return rows


def test_a_derived_task_labels_every_example_and_is_counted_in_the_metadata(kit, fashion_subset):
    metadata, out = kit.run(f"idx:{fashion_subset['gz']}", splits=SPLITS, label_names=FASHION_MNIST_LABELS,
                            classes=CLASSES, label_tasks={"group": LabelTaskConfig(mapping=GROUPS)})

    task = metadata["label_tasks"]["group"]
    assert task["label_names"] == ["footwear", "tops", "bags"]  # first appearance along the main classes
    assert task["num_classes"] == 3 and task["derived_from"] == "label"
    for split in SPLITS:
        rows = _task_features(out, split)
        assert rows and all(GROUPS[main] == name and task["label_names"][label] == name for main, label, name in rows)
        assert task["counts"][split] == dict(Counter(name for _, _, name in rows)) | {
            name: 0 for name in task["label_names"] if name not in {row[2] for row in rows}}
        assert sum(task["counts"][split].values()) == metadata["num_examples"][split]


def test_label_names_fix_the_order_of_a_task_s_classes(kit, fashion_subset):
    order = ["bags", "footwear", "tops"]
    metadata, out = kit.run(f"idx:{fashion_subset['gz']}", splits=SPLITS, label_names=FASHION_MNIST_LABELS,
                            classes=CLASSES, label_tasks={"group": LabelTaskConfig(mapping=GROUPS, label_names=order)})

    assert metadata["label_tasks"]["group"]["label_names"] == order
    assert all(order[label] == name for _, label, name in _task_features(out, "train"))


def test_a_mapping_that_misses_a_class_names_it_before_reading(kit, fashion_subset):
    partial = {name: group for name, group in GROUPS.items() if name != "Bag"}
    with pytest.raises(ConfigError, match=r"label_tasks\.group\.mapping.*'Bag'"):
        kit.run(f"idx:{fashion_subset['gz']}", splits=SPLITS, label_names=FASHION_MNIST_LABELS, classes=CLASSES,
                label_tasks={"group": LabelTaskConfig(mapping=partial)})
    assert not os.path.exists(kit.path("out"))


def test_a_mapping_that_misses_a_discovered_class_names_it_after_reading(kit, fashion_subset):
    with pytest.raises(ConfigError, match=r"label_tasks\.parity\.mapping.*'8'"):
        kit.run(f"idx:{fashion_subset['gz']}", splits={"all": "train"}, classes=["7", "2", "8"],
                label_tasks={"parity": LabelTaskConfig(mapping={"7": "odd", "2": "even"})})


@pytest.mark.parametrize("tasks, key", [
    ({"group": LabelTaskConfig(mapping={})}, "label_tasks.group.mapping"),
    ({"group": LabelTaskConfig(mapping={"Bag": "bags", "Shirt": "bags"})}, "label_tasks.group.mapping"),
    ({"group": LabelTaskConfig(mapping=GROUPS, label_names=["tops"])}, "label_tasks.group.label_names"),
    ({"bad name": LabelTaskConfig(mapping=GROUPS)}, "label_tasks.bad name"),
])
def test_bad_label_tasks_are_config_errors_naming_the_key(kit, tasks, key):
    with pytest.raises(ConfigError) as caught:
        kit.run("idx:/nowhere", label_tasks=tasks)
    assert caught.value.key == key


def _write_csv(path: str, header: list[str], rows: list[list[str]]) -> str:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _task_labels(out: str, split: str, task: str) -> dict[str, tuple[int, str]]:
    rows = {}
    for path in fmt.split_files(out, split):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            rows[feature[fmt.ID_KEY].bytes_list.value[0].decode()] = (
                feature[fmt.task_label_key(task)].int64_list.value[0],
                feature[fmt.task_label_name_key(task)].bytes_list.value[0].decode())
    return rows


def test_a_csv_column_is_read_as_a_further_label(kit):
    path = _write_csv(kit.path("reviews.csv"), ["text", "label", "topic", "id"], [
        ["good film", "positive", "film", "r1"], ["bad book", "negative", "book", "r2"],
        ["fine book", "positive", "1", "r3"], ["dull film", "negative", "film", "r4"]])
    metadata, out = kit.run(f"csv:{path}", splits={"all": "all"},
                            label_tasks={"topic": LabelTaskConfig(feature="topic", label_names=["film", "book"])})

    assert _task_labels(out, "all", "topic") == {"r1": (0, "film"), "r2": (1, "book"), "r3": (1, "book"),
                                                 "r4": (0, "film")}
    task = metadata["label_tasks"]["topic"]
    assert task["feature"] == "topic" and task["counts"] == {"all": {"film": 2, "book": 2}}


def test_a_tfrecord_feature_is_read_as_a_further_label_and_its_errors_name_it(kit):
    examples = [{"text": f"t{i}", "label": i % 2, "colour": ["red", "blue"][i // 2], "id": f"e{i}"} for i in range(4)]
    path = kit.tfrecord("data/a.tfrecord", examples)
    colour = LabelTaskConfig(feature="colour", label_names=["blue", "red"])
    metadata, out = kit.run(f"tfrecord:{path}", splits={"all": "all"}, label_tasks={"colour": colour})
    assert _task_labels(out, "all", "colour") == {"e0": (1, "red"), "e1": (1, "red"), "e2": (0, "blue"),
                                                  "e3": (0, "blue")}
    assert metadata["label_tasks"]["colour"]["counts"]["all"] == {"blue": 2, "red": 2}

    with pytest.raises(ConfigError, match=r"label_tasks\.size\.feature.*'size'.*colour, id, label, text"):
        kit.run(f"tfrecord:{path}", "bad", splits={"all": "all"},
                label_tasks={"size": LabelTaskConfig(feature="size", label_names=["s", "l"])})
    with pytest.raises(DataError, match=r"label 'red' of task 'colour' is not one of class names 'blue', 'green'"):
        kit.run(f"tfrecord:{path}", "bad2", splits={"all": "all"},
                label_tasks={"colour": LabelTaskConfig(feature="colour", label_names=["blue", "green"])})
    with pytest.raises(ConfigError, match=r"label_tasks\.colour\.feature"):
        kit.run("idx:/nowhere", label_tasks={"colour": colour})


def test_a_tfds_feature_is_read_as_a_further_label(kit, tmp_path):
    import tensorflow_datasets as tfds

    from .test_ingest_tfds import MOCK_EXAMPLES, _write_metadata

    data_dir = str(tmp_path / "tfds")
    _write_metadata(data_dir, "mnist", {"train": MOCK_EXAMPLES, "test": MOCK_EXAMPLES})
    digits = [str(i) for i in range(10)]
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=data_dir,
                                policy=tfds.testing.MockPolicy.USE_FILES):
        metadata, out = kit.run("tfds:mnist", data_dir=data_dir, splits={"test": "test"}, allow_missing_classes=True,
                                label_tasks={"digit": LabelTaskConfig(feature="label", label_names=digits)})
        with pytest.raises(ConfigError, match=r"label_tasks\.colour\.feature.*'colour'.*label \(ClassLabel\)"):
            kit.run("tfds:mnist", "bad", data_dir=data_dir, splits={"test": "test"},
                    label_tasks={"colour": LabelTaskConfig(feature="colour", label_names=["a", "b"])})
    rows = {row["id"]: row["label"] for row in kit.read(out, "test")}
    assert {k: v[0] for k, v in _task_labels(out, "test", "digit").items()} == rows
    assert sum(metadata["label_tasks"]["digit"]["counts"]["test"].values()) == MOCK_EXAMPLES
