"""DANN: the gradient-reversal layer, which losses reach which variables, the fit loop."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.builders import build_transfer_model
from tlpipe.models.domain import (
    DomainAdversarialNetwork, GradientReversal, fit_domain_adversarial, reversal_coefficient,
)
from tlpipe.models.plumbing.errors import ConfigError

pytestmark = pytest.mark.quick


def test_reversal_is_identity_forward_and_flips_and_scales_gradients():
    layer = GradientReversal(0.5)
    x = tf.Variable(np.arange(6, dtype="float32").reshape(2, 3))
    weights = tf.constant([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(weights * y)
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -0.5 * weights.numpy())
    layer.coefficient.assign(2.0)  # the loop schedules it; no retrace or rebuild needed
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weights * layer(x))
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -2.0 * weights.numpy())
    assert layer.trainable_variables == []


def test_reversal_schedule_follows_ganin_and_lempitsky():
    assert reversal_coefficient(0.0) == 0.0
    assert reversal_coefficient(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert reversal_coefficient(1.0) == pytest.approx(0.99991, abs=1e-5)
    with pytest.raises(ConfigError):
        reversal_coefficient(1.5)


def _network(handle):
    keras.utils.set_random_seed(0)
    model = build_transfer_model(handle, 3, dropout=0.0)
    model.get_layer("feature_extractor").set_trainable(True)
    return DomainAdversarialNetwork(model, discriminator_units=[6])


def _norms(gradients):
    return [None if g is None else float(tf.norm(g)) for g in gradients]


def test_each_loss_reaches_the_right_variables(keras_hub_module, tiny_images):
    network = _network(keras_hub_module)
    images, labels = tiny_images
    source, source_labels, target = images[:12], labels[:12], images[12:] * 0.5 + 0.4
    network.reversal.coefficient.assign(0.7)
    groups = {"base": network.base_variables, "head": network.head_variables,
              "discriminator": network.discriminator_variables}
    assert all(groups.values())
    everything = [v for group in groups.values() for v in group]
    with tf.GradientTape(persistent=True) as tape:
        losses = network.losses(source, source_labels, target, training=True)
    reached = {}
    for name, loss in (("class", losses.class_loss), ("domain", losses.domain_loss)):
        gradients = _norms(tape.gradient(loss, everything))
        start = 0
        for group, variables in groups.items():
            part = gradients[start:start + len(variables)]
            start += len(variables)
            reached[name, group] = any(g is not None and g > 0 for g in part)
    assert reached == {
        ("class", "base"): True, ("class", "head"): True, ("class", "discriminator"): False,
        ("domain", "base"): True, ("domain", "head"): False, ("domain", "discriminator"): True,
    }


def test_the_base_receives_the_reversed_scaled_domain_gradient(keras_hub_module, tiny_images):
    network = _network(keras_hub_module)
    images, _ = tiny_images
    source, target = images[:12], images[12:] * 0.5 + 0.4

    def gradients(coefficient):
        network.reversal.coefficient.assign(coefficient)
        with tf.GradientTape() as tape:
            loss = network.losses(source, np.zeros(12, "int64"), target, training=False).domain_loss
        return tape.gradient(loss, network.base_variables + network.discriminator_variables)

    plain = gradients(-1.0)  # reversal by -1 = the domain loss's own gradient
    reversed_ = gradients(0.3)
    count = len(network.base_variables)
    for own, flipped in zip(plain[:count], reversed_[:count]):
        np.testing.assert_allclose(flipped.numpy(), -0.3 * own.numpy(), rtol=1e-4, atol=1e-7)
    for own, same in zip(plain[count:], reversed_[count:]):  # the discriminator descends its own loss
        np.testing.assert_allclose(same.numpy(), own.numpy(), rtol=1e-4, atol=1e-7)


def _shifted_domains(seed=0):
    """Source: class k has brightness k/3; target: the same classes under an added colour cast."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 16)
    images = np.clip(labels[:, None, None, None] / 3.0 + rng.normal(0, 0.05, (48, 16, 16, 3)), 0, 1)
    target = np.clip(images[::-1] * 0.6 + np.array([0.4, 0.0, 0.2]), 0, 1)
    return images.astype("float32"), labels.astype("int64"), target.astype("float32")


@pytest.mark.parametrize("adapt", [True, False])
def test_fit_writes_a_history_per_epoch(keras_hub_module, tmp_path, adapt):
    keras.utils.set_random_seed(0)
    model = build_transfer_model(keras_hub_module, 3, dropout=0.0)
    images, labels, target = _shifted_domains()
    source = tf.data.Dataset.from_tensor_slices((images, labels))
    history = fit_domain_adversarial(
        model, source, source, tf.data.Dataset.from_tensor_slices(target), output_dir=str(tmp_path),
        epochs=3, steps_per_epoch=4, batch_size=8, learning_rate=1e-2, adapt=adapt, discriminator_units=[8],
        target_eval=tf.data.Dataset.from_tensor_slices((target, labels[::-1])),
    )
    entries = history["entries"]
    assert [e["epoch"] for e in entries] == [1, 2, 3]
    assert [e["step"] for e in entries] == [4, 8, 12]
    for entry in entries:
        assert {"loss", "accuracy", "domain_loss", "domain_accuracy", "lambda", "val_accuracy",
                "target_val_accuracy", "learning_rate"} <= set(entry)
    if adapt:
        lambdas = [e["lambda"] for e in entries]
        assert 0 < lambdas[0] < lambdas[1] < lambdas[2] < 1
        assert all(e["domain_loss"] > 0 for e in entries)
    else:
        assert all(e["lambda"] == 0 and e["domain_loss"] == 0 for e in entries)
    assert entries[-1]["learning_rate"] < 1e-2  # annealed
    assert history["best"]["epoch"] == 3 and history["total_steps"] == 12
    assert json.load(open(os.path.join(tmp_path, "history.json")))["entries"] == entries
    assert model.get_layer("feature_extractor").trainable_paths()  # the base trained


def _fit_dann(module, output_dir, *, epochs=3, dropout=0.3):
    keras.utils.set_random_seed(0)
    model = build_transfer_model(module, 3, dropout=dropout)
    images, labels, target = _shifted_domains()
    history = fit_domain_adversarial(
        model, tf.data.Dataset.from_tensor_slices((images, labels)), tf.data.Dataset.from_tensor_slices((images, labels)),
        tf.data.Dataset.from_tensor_slices(target), output_dir=str(output_dir), epochs=epochs, steps_per_epoch=3,
        batch_size=8, learning_rate=1e-2, discriminator_units=[8])
    return model, history


def test_a_killed_dann_fit_resumes_after_its_last_epoch_and_ends_where_an_uninterrupted_one_does(
        keras_hub_module, tmp_path, monkeypatch):
    whole, whole_history = _fit_dann(keras_hub_module, tmp_path / "whole")
    assert os.path.isfile(tmp_path / "whole" / "checkpoints" / "state.json")
    assert os.listdir(tmp_path / "whole" / "logs" / "dann")  # TensorBoard scalars

    from tlpipe.models import _checkpoints

    saved = _checkpoints.CheckpointStore.save_epoch

    def killed_after_two_epochs(self, state, *args, **kwargs):
        saved(self, state, *args, **kwargs)
        if state.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_checkpoints.CheckpointStore, "save_epoch", killed_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        _fit_dann(keras_hub_module, tmp_path / "killed")
    monkeypatch.setattr(_checkpoints.CheckpointStore, "save_epoch", saved)
    resumed, history = _fit_dann(keras_hub_module, tmp_path / "killed")

    assert history["resumed_from"] == [{"phase": "dann", "epoch": 2, "step": 6}] and history["complete"]
    assert [e["epoch"] for e in history["entries"]] == [1, 2, 3]
    for mine, theirs in zip(history["entries"], whole_history["entries"]):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["val_accuracy"] == theirs["val_accuracy"]
    for mine, theirs in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    # a finished fit is not trained again: the rerun restores its weights
    again, history_again = _fit_dann(keras_hub_module, tmp_path / "whole")
    assert history_again["entries"] == whole_history["entries"] and history_again["resumed_from"] == []
    for mine, theirs in zip(again.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_fit_refuses_bad_budgets(keras_hub_module, tmp_path):
    model = build_transfer_model(keras_hub_module, 3)
    data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 16, 16, 3), "float32"), np.zeros(4, "int64")))
    with pytest.raises(ConfigError, match="epochs"):
        fit_domain_adversarial(model, data, data, data.map(lambda x, y: x), output_dir=str(tmp_path), epochs=0,
                               steps_per_epoch=1, batch_size=2, learning_rate=1e-3)
