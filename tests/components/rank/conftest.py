"""Candidate hub modules of different quality and a tiny transformed dataset for the rank component.

- `sighted_module`: a conv feature extractor over 12x12 grey images whose features follow brightness
  (what tells the classes apart), published with a source classifier (LEEP / NCE can run on it);
- `blind_module`: the same network with zero weights: its features are zeros whatever the image;
- `rgb_module`: a 16x16 RGB module, so ranking must resize and convert the grey images for it.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.publish import export_hub_module

IMAGE_SHAPE = (12, 12, 1)
LABEL_NAMES = ["dark", "grey", "light"]


def _extractor(shape: tuple[int, int, int], *, blind: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=shape)
    initializer = "zeros" if blind else keras.initializers.RandomUniform(0.0, 0.5, seed=0)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer=initializer,
                            use_bias=False)(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="extractor")


@pytest.fixture(scope="session")
def sighted_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    features = _extractor(IMAGE_SHAPE, blind=False)
    inputs = keras.Input(shape=IMAGE_SHAPE)
    source = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(features(inputs)), name="source")
    return export_hub_module(features, str(tmp_path_factory.mktemp("hub") / "sighted"), source_classifier=source,
                             source_classes=["tops", "shoes"])


@pytest.fixture(scope="session")
def blind_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    return export_hub_module(_extractor(IMAGE_SHAPE, blind=True), str(tmp_path_factory.mktemp("hub") / "blind"))


@pytest.fixture(scope="session")
def rgb_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    return export_hub_module(_extractor((16, 16, 3), blind=False), str(tmp_path_factory.mktemp("hub") / "rgb"))


def _write_split(directory: str, split: str, per_class: int, seed: int) -> None:
    """uint8 grey images whose brightness tells the class, plus noise, as transformed tf.Examples."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(LABEL_NAMES)), per_class)
    pixels = np.clip(labels[:, None, None, None] * 90.0 + 20.0 + rng.normal(0, 20, size=(len(labels), *IMAGE_SHAPE)),
                     0, 255).astype(np.uint8)
    os.makedirs(fmt.split_dir(directory, split), exist_ok=True)
    with tf.io.TFRecordWriter(f"{fmt.shard_prefix(directory, split)}-00000-of-00001{fmt.SHARD_SUFFIX}") as writer:
        for index, (image, label) in enumerate(zip(pixels, labels)):
            feature = {
                fmt.IMAGE_RAW_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                fmt.IMAGE_SHAPE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
                fmt.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                fmt.LABEL_NAME_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[LABEL_NAMES[label].encode()])),
                fmt.ID_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{split}-{index}".encode()])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.fixture(scope="session")
def transformed_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A transform artifact: train (8 per class) and eval (3 per class) shards and metadata.json."""
    directory = str(tmp_path_factory.mktemp("rank_data") / "transformed")
    _write_split(directory, "train", 8, seed=0)
    _write_split(directory, "eval", 3, seed=1)
    write_json(os.path.join(directory, fmt.METADATA_FILE), {
        "label_names": LABEL_NAMES, "num_classes": len(LABEL_NAMES), "modality": "image",
        "transform": {"image_size": list(IMAGE_SHAPE[:2]), "channels": 1, "resize_method": "bilinear",
                      "text_lowercase": None, "examples": {"train": 24, "eval": 9}},
    })
    return directory
