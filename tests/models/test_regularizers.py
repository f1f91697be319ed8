"""L2-SP and BSS: the penalties' values, their place in the fit, and what they do to the base."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.models.regularization import Regularization
from tlpipe.models.regularizers import PretrainedReference, bss_penalty, l2_sp_penalty


def test_regularization_settings_are_validated():
    Regularization("l2_sp", alpha=0.0, beta=0.0).validate()
    with pytest.raises(ConfigError, match="kind"):
        Regularization("l1").validate()
    with pytest.raises(ConfigError, match="alpha"):
        Regularization("l2_sp", alpha=-1.0).validate()
    with pytest.raises(ConfigError, match="k"):
        Regularization("bss", k=0).validate()
    assert Regularization("bss").applies(base_trains=True) and not Regularization("bss").applies(base_trains=False)
    assert Regularization("l2_sp").applies(base_trains=False)


def test_l2_sp_penalty_pulls_the_base_to_its_start_and_the_head_to_zero():
    inputs = keras.Input((3,))
    base = keras.Sequential([keras.layers.Dense(2, name="base_dense")], name="feature_extractor")
    outputs = keras.layers.Dense(2, activation="softmax", name="classifier")(base(inputs))
    model = keras.Model(inputs, outputs)
    reference = PretrainedReference(model)
    start = [np.array(v.numpy()) for v in base.weights]
    for variable in base.weights:
        variable.assign(variable.numpy() + 0.5)
    head_kernel = model.get_layer("classifier").kernel
    penalty = l2_sp_penalty(base.trainable_variables, reference, [head_kernel], alpha=0.2, beta=0.04)
    expected = 0.2 / 2 * sum(np.sum((v.numpy() - s) ** 2) for v, s in zip(base.weights, start)) \
        + 0.04 / 2 * np.sum(head_kernel.numpy() ** 2)
    assert float(penalty) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6)])  # more rows than columns, and fewer
def test_bss_penalty_is_the_smallest_squared_singular_values(shape):
    features = np.random.default_rng(0).normal(size=shape).astype("float32")
    singular = np.linalg.svd(features, compute_uv=False)
    expected = 0.5 * np.sum(np.sort(singular ** 2)[:2])
    assert float(bss_penalty(tf.constant(features), eta=0.5, k=2)) == pytest.approx(expected, rel=1e-4)


def test_bss_gradient_is_finite_with_repeated_singular_values():
    features = tf.Variable(np.zeros((5, 4), "float32"))  # dead features: every singular value is 0
    with tf.GradientTape() as tape:
        penalty = bss_penalty(features, eta=1.0, k=2)
    assert np.all(np.isfinite(tape.gradient(penalty, features).numpy()))


# Fine-tunes one tiny module three times from the same seed, deterministically: plain, L2-SP with
# alpha = beta = 0, L2-SP with a huge alpha (and once with BSS); records the base's largest distance from its
# pre-trained values after every epoch, and prints it with the final weights and histories as JSON.
_SCRIPT = """
import json, sys
import keras, numpy as np, tensorflow as tf
tf.config.experimental.enable_op_determinism()
from tlpipe.models.builders import build_transfer_model
from tlpipe.models.fit import UNFREEZE_ALL, two_phase_fit
from tlpipe.models.hyperrule import make_schedule
from tlpipe.models.publish import export_hub_module
from tlpipe.models.regularizers import Regularization
from tlpipe.models._classifier import base_layer

folder = sys.argv[1]
keras.utils.set_random_seed(0)
inputs = keras.Input((12, 12, 3))
x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
module = export_hub_module(keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)), folder + "/module")
rng = np.random.default_rng(0)
labels = np.repeat(np.arange(3), 8)
images = np.clip(rng.uniform(size=(24, 12, 12, 3)) * 0.5 + labels[:, None, None, None] * 0.25, 0, 1).astype("float32")
data = tf.data.Dataset.from_tensor_slices((images, labels))
schedule = make_schedule(24, 3, batch_size=8, head_epochs=2, fine_tune_epochs=5, fine_tune_learning_rate=0.01)

class Drift(keras.callbacks.Callback):
    def __init__(self, base, start):
        super().__init__()
        self.base, self.start, self.values = base, start, []
    def on_epoch_end(self, epoch, logs=None):
        now = [v.numpy() for v in self.base.weights]
        self.values.append(float(max(np.abs(a - b).max() for a, b in zip(now, self.start))))

runs = {"plain": None, "zero": Regularization("l2_sp", alpha=0.0, beta=0.0),
        "huge": Regularization("l2_sp", alpha=1e4, beta=0.0), "bss": Regularization("bss", eta=0.1, k=1)}
out = {}
for name, regularization in runs.items():
    keras.utils.set_random_seed(0)
    model = build_transfer_model(module, 3, dropout=0.0)
    base = base_layer(model)
    drift = Drift(base, [v.numpy() for v in base.weights])
    history = two_phase_fit(model, data, data, unfreeze=UNFREEZE_ALL, schedule=schedule,
                            output_dir=f"{folder}/{name}", regularization=regularization,
                            early_stopping_patience=20, callbacks=[drift])
    out[name] = {"drift": drift.values, "weights": [w.tolist() for w in model.get_weights()],
                 "entries": history["entries"], "phases": history["phases"]}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fits(tmp_path_factory) -> dict:
    folder = str(tmp_path_factory.mktemp("regularized_fits"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, folder], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_l2_sp_with_alpha_and_beta_zero_is_plain_fine_tuning(fits):
    for plain, zero in zip(fits["plain"]["weights"], fits["zero"]["weights"]):
        np.testing.assert_allclose(np.array(zero), np.array(plain), rtol=0, atol=1e-6)
    assert [e["loss"] for e in fits["zero"]["entries"]] == pytest.approx([e["loss"] for e in fits["plain"]["entries"]])


def test_l2_sp_with_a_huge_alpha_keeps_the_base_near_its_pretrained_values(fits):
    fine_tune_epochs = [i for i, e in enumerate(fits["plain"]["entries"]) if e["phase"] == "fine_tune"]
    plain = max(fits["plain"]["drift"][i] for i in fine_tune_epochs)
    huge = max(fits["huge"]["drift"][i] for i in fine_tune_epochs)
    assert plain > 0.02  # plain fine-tuning does move the base
    assert huge < 0.25 * plain


def test_the_penalty_shows_in_the_history_of_the_phases_it_applies_to(fits):
    plain = fits["plain"]["entries"]
    assert all("penalty" not in entry for entry in plain)
    huge = fits["huge"]["entries"]
    assert all("penalty" in entry for entry in huge)  # L2-SP also regularises the head phase
    assert any(entry["penalty"] > 0 for entry in huge if entry["phase"] == "fine_tune")
    bss = fits["bss"]["entries"]
    assert [("penalty" in entry) for entry in bss] == [entry["phase"] == "fine_tune" for entry in bss]
    assert fits["bss"]["phases"]["fine_tune"]["regularization"]["kind"] == "bss"
    assert "regularization" not in fits["bss"]["phases"]["head"]
