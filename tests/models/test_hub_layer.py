"""HubFeatureVector on tiny local hub modules: adoption without copies, trainable states, policies, saving."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models import HubFeatureVector, build_transfer_model, export_hub_module
from tlpipe.models._tfhub import hub
from tlpipe.models.plumbing.errors import ModelError

pytestmark = pytest.mark.quick

BN_STATISTICS = ("bn1/moving_mean", "bn1/moving_variance", "bn2/moving_mean", "bn2/moving_variance")


def snapshot(layer: HubFeatureVector) -> dict[str, np.ndarray]:
    """The module's own variables (not the layer's view of them), by path."""
    return {path: variable.numpy().copy() for path, variable in zip(layer.variable_paths, layer.module.variables)}


def changed(before: dict[str, np.ndarray], layer: HubFeatureVector) -> set[str]:
    after = snapshot(layer)
    return {path for path in before if not np.array_equal(before[path], after[path])}


def fit(model: keras.Model, data: tuple[np.ndarray, np.ndarray], epochs: int = 2, learning_rate: float = 0.05) -> None:
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="sparse_categorical_crossentropy")
    model.fit(*data, batch_size=8, epochs=epochs, verbose=0)


@pytest.fixture
def transfer(keras_hub_module: str) -> tuple[keras.Model, HubFeatureVector]:
    keras.utils.set_random_seed(0)
    model = build_transfer_model(keras_hub_module, 3, dropout=0.0)
    return model, model.get_layer("feature_extractor")


def test_layer_computes_what_the_module_and_its_source_compute(keras_hub_module, keras_feature_extractor, tiny_images):
    images = tiny_images[0][:5]
    layer = HubFeatureVector(keras_hub_module)
    loaded = hub.load(keras_hub_module)
    np.testing.assert_allclose(layer(images).numpy(), loaded(images, training=False).numpy(), atol=1e-6)
    np.testing.assert_allclose(layer(images).numpy(), keras_feature_extractor(images, training=False).numpy(), atol=1e-6)
    assert layer.input_size == (16, 16, 3)
    assert layer.module_input_dtype == "float32"


def test_layer_adopts_the_module_variables_without_copies(keras_hub_module):
    layer = HubFeatureVector(keras_hub_module)
    assert len(layer.weights) == len(layer.module.variables)
    assert all(weight.value is variable for weight, variable in zip(layer._module_weights, layer.module.variables))
    assert [b for b, _ in layer.blocks()] == ["conv1", "bn1", "conv2", "bn2"]


def test_frozen_base_leaves_module_weights_bit_identical(transfer, tiny_images):
    model, layer = transfer
    assert not layer.trainable and layer.trainable_paths() == []
    assert [w.name for w in model.trainable_weights] == ["kernel", "bias"]
    before = snapshot(layer)
    head_before = model.get_layer("classifier").kernel.numpy().copy()
    fit(model, tiny_images)
    assert changed(before, layer) == set()
    assert not np.array_equal(head_before, model.get_layer("classifier").kernel.numpy())


def test_unfrozen_base_trains_the_module_itself(transfer, tiny_images):
    model, layer = transfer
    images = tiny_images[0][:6]
    outputs_before = layer.module(images, training=False).numpy()
    before = snapshot(layer)
    trainable = layer.set_trainable(True)
    assert trainable == [
        "conv1/kernel", "conv1/bias", "bn1/gamma", "bn1/beta", "conv2/kernel", "conv2/bias", "bn2/gamma", "bn2/beta",
    ]
    fit(model, tiny_images)
    assert changed(before, layer) == set(trainable)
    # The module's own restored function now computes different features, and the layer is that function.
    outputs_after = layer.module(images, training=False).numpy()
    assert np.abs(outputs_after - outputs_before).max() > 1e-4
    np.testing.assert_allclose(layer(images).numpy(), outputs_after, atol=1e-6)


def test_refrozen_base_stays_frozen(transfer, tiny_images):
    model, layer = transfer
    layer.set_trainable(True)
    fit(model, tiny_images, epochs=1)
    assert layer.set_trainable(False) == []
    before = snapshot(layer)
    fit(model, tiny_images)
    assert changed(before, layer) == set()
    # Plain Keras assignments take effect too, also after a partial unfreeze.
    layer.set_trainable(True, top_n=1)
    layer.trainable = True
    assert len(layer.trainable_paths()) == 8
    layer.trainable = False
    assert layer.trainable_paths() == [] and model.get_layer("classifier").trainable


def test_inference_policy_keeps_batch_norm_statistics_while_fine_tuning(transfer, tiny_images):
    model, layer = transfer
    layer.set_trainable(True)
    before = snapshot(layer)
    fit(model, tiny_images)
    assert not changed(before, layer) & set(BN_STATISTICS)
    assert "bn1/gamma" in changed(before, layer)


def test_training_policy_updates_batch_norm_statistics(keras_hub_module, tiny_images):
    keras.utils.set_random_seed(0)
    model = build_transfer_model(keras_hub_module, 3, training_policy="training")
    layer = model.get_layer("feature_extractor")
    layer.set_trainable(True)
    before = snapshot(layer)
    fit(model, tiny_images, epochs=1)
    assert set(BN_STATISTICS) <= changed(before, layer)
    # A frozen base runs in inference mode under this policy as well.
    layer.set_trainable(False)
    before = snapshot(layer)
    fit(model, tiny_images, epochs=1)
    assert changed(before, layer) == set()


def test_unfreezing_the_top_blocks_trains_only_them(transfer, tiny_images):
    model, layer = transfer
    assert layer.set_trainable(True, top_n=2) == ["conv2/kernel", "conv2/bias", "bn2/gamma", "bn2/beta"]
    before = snapshot(layer)
    fit(model, tiny_images)
    assert changed(before, layer) == {"conv2/kernel", "conv2/bias", "bn2/gamma", "bn2/beta"}


def test_unfreezing_by_pattern_trains_only_matching_variables(transfer, tiny_images):
    model, layer = transfer
    assert layer.set_trainable(True, pattern=r"^conv\d/kernel$") == ["conv1/kernel", "conv2/kernel"]
    before = snapshot(layer)
    fit(model, tiny_images)
    assert changed(before, layer) == {"conv1/kernel", "conv2/kernel"}


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"top_n": 5}, "top_n=5 blocks requested, but hub module .* has 4 fine-tunable blocks"),
        ({"top_n": 0}, "allowed: an integer from 1 to 4"),
        ({"pattern": "^head/"}, "pattern '\\^head/' matches none .*conv1/kernel"),
        ({"pattern": "conv("}, "not a valid regular expression"),
        ({"top_n": 1, "pattern": "conv"}, "top_n or pattern, not both"),
    ],
)
def test_impossible_unfreeze_requests_fail_clearly(keras_hub_module, request_kwargs, message):
    layer = HubFeatureVector(keras_hub_module)
    with pytest.raises(ModelError, match=message):
        layer.set_trainable(True, **request_kwargs)
    assert layer.trainable_paths() == []


def test_module_without_trainable_variables_cannot_be_fine_tuned(tmp_path, keras_feature_extractor):
    frozen = keras.models.clone_model(keras_feature_extractor)
    frozen.trainable = False
    path = export_hub_module(frozen, str(tmp_path / "frozen"))
    layer = HubFeatureVector(path)
    with pytest.raises(ModelError, match="lists no trainable_variables"):
        layer.set_trainable(True)


@pytest.mark.parametrize("make_handle", [lambda tmp: str(tmp / "missing"), lambda tmp: str(tmp), lambda tmp: "   "])
def test_bad_handle_names_the_handle_and_the_reason(tmp_path, make_handle):
    handle = make_handle(tmp_path)
    with pytest.raises(ModelError) as raised:
        HubFeatureVector(handle)
    message = str(raised.value)
    assert repr(handle) in message
    assert "does not exist" in message or "saved_model.pb" in message or "non-empty string" in message


def test_tf1_module_loads_for_frozen_use_only(tf1_hub_module, tiny_images):
    layer = HubFeatureVector(tf1_hub_module)
    assert layer.is_tf1_module and layer.signature_name == "default" and layer.input_size == (16, 16, 3)
    images = tiny_images[0][:4]
    expected = layer.module.signatures["default"](images=tf.constant(images))["default"].numpy()
    np.testing.assert_allclose(layer(images).numpy(), expected, atol=1e-6)
    with pytest.raises(ModelError, match="legacy TF1 hub format"):
        layer.set_trainable(True)
    with pytest.raises(ModelError, match="legacy TF1 hub format"):
        HubFeatureVector(tf1_hub_module, trainable=True)
    model = build_transfer_model(tf1_hub_module, 3)
    before = snapshot(model.get_layer("feature_extractor"))
    fit(model, tiny_images, epochs=1)
    assert changed(before, model.get_layer("feature_extractor")) == set()


def test_signature_only_savedmodel_is_usable_frozen(tmp_path, keras_feature_extractor, tiny_images):
    path = str(tmp_path / "exported")
    keras_feature_extractor.export(path, format="tf_saved_model", verbose=False)
    layer = HubFeatureVector(path)
    assert layer.signature_name == "serving_default" and not layer.is_tf1_module
    assert layer.input_size == (16, 16, 3)
    images = tiny_images[0][:4]
    np.testing.assert_allclose(layer(images).numpy(), keras_feature_extractor(images, training=False).numpy(), atol=1e-6)
    with pytest.raises(ModelError, match="only the 'serving_default' signature, which can only be used frozen"):
        layer.set_trainable(True)


def test_tf_keras_module_regularization_losses_count_only_when_trainable(tf_keras_hub_module, tiny_images):
    keras.utils.set_random_seed(0)
    model = build_transfer_model(tf_keras_hub_module, 3)
    layer = model.get_layer("feature_extractor")
    assert [name for name, _ in layer.blocks()] == ["conv1", "bn1", "dense"]
    images = tiny_images[0][:4]
    np.testing.assert_allclose(
        layer(images).numpy(), hub.load(tf_keras_hub_module)(images, training=False).numpy(), atol=1e-6
    )
    model(images)
    assert model.losses == []
    layer.set_trainable(True)
    model(images)
    expected = sorted(float(loss()) for loss in layer.module.regularization_losses)
    assert len(expected) == 2 and min(expected) > 0
    np.testing.assert_allclose(sorted(float(loss) for loss in model.losses), expected, rtol=1e-6)
    before = snapshot(layer)
    fit(model, tiny_images, epochs=1)
    assert {"conv1/kernel", "dense/kernel"} <= changed(before, layer)


def test_config_mirrors_init_and_rebuilds_the_layer(keras_hub_module, tiny_images):
    layer = HubFeatureVector(keras_hub_module, training_policy="training", input_shape=(16, 16, 3), name="base")
    config = layer.get_config()
    for key, value in {
        "handle": keras_hub_module, "trainable": False, "training_policy": "training", "arguments": None,
        "output_key": None, "input_shape": [16, 16, 3], "input_dtype": "float32", "preprocessor": None, "name": "base",
    }.items():
        assert config[key] == value, key
    clone = HubFeatureVector.from_config(config)
    images = tiny_images[0][:3]
    np.testing.assert_allclose(clone(images).numpy(), layer(images).numpy(), atol=1e-6)
    with pytest.raises(ModelError, match="training_policy 'sometimes'"):
        HubFeatureVector(keras_hub_module, training_policy="sometimes")


def test_keras_file_round_trip_keeps_fine_tuned_predictions(transfer, tiny_images, tmp_path):
    model, layer = transfer
    layer.set_trainable(True)
    fit(model, tiny_images, epochs=1)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    images = tiny_images[0]
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    assert isinstance(reloaded.get_layer("feature_extractor"), HubFeatureVector)


def test_savedmodel_export_serves_the_same_predictions(transfer, tiny_images, tmp_path):
    model, layer = transfer
    layer.set_trainable(True)
    fit(model, tiny_images, epochs=1)
    path = str(tmp_path / "exported")
    model.export(path, format="tf_saved_model", verbose=False)
    exported = tf.saved_model.load(path)  # keep a reference: its functions use its variables
    served = exported.serve(tf.constant(tiny_images[0]))
    np.testing.assert_allclose(served.numpy(), model.predict(tiny_images[0], verbose=0), atol=1e-6)


def test_text_module_takes_strings(text_hub_module, tiny_texts):
    layer = HubFeatureVector(text_hub_module)
    assert layer.module_input_dtype == "string" and layer.input_size is None
    texts = tf.constant(tiny_texts[0].astype(str))
    np.testing.assert_allclose(layer(texts).numpy(), layer.module(texts, training=False).numpy(), atol=1e-6)
    keras.utils.set_random_seed(0)
    model = build_transfer_model(text_hub_module, 2)
    assert model.inputs[0].dtype == "string"
    model.get_layer("feature_extractor").set_trainable(True)
    before = snapshot(model.get_layer("feature_extractor"))
    fit(model, (tiny_texts[0], tiny_texts[1]), epochs=1)
    assert "embedding_bag/embeddings" in changed(before, model.get_layer("feature_extractor"))
    assert model.predict(tiny_texts[0], verbose=0).shape == (12, 2)


class _Preprocessor(tf.Module):
    """BERT-style preprocessing: strings -> a dict of fixed-length token ids."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
        tokens = tf.strings.split(tf.strings.lower(text))
        ids = tf.strings.to_hash_bucket_fast(tokens, 50) + 1
        return {"input_word_ids": ids.to_tensor(shape=[None, 4]), "input_mask": tf.ones_like(ids).to_tensor(shape=[None, 4])}


class _Encoder(tf.Module):
    """BERT-style encoder: a dict of token ids -> {"pooled_output", "sequence_output"}; `scale` is an extra argument."""

    def __init__(self):
        super().__init__()
        self.embeddings = tf.Variable(tf.random.stateless_uniform([51, 6], seed=[1, 2]), name="embeddings")

    @tf.function
    def __call__(self, inputs, training=False, scale=1.0):
        sequence = tf.gather(self.embeddings, inputs["input_word_ids"]) * tf.cast(inputs["input_mask"], tf.float32)[..., None]
        return {"pooled_output": scale * tf.reduce_mean(sequence, axis=1), "sequence_output": sequence}


def _save_bert_like(tmp_path) -> tuple[str, str]:
    preprocessor_dir, encoder_dir = str(tmp_path / "preprocess"), str(tmp_path / "encoder")
    tf.saved_model.save(_Preprocessor(), preprocessor_dir)
    encoder = _Encoder()
    spec = {"input_word_ids": tf.TensorSpec([None, 4], tf.int64), "input_mask": tf.TensorSpec([None, 4], tf.int64)}
    for training in (False, True):
        encoder.__call__.get_concrete_function(spec, training=training, scale=2.0)
    tf.saved_model.save(encoder, encoder_dir)
    return preprocessor_dir, encoder_dir


def test_preprocessor_arguments_and_output_key(tmp_path, tiny_texts):
    preprocessor_dir, encoder_dir = _save_bert_like(tmp_path)
    texts = tf.constant(tiny_texts[0].astype(str))
    layer = HubFeatureVector(
        encoder_dir, preprocessor=preprocessor_dir, output_key="pooled_output", arguments={"scale": 2.0}, input_dtype="string"
    )
    encoder, preprocessor = hub.load(encoder_dir), hub.load(preprocessor_dir)
    expected = encoder(preprocessor(texts), training=False, scale=2.0)["pooled_output"].numpy()
    np.testing.assert_allclose(layer(texts).numpy(), expected, atol=1e-6)
    model = build_transfer_model(
        encoder_dir, 2, preprocessor=preprocessor_dir, output_key="pooled_output", arguments={"scale": 2.0}, input_dtype="string"
    )
    assert model.predict(tiny_texts[0], verbose=0).shape == (12, 2)
    wrong = HubFeatureVector(encoder_dir, preprocessor=preprocessor_dir, output_key="cls", arguments={"scale": 2.0})
    with pytest.raises(ModelError, match=r"returns a dict with keys \['pooled_output', 'sequence_output'\]"):
        wrong(texts)
    assert os.path.isdir(layer.module_dir)
