"""export_hub_module: a TF2 reusable SavedModel that hub.load and HubFeatureVector read back identically."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models import HubFeatureVector, export_hub_module
from tlpipe.models._metadata import read_module_metadata
from tlpipe.models._tfhub import hub
from tlpipe.models.plumbing.errors import ModelError

pytestmark = pytest.mark.quick


def test_published_module_has_the_reusable_savedmodel_api(keras_hub_module, keras_feature_extractor, tiny_images):
    images = tiny_images[0][:6]
    module = hub.load(keras_hub_module)
    expected = keras_feature_extractor(images, training=False).numpy()
    np.testing.assert_allclose(module(images, training=False).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(module(images).numpy(), expected, atol=1e-6)
    served = module.signatures["serving_default"](inputs=tf.constant(images))["default"]
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-6)
    # training=True runs dropout and batch norm in training mode.
    assert np.abs(module(images, training=True).numpy() - expected).max() > 1e-3
    names = [v.name for v in module.variables]
    assert [v.name for v in module.trainable_variables] == [
        f"{layer}/{weight}:0" for layer in ("conv1", "bn1", "conv2", "bn2")
        for weight in (("kernel", "bias") if layer.startswith("conv") else ("gamma", "beta"))
    ]
    assert {"bn1/moving_mean:0", "bn2/moving_variance:0"} <= set(names)
    kernel = keras_feature_extractor.get_layer("conv1").kernel.numpy()
    [l2_loss] = module.regularization_losses
    np.testing.assert_allclose(float(l2_loss()), 1e-2 * float(np.sum(kernel**2)), rtol=1e-5)


def test_published_module_loads_in_the_layer_with_identical_outputs(keras_hub_module, tiny_images):
    images = tiny_images[0]
    layer = HubFeatureVector(keras_hub_module)
    np.testing.assert_array_equal(layer(images).numpy(), hub.load(keras_hub_module)(images, training=False).numpy())


def test_metadata_records_input_output_and_architecture(keras_hub_module, text_hub_module):
    image_meta = read_module_metadata(keras_hub_module)
    assert image_meta["input_size"] == [16, 16, 3]
    assert image_meta["input_dtype"] == "float32"
    assert image_meta["output_size"] == 8
    assert image_meta["name"] == "tiny_cnn"
    assert image_meta["architecture"]["class_name"] == "Functional"
    rebuilt = keras.saving.deserialize_keras_object(image_meta["architecture"])
    assert [layer.name for layer in rebuilt.layers][1:] == ["conv1", "bn1", "relu1", "dropout", "conv2", "bn2", "relu2", "pool"]
    text_meta = read_module_metadata(text_hub_module)
    assert text_meta["input_size"] is None and text_meta["input_dtype"] == "string"


def test_text_module_answers_strings(text_hub_module):
    module = hub.load(text_hub_module)
    features = module(tf.constant(["a fine film", "", "A FINE film"]), training=False).numpy()
    assert features.shape == (3, 8)
    np.testing.assert_allclose(features[0], features[2], atol=1e-6)  # lower-cased before hashing


def test_open_input_shape_takes_the_declared_input_size(tmp_path, tiny_images):
    inputs = keras.Input(shape=(None, None, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, outputs)
    path = export_hub_module(model, str(tmp_path / "open"), input_size=(12, 12))
    assert read_module_metadata(path)["input_size"] == [12, 12, 3]
    assert HubFeatureVector(path).input_size == (12, 12, 3)
    unsized = export_hub_module(model, str(tmp_path / "unsized"))
    assert HubFeatureVector(unsized).input_size is None
    # Any size still runs: the signature keeps the open dimensions.
    assert hub.load(path)(tiny_images[0][:2], training=False).shape == (2, 4)


def test_export_is_atomic_and_replaces_an_earlier_version(tmp_path, keras_feature_extractor):
    target = tmp_path / "module"
    first = export_hub_module(keras_feature_extractor, str(target))
    second = export_hub_module(keras_feature_extractor, str(target))
    assert first == second == str(target)
    assert sorted(os.listdir(tmp_path)) == ["module"]
    assert os.path.isfile(target / "saved_model.pb") and read_module_metadata(str(target)) is not None


def _flatten(shape: tuple[int, ...]) -> keras.Model:
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten()])


@pytest.mark.parametrize(
    ("make_model", "input_size", "message"),
    [
        (lambda: "not a model", None, "needs a keras.Model; received str"),
        (
            lambda: keras.Model([a := keras.Input((4,)), b := keras.Input((4,))], keras.layers.Add()([a, b])),
            None,
            "one input and one output; model .* has 2 inputs",
        ),
        (lambda: _flatten((8, 8, 3)), (9, 9), r"does not fit the model's input shape \(8, 8, 3\)"),
        (lambda: _flatten((8, 8, 3)), (8,), r"must be \(height, width\)"),
    ],
)
def test_invalid_exports_fail_clearly_and_write_nothing(tmp_path, make_model, input_size, message):
    with pytest.raises(ModelError, match=message):
        export_hub_module(make_model(), str(tmp_path / "module"), input_size=input_size)
    assert os.listdir(tmp_path) == []
