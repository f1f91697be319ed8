"""The domain-adaptation executor end to end on tiny data: DANN, source-only, AdaBN; clear class errors.

The source domain: grey 12x12 images whose brightness tells the class; the
target domain: the same classes, inverted and with a brightness offset (the
`grey_hub_module` of conftest.py is the base).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tlpipe.components.trainer.config import BaselineConfig, TrainerConfig
from tlpipe.components.trainer.domain_adaptation import (
    SHIFT_FILE, WEIGHTS_FILE, check_same_classes, train_domain_adaptation,
)
from tlpipe.components.trainer.domain_config import DomainConfig
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick

CLASSES = ["Sandal", "Sneaker", "Bag"]
SHAPE = (12, 12, 1)


def _images(per_class: int, seed: int, *, shifted: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    pixels = labels[:, None, None, None] * 90.0 + 20.0 + rng.normal(0, 20, size=(len(labels), *SHAPE))
    if shifted:
        pixels = 255.0 - 0.5 * pixels
    return np.clip(pixels, 0, 255).astype(np.uint8), labels


def _write(directory: str, splits: dict[str, tuple[np.ndarray, np.ndarray]], names=CLASSES) -> str:
    for split, (pixels, labels) in splits.items():
        os.makedirs(fmt.split_dir(directory, split), exist_ok=True)
        with tf.io.TFRecordWriter(f"{fmt.shard_prefix(directory, split)}-00000-of-00001{fmt.SHARD_SUFFIX}") as out:
            for index, (image, label) in enumerate(zip(pixels, labels)):
                feature = {
                    fmt.IMAGE_RAW_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                    fmt.IMAGE_SHAPE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
                    fmt.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                    fmt.ID_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{split}-{index}".encode()])),
                }
                out.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    write_json(os.path.join(directory, fmt.METADATA_FILE), {
        "label_names": list(names), "num_classes": len(names), "modality": "image",
        "transform": {"image_size": list(SHAPE[:2]), "channels": 1, "resize_method": "bilinear",
                      "text_lowercase": None},
    })
    return directory


@pytest.fixture
def domains(tmp_path):
    source = _write(str(tmp_path / "source"), {"train": _images(8, 0, shifted=False),
                                               "eval": _images(3, 1, shifted=False)})
    target = _write(str(tmp_path / "target"), {"train": _images(8, 2, shifted=True),
                                               "eval": _images(2, 3, shifted=True),
                                               "test": _images(3, 4, shifted=True)})
    return source, target


def _config(**domain) -> TrainerConfig:
    settings = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 6, "discriminator_units": [8],
                "shift_samples": 24, **domain}
    return TrainerConfig(strategies=["feature_extraction"], baseline=BaselineConfig(architecture="small_cnn"),
                         domain=DomainConfig(**settings))


def _serve(model_dir: str, target_dir: str) -> dict:
    examples = [record.numpy() for record in tf.data.TFRecordDataset(fmt.split_files(target_dir, "test"))]
    return tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant(examples))


def test_dann_trains_exports_and_measures_the_shift(grey_hub_module, domains, tmp_path):
    source, target = domains
    output = str(tmp_path / "dann")
    summary = train_domain_adaptation(_config(), source, target, output, handle=grey_hub_module, method="dann", strategy="domain_adaptation")
    assert summary["strategy"] == "domain_adaptation" and summary["method"] == "dann"
    assert summary["total_steps"] == 6 and summary["num_target_unlabeled"] == 24
    history = json.load(open(os.path.join(output, "history.json")))
    assert [e["epoch"] for e in history["entries"]] == [1, 2]
    assert all(0 < e["lambda"] < 1 and e["domain_loss"] > 0 and "target_val_accuracy" in e
               for e in history["entries"])
    shift = json.load(open(os.path.join(output, SHIFT_FILE)))
    for moment in ("before", "after"):
        assert 0.0 <= shift[moment]["proxy_a_distance"] <= 2.0
        assert shift[moment]["num_source"] == shift[moment]["num_target"] == 24
    assert summary["shift"] == shift
    outputs = _serve(summary["model_dir"], target)
    assert outputs["probabilities"].shape == (9, 3)
    assert set(outputs["class_names"].numpy().astype(str)) <= set(CLASSES)
    assert os.path.isfile(os.path.join(output, WEIGHTS_FILE))
    assert os.path.isfile(os.path.join(output, "summary.json"))


def test_bn_adapt_reuses_source_only_and_changes_only_statistics(grey_hub_module, domains, tmp_path):
    source, target = domains
    reference = train_domain_adaptation(_config(), source, target, str(tmp_path / "source_only"),
                                        handle=grey_hub_module, method="source_only", strategy="source_only")
    history = json.load(open(os.path.join(tmp_path / "source_only", "history.json")))
    assert all(e["domain_loss"] == 0 and e["lambda"] == 0 for e in history["entries"])
    adapted = train_domain_adaptation(_config(), source, target, str(tmp_path / "bn_adapt"), handle=grey_hub_module,
                                      method="bn_adapt", strategy="bn_adapt", teacher_model_dir=reference["model_dir"])
    assert adapted["strategy"] == "bn_adapt"
    history = json.load(open(os.path.join(tmp_path / "bn_adapt", "history.json")))
    assert sorted(s.rsplit(".", 1)[-1] for s in history["adabn"]["statistics"]) == ["moving_mean", "moving_variance"]
    before = _weights(os.path.join(tmp_path, "source_only", WEIGHTS_FILE))
    after = _weights(os.path.join(tmp_path, "bn_adapt", WEIGHTS_FILE))
    assert before.keys() == after.keys()
    changed = sorted(name for name, value in before.items() if not np.allclose(value, after[name]))
    assert len(changed) == 2  # the base's one batch-norm layer: its moving mean and variance


def _weights(path: str) -> dict[str, np.ndarray]:
    import h5py

    values = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: values.update({name: item[()]}) if isinstance(item, h5py.Dataset)
                          else None)
    return values


def test_classes_must_match(grey_hub_module, domains, tmp_path):
    source, _ = domains
    other = _write(str(tmp_path / "other"), {"train": _images(2, 5, shifted=True)}, names=["Sandal", "Boot", "Bag"])
    with pytest.raises(ConfigError) as error:
        train_domain_adaptation(_config(), source, other, str(tmp_path / "out"), handle=grey_hub_module,
                                method="dann", strategy="domain_adaptation")
    message = str(error.value)
    assert "['Sandal', 'Sneaker', 'Bag']" in message and "['Sandal', 'Boot', 'Bag']" in message
    assert "only in the source: ['Sneaker']; only in the target: ['Boot']" in message
    with pytest.raises(ConfigError, match="another order"):
        check_same_classes(["a", "b"], ["b", "a"])


def test_bad_requests_are_refused(grey_hub_module, domains, tmp_path):
    source, target = domains
    with pytest.raises(ConfigError, match="method"):
        train_domain_adaptation(_config(), source, target, str(tmp_path / "x"), handle=grey_hub_module, method="mmd", strategy="mmd")
    with pytest.raises(ConfigError, match="teacher_model_dir"):
        train_domain_adaptation(_config(), source, target, str(tmp_path / "w"), handle=grey_hub_module,
                                method="dann", strategy="domain_adaptation", teacher_model_dir=str(tmp_path))
    with pytest.raises(DataError, match="no split 'unlabeled'"):
        train_domain_adaptation(_config(unlabeled_split="unlabeled"), source, target, str(tmp_path / "y"),
                                handle=grey_hub_module, method="dann", strategy="domain_adaptation")
