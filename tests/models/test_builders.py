"""Model builders: small CNN, transfer model (frozen hub base + head), baseline (same head, random base)."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from tlpipe.models import HubFeatureVector, build_baseline_model, build_small_cnn, build_transfer_model, export_hub_module
from tlpipe.models._metadata import read_module_metadata, write_module_metadata
from tlpipe.models.text_layers import HashedEmbeddingBag
from tlpipe.models.plumbing.errors import ModelError

pytestmark = pytest.mark.quick


def test_small_cnn_is_a_feature_extractor():
    model = build_small_cnn((28, 28, 1), filters=(4, 8))
    assert model.name == "small_cnn"
    assert tuple(model.outputs[0].shape) == (None, 8)
    assert [layer.name for layer in model.layers[1:]] == [
        "block1_conv", "block1_bn", "block1_relu", "block1_pool", "block2_conv", "block2_bn", "block2_relu", "avg_pool",
    ]
    with pytest.raises(ModelError, match=r"input_shape \(height, width, channels\); received \(28, 28\)"):
        build_small_cnn((28, 28))
    with pytest.raises(ModelError, match="positive integers; received \\[8, 0\\]"):
        build_small_cnn((28, 28, 1), filters=(8, 0))


def test_transfer_model_puts_a_head_on_a_frozen_base(keras_hub_module, tiny_images):
    model = build_transfer_model(keras_hub_module, 3, dropout=0.5, hidden_units=(16,), name="candidate")
    base = model.get_layer("feature_extractor")
    assert isinstance(base, HubFeatureVector) and not base.trainable
    assert model.name == "candidate"
    assert tuple(model.inputs[0].shape) == (None, 16, 16, 3) and model.inputs[0].dtype == "float32"
    assert [layer.name for layer in model.layers[2:]] == ["head_dropout", "head_dense_1", "head_dropout_1", "classifier"]
    assert {id(w) for w in model.trainable_weights}.isdisjoint({id(w) for w in base.weights})
    probabilities = model.predict(tiny_images[0][:4], verbose=0)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("classifier").activation is keras.activations.softmax


def test_transfer_model_needs_a_known_input_size(tmp_path):
    inputs = keras.Input(shape=(None, None, 3))
    open_model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    path = export_hub_module(open_model, str(tmp_path / "open"))
    with pytest.raises(ModelError, match="input size of .* is unknown .* pass input_shape"):
        build_transfer_model(path, 2)
    model = build_transfer_model(path, 2, input_shape=(12, 12, 3))
    assert tuple(model.inputs[0].shape) == (None, 12, 12, 3)


def test_transfer_model_rejects_inputs_the_module_cannot_take(keras_hub_module):
    with pytest.raises(ModelError, match=r"does not accept float32 inputs of shape \(None, 20, 20, 3\)"):
        build_transfer_model(keras_hub_module, 2, input_shape=(20, 20, 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "num_classes must be an integer >= 2; received 1"),
        ({"num_classes": 3, "dropout": 1.0}, r"dropout must be in \[0, 1\); received 1.0"),
        ({"num_classes": 3, "hidden_units": (8, 0)}, r"hidden_units must be positive integers; received \[8, 0\]"),
    ],
)
def test_head_options_are_checked(keras_hub_module, kwargs, message):
    with pytest.raises(ModelError, match=message):
        build_transfer_model(keras_hub_module, **kwargs)
    with pytest.raises(ModelError, match=message):
        build_baseline_model(keras_hub_module, **kwargs)


def test_baseline_rebuilds_the_same_architecture_with_fresh_weights(keras_hub_module, keras_feature_extractor, tiny_images):
    model = build_baseline_model(keras_hub_module, 3, dropout=0.5, hidden_units=(16,))
    assert model.baseline_architecture == "same"
    assert "rebuilt the architecture recorded" in model.baseline_reason
    base = model.get_layer("feature_extractor")
    assert isinstance(base, keras.Model) and base.trainable
    assert [v.path for v in base.weights] == [v.path for v in keras_feature_extractor.weights]
    assert [v.shape for v in base.weights] == [v.shape for v in keras_feature_extractor.weights]
    kernel, source_kernel = base.get_layer("conv1").kernel.numpy(), keras_feature_extractor.get_layer("conv1").kernel.numpy()
    assert not np.allclose(kernel, source_kernel)
    # The same head as the transfer model.
    transfer = build_transfer_model(keras_hub_module, 3, dropout=0.5, hidden_units=(16,))
    assert [layer.name for layer in model.layers[2:]] == [layer.name for layer in transfer.layers[2:]]
    assert model.predict(tiny_images[0][:2], verbose=0).shape == (2, 3)


def test_baseline_falls_back_to_the_small_cnn_when_the_architecture_is_unknown(tf_keras_hub_module):
    model = build_baseline_model(tf_keras_hub_module, 3, cnn_filters=(4, 8))
    assert model.baseline_architecture == "small_cnn"
    assert "not recorded" in model.baseline_reason and "[4, 8]" in model.baseline_reason
    assert tuple(model.inputs[0].shape) == (None, 16, 16, 3)
    assert model.get_layer("feature_extractor").get_layer("block2_conv").filters == 8


def test_baseline_small_cnn_on_request(keras_hub_module):
    model = build_baseline_model(keras_hub_module, 3, architecture="small_cnn", cnn_filters=(4,))
    assert model.baseline_architecture == "small_cnn"
    assert model.baseline_reason.startswith("architecture 'small_cnn' requested")
    with pytest.raises(ModelError, match="architecture 'deep' is not one of same, small_cnn"):
        build_baseline_model(keras_hub_module, 3, architecture="deep")


def test_baseline_small_cnn_sees_the_images_resized_inside_the_model(keras_hub_module, tiny_images):
    model = build_baseline_model(keras_hub_module, 3, architecture="small_cnn", cnn_filters=(4,), resize_to=(8, 8))
    assert tuple(model.inputs[0].shape) == (None, 16, 16, 3)  # it still takes the data's size
    network = model.get_layer("feature_extractor")
    assert tuple(network.get_layer("small_cnn").inputs[0].shape) == (None, 8, 8, 3)
    assert model.baseline_reason.endswith("on the images resized to [8, 8]")
    # The resize is area averaging: a 2x2-constant image resized to half its size keeps its values.
    probe = keras.Model(network.inputs, network.get_layer("resize").output)
    blocks = np.kron(tiny_images[0][:2, ::2, ::2], np.ones((1, 2, 2, 1), "float32"))
    np.testing.assert_allclose(probe(blocks).numpy(), tiny_images[0][:2, ::2, ::2], atol=1e-6)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(*tiny_images, epochs=1, verbose=0)


def test_text_baselines_train_on_strings(text_hub_module, tiny_texts):
    same = build_baseline_model(text_hub_module, 2)
    assert same.baseline_architecture == "same" and same.inputs[0].dtype == "string"
    bag = build_baseline_model(text_hub_module, 2, architecture="small_cnn")
    assert bag.baseline_architecture == "embedding_bag"
    assert isinstance(bag.get_layer("feature_extractor").layers[0], HashedEmbeddingBag)
    for model in (same, bag):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        before = model.get_layer("feature_extractor").weights[0].numpy().copy()
        model.fit(*tiny_texts, epochs=1, verbose=0)
        assert not np.array_equal(before, model.get_layer("feature_extractor").weights[0].numpy())


def test_baseline_for_a_preset_needs_no_download():
    image = build_baseline_model("mobilenet_v2_100_224", 5, cnn_filters=(4,))
    assert image.baseline_architecture == "small_cnn" and tuple(image.inputs[0].shape) == (None, 224, 224, 3)
    assert "'mobilenet_v2_100_224' is not recorded" in image.baseline_reason
    text = build_baseline_model("nnlm_en_dim50", 2)
    assert text.baseline_architecture == "embedding_bag" and text.inputs[0].dtype == "string"


def test_baseline_same_architecture_keeps_its_input_shape(keras_hub_module):
    with pytest.raises(ModelError, match=r"differs from the recorded architecture's input shape \(16, 16, 3\)"):
        build_baseline_model(keras_hub_module, 3, input_shape=(32, 32, 3))


def test_baseline_falls_back_when_the_recorded_architecture_cannot_be_rebuilt(tmp_path, keras_hub_module):
    copy = shutil.copytree(keras_hub_module, tmp_path / "module")
    metadata = read_module_metadata(str(copy))
    metadata["architecture"].update(module="tlpipe_no_such_package", class_name="NoSuchNetwork", registered_name=None)
    write_module_metadata(str(copy), metadata)
    model = build_baseline_model(str(copy), 3, cnn_filters=(4,))
    assert model.baseline_architecture == "small_cnn"
    assert "cannot be rebuilt here" in model.baseline_reason and "NoSuchNetwork" in model.baseline_reason


def test_classifier_keeps_its_base_and_features_and_round_trips_its_config(keras_hub_module):
    from tlpipe.models.builders import Classifier
    from tlpipe.models._classifier import base_layer, head_model

    model = build_baseline_model(keras_hub_module, 3, architecture="small_cnn", cnn_filters=[4, 8], dropout=0.1,
                                 hidden_units=[5])
    assert isinstance(model, Classifier) and base_layer(model) is model.base
    head = head_model(model)
    assert head.inputs[0].shape[1:] == model.base.outputs[0].shape[1:]
    config = model.get_config()
    assert (config["num_classes"], config["dropout"], config["hidden_units"]) == (3, 0.1, [5])
    clone = Classifier.from_config(config)
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]
    assert clone.get_config() == config
