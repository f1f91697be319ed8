"""Label tasks: a further label per example derived from the main label through a mapping."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import tensorflow as tf

from tlpipe.components.ingest.label_tasks import LabelTaskConfig
from tlpipe.models import example_format as fmt
from tlpipe.models.errors import ConfigError
from tlpipe.pipeline.config import FASHION_MNIST_LABELS

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
