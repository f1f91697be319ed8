"""The serving export: signatures over tf.Examples, image bytes and texts; metadata travelling along."""

from __future__ import annotations

import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tlpipe.models.builders import build_transfer_model
from tlpipe.models.serving import export_for_serving, load_serving_metadata
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, ModelError

pytestmark = pytest.mark.quick

LABELS = ["cat", "dog", "bird"]


def transformed_image_example(pixels: np.ndarray, label: int = 0) -> bytes:
    """A transformed tf.Example as the transform component writes it."""
    feature = {
        fmt.IMAGE_RAW_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[pixels.tobytes()])),
        fmt.IMAGE_SHAPE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=list(pixels.shape))),
        fmt.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def text_example(text: str) -> bytes:
    feature = {fmt.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_model(keras_hub_module):
    keras.utils.set_random_seed(0)
    return build_transfer_model(keras_hub_module, 3, hidden_units=[5])


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def image_export(image_model, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("serving") / "model")
    path = export_for_serving(image_model, export_dir, label_names=LABELS, modality="image", image_size=(16, 16),
                              channels=3, config={"strategy": "fine_tune_all"}, history={"entries": [{"step": 3}]})
    return path, tf.saved_model.load(path)


def test_serving_default_answers_transformed_examples_like_the_model(image_model, image_export, pixels):
    path, loaded = image_export
    expected = image_model.predict(pixels.astype("float32") / 255.0, verbose=0)
    outputs = loaded.signatures["serving_default"](examples=tf.constant([transformed_image_example(p) for p in pixels]))

    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert outputs["probabilities"].dtype == tf.float32
    np.testing.assert_array_equal(outputs["class_ids"].numpy(), expected.argmax(axis=1))
    assert outputs["class_ids"].dtype == tf.int64
    assert [name.decode() for name in outputs["class_names"].numpy()] == [LABELS[i] for i in expected.argmax(axis=1)]


def test_signatures_declare_their_inputs_and_outputs(image_export):
    _, loaded = image_export
    assert set(loaded.signatures) == {"serving_default", "serving_image_bytes", "serving_features", "serving_pixels"}
    pixels = loaded.signatures["serving_pixels"]
    assert pixels.structured_input_signature[1]["pixels"] == tf.TensorSpec([None, 16, 16, 3], tf.float32, "pixels")
    assert list(pixels.structured_outputs) == ["probabilities"]  # no string lookup: LiteRT converts it
    features = loaded.signatures["serving_features"]
    assert features.structured_input_signature[1]["examples"] == tf.TensorSpec([None], tf.string, "examples")
    assert features.structured_outputs["features"].dtype == tf.float32
    default = loaded.signatures["serving_default"]
    assert default.structured_input_signature[1]["examples"] == tf.TensorSpec([None], tf.string, "examples")
    outputs = default.structured_outputs
    assert outputs["probabilities"].shape.as_list() == [None, 3]
    assert (outputs["class_ids"].dtype, outputs["class_names"].dtype) == (tf.int64, tf.string)


def test_serving_pixels_takes_raw_pixel_values(image_model, image_export, pixels):
    _, loaded = image_export
    outputs = loaded.signatures["serving_pixels"](pixels=tf.constant(pixels, tf.float32))
    expected = image_model.predict(pixels.astype("float32") / 255.0, verbose=0)
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_serving_image_bytes_decodes_converts_and_resizes(image_model, image_export, pixels):
    _, loaded = image_export
    serve = loaded.signatures["serving_image_bytes"]
    expected = image_model.predict(pixels.astype("float32") / 255.0, verbose=0)
    outputs = serve(images=tf.constant([png(p) for p in pixels]))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)

    # a grey PNG becomes RGB; a larger one is resized to the model's 16x16
    grey = pixels[0, :, :, :1]
    as_rgb = image_model.predict(np.repeat(grey, 3, axis=-1)[None].astype("float32") / 255.0, verbose=0)
    np.testing.assert_allclose(serve(images=tf.constant([png(grey)]))["probabilities"].numpy(), as_rgb,
                               rtol=1e-5, atol=1e-6)
    large = np.kron(pixels[1], np.ones((2, 2, 1), dtype=np.uint8))  # 32x32, each pixel doubled
    resized = serve(images=tf.constant([png(large)]))["probabilities"].numpy()
    assert resized.shape == (1, 3) and np.isclose(resized.sum(), 1.0)


def test_label_names_config_and_history_travel_with_the_model(image_export):
    path, _ = image_export
    with open(os.path.join(path, "assets", "label_names.txt")) as handle:
        assert handle.read().splitlines() == LABELS
    metadata = load_serving_metadata(path)
    assert metadata["label_names"] == LABELS
    assert (metadata["modality"], metadata["image_size"], metadata["channels"]) == ("image", [16, 16], 3)
    assert metadata["config"] == {"strategy": "fine_tune_all"}
    assert metadata["history"] == {"entries": [{"step": 3}]}
    assert metadata["signatures"] == ["serving_default", "serving_features", "serving_image_bytes", "serving_pixels"]


def test_serving_features_returns_the_classifier_base_features(image_model, image_export, pixels):
    _, loaded = image_export
    served = loaded.signatures["serving_features"](
        examples=tf.constant([transformed_image_example(p) for p in pixels]))["features"].numpy()
    expected = keras.Model(image_model.inputs, image_model.features)(pixels.astype(np.float32) / 255.0).numpy()
    assert served.shape == expected.shape and served.shape[0] == len(pixels)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_an_example_of_the_wrong_geometry_is_rejected(image_export):
    _, loaded = image_export
    wrong = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image/shape differs.*\[16, 16, 3\]"):
        loaded.signatures["serving_default"](examples=tf.constant([transformed_image_example(wrong)]))


def test_text_model_serves_examples_and_raw_texts(text_hub_module, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_transfer_model(text_hub_module, 2)
    path = export_for_serving(model, str(tmp_path / "text"), label_names=["neg", "pos"], modality="text")
    loaded = tf.saved_model.load(path)
    texts = ["good movie", "awful film"]
    expected = model.predict(tf.constant(texts), verbose=0)

    by_example = loaded.signatures["serving_default"](examples=tf.constant([text_example(t) for t in texts]))
    np.testing.assert_allclose(by_example["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    # raw texts are normalised like the transform did: lower case, one space, no padding
    by_text = loaded.signatures["serving_text"](texts=tf.constant(["  GOOD \t movie ", "Awful  FILM"]))
    np.testing.assert_allclose(by_text["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert set(loaded.signatures) == {"serving_default", "serving_text", "serving_features"}
    assert load_serving_metadata(path)["image_size"] is None


def test_logits_get_a_softmax(tmp_path):
    inputs = keras.Input((4, 4, 1))
    features = keras.layers.Flatten(name="feature_extractor")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="classifier")(features))
    model.get_layer("classifier").set_weights([np.full((16, 2), [1.0, -1.0], "float32"), np.zeros(2, "float32")])
    loaded = tf.saved_model.load(export_for_serving(
        model, str(tmp_path / "logits"), label_names=["a", "b"], modality="image", image_size=(4, 4), channels=1))
    example = transformed_image_example(np.full((4, 4, 1), 255, dtype=np.uint8))
    probabilities = loaded.signatures["serving_default"](examples=tf.constant([example]))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, tf.nn.softmax([[16.0, -16.0]]).numpy(), rtol=1e-5)


def test_export_replaces_an_earlier_export(image_model, tmp_path):
    export_dir = str(tmp_path / "model")
    export_for_serving(image_model, export_dir, label_names=LABELS, modality="image", image_size=(16, 16), channels=3)
    export_for_serving(image_model, export_dir, label_names=["x", "y", "z"], modality="image", image_size=(16, 16),
                       channels=3)
    assert load_serving_metadata(export_dir)["label_names"] == ["x", "y", "z"]
    assert [name for name in os.listdir(tmp_path) if name != "model"] == []  # no temporary folders left


def test_bad_export_requests_fail_clearly(image_model, tmp_path):
    with pytest.raises(ModelError, match="outputs 3 classes but 2 label names"):
        export_for_serving(image_model, str(tmp_path / "a"), label_names=["x", "y"], modality="image",
                           image_size=(16, 16), channels=3)
    with pytest.raises(ConfigError, match="image_size"):
        export_for_serving(image_model, str(tmp_path / "b"), label_names=LABELS, modality="image", channels=3)
    with pytest.raises(ConfigError, match="modality.*'audio'"):
        export_for_serving(image_model, str(tmp_path / "c"), label_names=LABELS, modality="audio")
    with pytest.raises(ConfigError, match="label_names.*line breaks"):
        export_for_serving(image_model, str(tmp_path / "d"), label_names=["x", "y\nz", "w"], modality="image",
                           image_size=(16, 16), channels=3)
    assert not os.path.exists(tmp_path / "a")
    with pytest.raises(ModelError, match="not a tlpipe serving export"):
        load_serving_metadata(str(tmp_path))
