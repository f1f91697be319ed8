"""A tiny grey-image hub module and a tiny transformed dataset written per the example contract."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.publish import export_hub_module
from tlpipe.models.text_layers import HashedEmbeddingBag
from tlpipe.models.plumbing import example_format as fmt

IMAGE_SHAPE = (12, 12, 1)
LABEL_NAMES = ["Sandal", "Sneaker", "Bag"]


@pytest.fixture(scope="session")
def grey_hub_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A conv + batch norm feature extractor over 12x12 grey images, published as a hub module."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input(shape=IMAGE_SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return export_hub_module(keras.Model(inputs, outputs), str(tmp_path_factory.mktemp("hub") / "grey_cnn"))


def write_split(directory: str, split: str, pixels: np.ndarray, labels: np.ndarray,
                extra_labels: dict[str, list[int]] | None = None) -> None:
    """One transformed split; `extra_labels` maps a further label task to the label it gives each class."""
    os.makedirs(fmt.split_dir(directory, split), exist_ok=True)
    path = f"{fmt.shard_prefix(directory, split)}-00000-of-00001{fmt.SHARD_SUFFIX}"
    with tf.io.TFRecordWriter(path) as writer:
        for index, (image, label) in enumerate(zip(pixels, labels)):
            feature = {
                fmt.IMAGE_RAW_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                fmt.IMAGE_SHAPE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
                fmt.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                fmt.LABEL_NAME_KEY: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[LABEL_NAMES[label].encode()])),
                fmt.ID_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{split}-{index}".encode()])),
            }
            for task, label_of_class in (extra_labels or {}).items():
                feature[fmt.task_label_key(task)] = tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[label_of_class[label]]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def class_images(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 grey images whose brightness tells the class, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(LABEL_NAMES)), per_class)
    base = labels[:, None, None, None] * 90.0 + 20.0
    pixels = np.clip(base + rng.normal(0, 25, size=(len(labels), *IMAGE_SHAPE)), 0, 255).astype(np.uint8)
    return pixels, labels


@pytest.fixture
def transformed_dir(tmp_path) -> str:
    """A transform artifact: train (6 per class) and eval (3 per class) shards and metadata.json."""
    directory = str(tmp_path / "transformed")
    write_split(directory, "train", *class_images(6, seed=0))
    write_split(directory, "eval", *class_images(3, seed=1))
    write_json(os.path.join(directory, fmt.METADATA_FILE), {
        "label_names": LABEL_NAMES,
        "num_classes": len(LABEL_NAMES),
        "modality": "image",
        "transform": {"image_size": list(IMAGE_SHAPE[:2]), "channels": 1, "resize_method": "bilinear",
                      "text_lowercase": None, "examples": {"train": 18, "eval": 9}},
    })
    return directory


@pytest.fixture(scope="session")
def text_hub_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A text feature vector over a batch of strings (hashed bag of words), published as a hub module."""
    keras.utils.set_random_seed(12)
    inputs = keras.Input(shape=(), dtype="string")
    outputs = HashedEmbeddingBag(num_buckets=32, output_dim=6, name="bag")(inputs)
    return export_hub_module(keras.Model(inputs, outputs), str(tmp_path_factory.mktemp("hub") / "text_bag"))


@pytest.fixture
def text_transformed_dir(tmp_path) -> str:
    """A transformed text artifact: two classes of short normalised texts."""
    directory = str(tmp_path / "transformed_text")
    texts = {"train": ["good film", "great plot", "fine cast", "bad film", "poor plot", "dull cast"],
             "eval": ["good cast", "dull film"]}
    for split, items in texts.items():
        os.makedirs(fmt.split_dir(directory, split))
        with tf.io.TFRecordWriter(f"{fmt.shard_prefix(directory, split)}-00000-of-00001{fmt.SHARD_SUFFIX}") as writer:
            for index, text in enumerate(items):
                label = int(index >= len(items) // 2)
                feature = {
                    fmt.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
                    fmt.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    write_json(os.path.join(directory, fmt.METADATA_FILE), {
        "label_names": ["positive", "negative"], "num_classes": 2, "modality": "text",
        "transform": {"image_size": None, "channels": None, "resize_method": None, "text_lowercase": True},
    })
    return directory
