"""ingest.unlabeled: the `train` examples k-shot sampling left out, written without labels, through transform."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tlpipe.components.beam import BeamConfig
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.trainer.data import load_transformed
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.transform.executor import run_transform
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError

pytestmark = pytest.mark.quick

LABELS = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SPLITS = {"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}
CLASSES = ["Sandal", "Bag", "Sneaker"]


def _records(output_dir: str, split: str) -> dict[str, list[str]]:
    """id -> sorted feature keys of every example of one split."""
    rows = {}
    for path in fmt.split_files(output_dir, split):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            rows[feature[fmt.ID_KEY].bytes_list.value[0].decode()] = sorted(feature)
    return rows


@pytest.fixture
def ingested(kit, fashion_subset):
    fields = dict(splits=SPLITS, label_names=LABELS, classes=CLASSES, shots={"train": 3, "eval": 2}, seed=4)
    sampled, sampled_dir = kit.run(f"idx:{fashion_subset['gz']}", "sampled", unlabeled=True, **fields)
    full, full_dir = kit.run(f"idx:{fashion_subset['gz']}", "full", splits=SPLITS, label_names=LABELS,
                             classes=CLASSES)
    return sampled, sampled_dir, full, full_dir


def test_unlabeled_split_is_exactly_the_unsampled_training_examples_without_labels(ingested):
    metadata, out, full, full_out = ingested
    train, unlabeled = _records(out, "train"), _records(out, fmt.UNLABELED_SPLIT)
    all_train = set(_records(full_out, "train"))
    assert len(train) == 3 * len(CLASSES)
    assert set(unlabeled) == all_train - set(train)  # the exact complement within the train split
    assert not set(unlabeled) & (set(_records(out, "eval")) | set(_records(out, "test")))
    assert all(keys == sorted([fmt.ID_KEY, fmt.IMAGE_ENCODED_KEY]) for keys in unlabeled.values())
    assert all(fmt.LABEL_KEY in keys for keys in train.values())
    assert metadata["num_examples"][fmt.UNLABELED_SPLIT] == len(unlabeled) == full["num_examples"]["train"] - 9
    assert metadata["unlabeled"] == {"split": "unlabeled", "from_split": "train", "num_examples": len(unlabeled)}
    assert fmt.UNLABELED_SPLIT not in metadata["counts"]  # no per-class counts: the labels are gone
    assert metadata["counts"]["train"] == {name: 3 for name in CLASSES}


def test_without_the_option_there_is_no_unlabeled_split(kit, fashion_subset):
    metadata, out = kit.run(f"idx:{fashion_subset['gz']}", splits=SPLITS, label_names=LABELS, classes=CLASSES,
                            shots={"train": 3})
    assert metadata["unlabeled"] is None and fmt.UNLABELED_SPLIT not in metadata["num_examples"]
    assert fmt.split_files(out, fmt.UNLABELED_SPLIT) == []


@pytest.mark.parametrize("fields, key, allowed", [
    (dict(unlabeled=True, shots={"eval": 2}), "unlabeled", "shots.train"),
    (dict(splits={"train": "train", "unlabeled": "test"}), "splits.unlabeled", "written by ingest.unlabeled"),
])
def test_unlabeled_config_errors(fields, key, allowed):
    with pytest.raises(ConfigError) as error:
        IngestConfig(**fields).validate()
    assert error.value.key == key and allowed in str(error.value)


def test_transform_carries_the_unlabeled_split_and_the_trainer_ignores_it(ingested, tmp_path):
    metadata, out, _, _ = ingested
    transformed = str(tmp_path / "transformed")
    statistics = run_transform(TransformConfig(), BeamConfig(), out, transformed, image_size=(28, 28), channels=1)
    unlabeled = _records(transformed, fmt.UNLABELED_SPLIT)
    assert len(unlabeled) == metadata["num_examples"][fmt.UNLABELED_SPLIT]
    assert all(keys == sorted([fmt.ID_KEY, fmt.IMAGE_RAW_KEY, fmt.IMAGE_SHAPE_KEY]) for keys in unlabeled.values())
    report = statistics["splits"][fmt.UNLABELED_SPLIT]
    assert report["examples"] == len(unlabeled) and report["bad_records"] == 0
    data = load_transformed(transformed)
    assert (data.num_train, data.num_eval) == (9, 6)
