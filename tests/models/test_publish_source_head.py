"""A published module may carry its source classifier as a second signature (for LEEP / NCE)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models._metadata import read_module_metadata
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.hub_layer import HubFeatureVector
from tlpipe.models.publish import export_hub_module, source_probabilities_function

pytestmark = pytest.mark.quick


def _source_classifier(features: keras.Model, shape: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input(shape=shape)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(features(inputs)))


def test_the_source_classifier_is_saved_beside_the_features(keras_feature_extractor, tiny_images, tmp_path):
    images, _ = tiny_images
    classifier = _source_classifier(keras_feature_extractor, images.shape[1:])
    module_dir = export_hub_module(keras_feature_extractor, str(tmp_path / "module"), source_classifier=classifier,
                                   source_classes=["a", "b", "c"])
    layer = HubFeatureVector(module_dir)
    probabilities = source_probabilities_function(layer.module)(tf.constant(images))
    np.testing.assert_allclose(probabilities, classifier(images, training=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(images), keras_feature_extractor(images, training=False), rtol=1e-5, atol=1e-6)
    metadata = read_module_metadata(module_dir)
    assert metadata["source_signature"] == "source_probabilities"
    assert metadata["source_classes"] == ["a", "b", "c"]


def test_a_module_without_one_has_no_source_function(keras_hub_module):
    assert source_probabilities_function(HubFeatureVector(keras_hub_module).module) is None


def test_a_classifier_over_other_inputs_is_refused(keras_feature_extractor, tmp_path):
    other = keras.Input(shape=(8, 8, 3))
    classifier = keras.Model(other, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(other)))
    with pytest.raises(ModelError, match="same inputs"):
        export_hub_module(keras_feature_extractor, str(tmp_path / "module"), source_classifier=classifier)
