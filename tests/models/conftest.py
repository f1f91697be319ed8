"""Tiny hub modules on disk, made once per test session, for everything under tests/models.

- `keras_hub_module`: a Keras 3 feature extractor (conv, batch norm, dropout,
  conv, batch norm, global average pooling; 16x16x3 input, 8 features, L2 on
  the first conv) published with tlpipe's `export_hub_module`.
- `tf_keras_hub_module`: a tf_keras (Keras 2) model with batch norm, dropout
  and L2 saved with plain `tf.saved_model.save`, the way many tfhub.dev TF2
  feature vectors were made.
- `text_hub_module`: a Keras 3 model over a batch of strings (hashed
  embedding bag + dense, NNLM-like), published with `export_hub_module`.
- `tf1_hub_module`: the legacy TF1 hub format. tensorflow_hub 0.16 can no
  longer write it (`hub.create_module_spec` is gone), so it is written the
  way `hub.Module.export` laid it out: a TF1 SavedModel whose graph is under
  the empty tag set with a "default" signature ({"images"} -> {"default"}),
  plus the `tfhub_module.pb` marker file (a `ModuleDef` proto with
  format = FORMAT_V3, serialised by hand as its two bytes). `hub.load`
  recognises the module by that file.

Each image module takes float32 images in [0, 1], shape (16, 16, 3).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.publish import export_hub_module
from tlpipe.models.text_layers import HashedEmbeddingBag

IMAGE_SHAPE = (16, 16, 3)
FEATURES = 8
# tensorflow_hub's ModuleDef proto: field 1 (format), varint 3 (FORMAT_V3).
TF1_MODULE_DEF = b"\x08\x03"


@pytest.fixture(scope="session")
def keras_feature_extractor() -> keras.Model:
    """The Keras 3 network behind `keras_hub_module` (its weights are the module's at publishing)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", kernel_regularizer=keras.regularizers.L2(1e-2), name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    x = keras.layers.Conv2D(FEATURES, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, outputs, name="tiny_cnn")
    # Non-trivial batch-norm statistics, as a pre-trained module would have.
    for layer in (model.get_layer("bn1"), model.get_layer("bn2")):
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.1, "float32"))
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.5, "float32"))
    return model


@pytest.fixture(scope="session")
def keras_hub_module(tmp_path_factory: pytest.TempPathFactory, keras_feature_extractor: keras.Model) -> str:
    return export_hub_module(keras_feature_extractor, str(tmp_path_factory.mktemp("hub") / "keras_cnn"))


@pytest.fixture(scope="session")
def tf_keras_hub_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    import tf_keras

    tf_keras.utils.set_random_seed(2)
    l2 = tf_keras.regularizers.l2(1e-2)
    inputs = tf_keras.Input(shape=IMAGE_SHAPE)
    x = tf_keras.layers.Conv2D(6, 3, padding="same", kernel_regularizer=l2, name="conv1")(inputs)
    x = tf_keras.layers.BatchNormalization(name="bn1")(x)
    x = tf_keras.layers.ReLU()(x)
    x = tf_keras.layers.Dropout(0.3)(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf_keras.layers.Dense(FEATURES, kernel_regularizer=l2, name="dense")(x)
    model = tf_keras.Model(inputs, outputs)
    path = str(tmp_path_factory.mktemp("hub") / "tf_keras_cnn")
    tf.saved_model.save(model, path)
    return path


@pytest.fixture(scope="session")
def text_hub_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    x = HashedEmbeddingBag(num_buckets=64, output_dim=12, name="embedding_bag")(inputs)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    outputs = keras.layers.Dense(FEATURES, activation="tanh", name="dense")(x)
    model = keras.Model(inputs, outputs, name="tiny_nnlm")
    return export_hub_module(model, str(tmp_path_factory.mktemp("hub") / "text_bag"))


@pytest.fixture(scope="session")
def tf1_hub_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("hub") / "tf1_cnn")
    with tf.Graph().as_default() as graph:
        images = tf.compat.v1.placeholder(tf.float32, [None, *IMAGE_SHAPE], name="images")
        kernel = tf.compat.v1.get_variable(
            "module/conv/kernel", [3, 3, 3, FEATURES], initializer=tf.compat.v1.glorot_uniform_initializer(seed=4)
        )
        features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(images, kernel, 1, "SAME")), axis=[1, 2], name="default")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            signature = tf.compat.v1.saved_model.predict_signature_def({"images": images}, {"default": features})
            builder.add_meta_graph_and_variables(session, [], signature_def_map={"default": signature})
            builder.save()
    with open(os.path.join(path, "tfhub_module.pb"), "wb") as handle:
        handle.write(TF1_MODULE_DEF)
    return path


@pytest.fixture(scope="session")
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """24 random 16x16x3 images in [0, 1] and labels of 3 classes (8 each)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 1.0, size=(24, *IMAGE_SHAPE)).astype("float32")
    labels = np.repeat(np.arange(3), 8).astype("int64")
    return images, labels


@pytest.fixture(scope="session")
def tiny_texts() -> tuple[np.ndarray, np.ndarray]:
    """12 short strings and labels of 2 classes."""
    texts = np.array(
        ["good movie", "great film", "loved it", "fine acting", "nice plot", "superb cast",
         "bad movie", "awful film", "hated it", "poor acting", "dull plot", "terrible cast"],
        dtype=object,
    )
    return texts, np.repeat(np.arange(2), 6).astype("int64")
