"""AdaBN: only the batch-norm moving statistics change, and they become the target's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.adabn import adapt_batch_norm, batch_norm_statistics
from tlpipe.models.builders import build_small_cnn, build_transfer_model
from tlpipe.models.plumbing.errors import ModelError

pytestmark = pytest.mark.quick


def _snapshot(model):
    return {v.path: np.array(v.numpy()) for v in model.variables}


def _target_images():
    rng = np.random.default_rng(5)
    return np.clip(rng.normal(0.7, 0.2, size=(40, 16, 16, 3)), 0, 1).astype("float32")


def test_only_moving_statistics_change_and_they_match_the_target(keras_hub_module, keras_feature_extractor):
    model = build_transfer_model(keras_hub_module, 3)
    before = _snapshot(model)
    target = _target_images()
    adapted = adapt_batch_norm(model, tf.data.Dataset.from_tensor_slices((target, np.zeros(40, "int64"))),
                               batch_size=64)
    assert sorted(p.rsplit(".", 1)[-1] for p in adapted) == ["moving_mean"] * 2 + ["moving_variance"] * 2
    after = _snapshot(model)
    changed = sorted(path for path in before if not np.allclose(before[path], after[path]))
    assert changed == sorted(p for p in before if "moving_" in p)
    assert len(changed) == 4
    # bn1's new statistics are those of conv1's outputs on the target images (one batch holds them all).
    conv1 = keras.Model(keras_feature_extractor.inputs, keras_feature_extractor.get_layer("conv1").output)
    activations = conv1(target).numpy().reshape(-1, 6)
    bn1 = {p.rsplit(".", 1)[-1]: after[p] for p in after if "bn1" in p and "moving_" in p}
    np.testing.assert_allclose(bn1["moving_mean"], activations.mean(axis=0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn1["moving_variance"], activations.var(axis=0), rtol=1e-3, atol=1e-4)


def test_batches_are_averaged_like_one_pass(keras_hub_module):
    target = _target_images()
    results = []
    for batch_size in (40, 10):
        model = build_transfer_model(keras_hub_module, 3)
        adapt_batch_norm(model, target, batch_size=batch_size)
        results.append({v.path: v.numpy() for v in batch_norm_statistics(model.get_layer("feature_extractor"))})
    for path, value in results[0].items():
        # bn1 sees conv1 of the images: the mean of equal batches' means is the mean. (bn2 sits behind
        # dropout, which differs pass to pass; variances average only approximately.)
        if "bn1" in path and "moving_mean" in path:
            np.testing.assert_allclose(results[1][path], value, rtol=1e-3, atol=1e-4)


def test_a_keras_base_is_adapted_in_place():
    keras.utils.set_random_seed(0)
    network = build_small_cnn((16, 16, 3), [4], name="feature_extractor")
    before = _snapshot(network)
    adapt_batch_norm(network, _target_images())
    after = _snapshot(network)
    assert sorted(p for p in before if not np.allclose(before[p], after[p])) == [
        "block1_bn/moving_mean", "block1_bn/moving_variance"]


def test_a_base_without_batch_norm_is_refused(tf1_hub_module):
    model = build_transfer_model(tf1_hub_module, 3)
    with pytest.raises(ModelError, match="no batch-norm moving statistics"):
        adapt_batch_norm(model, _target_images())


@pytest.mark.parametrize("published", [False, True])
def test_a_base_with_dropout_below_its_batch_norm_gets_the_right_statistics(tmp_path, published):
    # EfficientNet-Lite drops residual branches in training mode: the passes that measure each layer's
    # momentum must draw the same masks, else the momentum (and every statistic scaled by it) is off.
    from tlpipe.models.publish import export_hub_module

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    # large activations (as deep in a real network): a small difference between two passes' batch
    # statistics is then a large error in the momentum
    conv = keras.layers.Conv2D(6, 3, kernel_initializer=keras.initializers.RandomNormal(5.0, 20.0), name="conv1")(inputs)
    x = keras.layers.Dropout(0.5, name="drop")(conv)
    x = keras.layers.BatchNormalization(momentum=0.99, name="bn1")(x)
    network = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="feature_extractor")
    model = build_transfer_model(export_hub_module(network, str(tmp_path / "module")), 3) if published else network
    target = _target_images()
    adapt_batch_norm(model, target, batch_size=40)
    statistics = {v.path.rsplit("/", 1)[-1].rsplit(".", 1)[-1].split(":")[0]: v.numpy() for v in
                  batch_norm_statistics(model if not published else model.get_layer("feature_extractor"))}
    expected = keras.Model(inputs, conv)(target).numpy().reshape(-1, 6).mean(axis=0)
    # inverted dropout keeps the mean; one pass's masks leave a few percent of noise
    np.testing.assert_allclose(statistics["moving_mean"], expected, rtol=0.15, atol=0.02)
