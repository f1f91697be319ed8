"""Domain-adversarial training (DANN, Ganin & Lempitsky 2015) of a tlpipe classifier.

Why: when the target images look different from the labelled source images
(another camera, background, texture), a classifier trained on the source
alone loses accuracy on the target. DANN learns features on which a domain
discriminator cannot tell source from target while the head still classifies
the source: a gradient-reversal layer sits between the base's features and
the discriminator, so the discriminator minimises the domain loss while the
base, receiving the reversed gradient, maximises it.

Every step takes a labelled source batch and an unlabelled target batch: the
class loss is computed on the source, the domain loss on both (source = 0,
target = 1), and the reversal coefficient follows the paper's schedule
lambda_p = 2 / (1 + exp(-gamma p)) - 1 (p: training progress from 0 to 1),
so the noisy discriminator of the first steps does not disturb the features.
The learning rate is annealed as in the paper, mu_p = mu_0 / (1 + 10 p)^0.75;
the base trains at `base_learning_rate_factor` times the head's rate (1 by
default: DANN must move the features; the paper lowers it for large
ImageNet-pretrained bases). Batch norm in the base works best in inference
mode (the HubFeatureVector's default policy): in training mode its batch
statistics mix both domains and the reversed gradient can exploit them, so
the model trains well but evaluates badly (measured on the shipped example:
source eval accuracy fell to 0.13).

`adapt=False` runs the very same loop without the discriminator and without
target batches: the `source_only` reference DANN is compared with.

The classifier is a tlpipe classifier (base layer `feature_extractor`, head
ending in `classifier`); the discriminator is not part of it, so the exported
model is an ordinary classifier. Training keeps the final weights (the
schedule of lambda is defined over the whole run; early stopping on source
accuracy would pick the least adapted model).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tlpipe.models._checkpoints import CheckpointStore, write_history
from tlpipe.models._classifier import base_layer, head_model, outputs_logits
from tlpipe.models._tensorboard import ScalarLog
from tlpipe.models.plumbing.errors import ConfigError, DataError
from tlpipe.models.plumbing.layout import CHECKPOINT_DIR, LOG_DIR
from tlpipe.models.plumbing.progress import Bar, log

DANN = "dann"
SOURCE_ONLY = "source_only"
DISCRIMINATOR_NAME = "domain_discriminator"
DEFAULT_GAMMA = 10.0
_ANNEAL_ALPHA = 10.0
_ANNEAL_BETA = 0.75
_EVAL_BATCH = 256
_SCALARS = ("loss", "accuracy", "domain_loss", "domain_accuracy", "lambda", "learning_rate", "val_loss", "val_accuracy",
            "target_val_loss", "target_val_accuracy")


def reversal_coefficient(progress: float, gamma: float = DEFAULT_GAMMA) -> float:
    """lambda_p = 2 / (1 + exp(-gamma p)) - 1 for training progress p in [0, 1] (0 at the start, ~1 at the end)."""
    if not 0.0 <= progress <= 1.0:
        raise ConfigError("progress", progress, "a number in [0, 1]")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


@keras.saving.register_keras_serializable(package="tlpipe")
class GradientReversal(keras.layers.Layer):
    """Identity forward; multiplies the gradient by -coefficient backward.

    The coefficient is a non-trainable scalar variable, so the training loop
    changes it (`layer.coefficient.assign(lambda_p)`) without retracing.
    """

    def __init__(self, coefficient: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.coefficient = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(float(coefficient)), trainable=False,
            name="coefficient", dtype="float32",
        )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        coefficient = tf.convert_to_tensor(self.coefficient)

        @tf.custom_gradient
        def reverse(x: tf.Tensor) -> tuple[tf.Tensor, Any]:
            def grad(upstream: tf.Tensor) -> tf.Tensor:
                return -tf.cast(coefficient, upstream.dtype) * upstream

            return tf.identity(x), grad

        return reverse(inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def build_domain_discriminator(feature_size: int, hidden_units: Sequence[int] = (256, 256), *,
                               name: str = DISCRIMINATOR_NAME) -> keras.Model:
    """Features -> one logit (target domain = 1): Dense-ReLU layers, then a linear unit."""
    if feature_size < 1 or any(int(units) < 1 for units in hidden_units):
        raise ConfigError("discriminator_units", list(hidden_units), "a list of integers >= 1")
    inputs = keras.Input(shape=(int(feature_size),), name="features")
    x = inputs
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(int(units), activation="relu", name=f"domain_dense_{i}")(x)
    outputs = keras.layers.Dense(1, name="domain_logit")(x)
    return keras.Model(inputs, outputs, name=name)


@dataclasses.dataclass
class StepLosses:
    """What one DANN step computes: the losses and the accuracies on its batches."""

    class_loss: tf.Tensor
    domain_loss: tf.Tensor
    class_accuracy: tf.Tensor
    domain_accuracy: tf.Tensor


class DomainAdversarialNetwork:
    """A tlpipe classifier, a gradient-reversal layer and a domain discriminator on its base's features.

    Variables fall in three groups: the base's (`base_variables`, reached by
    the class loss and, reversed, by the domain loss), the head's
    (`head_variables`, class loss only) and the discriminator's
    (`discriminator_variables`, domain loss only).
    """

    def __init__(self, classifier: keras.Model, *, discriminator_units: Sequence[int] = (256, 256)):
        self.classifier = classifier
        self.base = base_layer(classifier)
        self.head = head_model(classifier)
        self.from_logits = outputs_logits(classifier)
        self.reversal = GradientReversal(0.0, name="gradient_reversal")
        self.discriminator = build_domain_discriminator(int(self.head.inputs[0].shape[-1]), discriminator_units)

    @property
    def base_variables(self) -> list[keras.Variable]:
        return list(self.base.trainable_variables)

    @property
    def head_variables(self) -> list[keras.Variable]:
        return list(self.head.trainable_variables)

    @property
    def discriminator_variables(self) -> list[keras.Variable]:
        return list(self.discriminator.trainable_variables)

    def class_loss(self, images: tf.Tensor, labels: tf.Tensor, *, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """Class loss and accuracy on a labelled batch (no discriminator involved)."""
        return self._classify(self.base(images, training=training), labels, training)

    def losses(self, source_images: tf.Tensor, source_labels: tf.Tensor, target_images: tf.Tensor, *,
               training: bool) -> StepLosses:
        """Class loss on the source batch; domain loss on both batches through the reversal layer.

        Source and target go through the base as one batch (one forward pass;
        with batch norm in training mode, its statistics see both domains).
        """
        num_source = tf.shape(source_images)[0]
        features = self.base(tf.concat([source_images, target_images], axis=0), training=training)
        class_loss, class_accuracy = self._classify(features[:num_source], source_labels, training)
        logits = tf.squeeze(self.discriminator(self.reversal(features), training=training), axis=-1)
        domains = tf.concat([tf.zeros([num_source]), tf.ones([tf.shape(target_images)[0]])], axis=0)
        domain_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=domains, logits=logits))
        domain_accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), domains), tf.float32))
        return StepLosses(class_loss, domain_loss, class_accuracy, domain_accuracy)

    def _classify(self, features: tf.Tensor, labels: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        outputs = tf.cast(self.head(features, training=training), tf.float32)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=self.from_logits))
        predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(predicted, tf.cast(labels, tf.int64)), tf.float32))
        return loss, accuracy


class AnnealedRate(keras.optimizers.schedules.LearningRateSchedule):
    """DANN's learning-rate annealing: mu_0 / (1 + 10 p)^0.75, p = step / total steps."""

    def __init__(self, initial: float, total_steps: int):
        self.initial = float(initial)
        self.total_steps = max(1, int(total_steps))

    def __call__(self, step: Any) -> tf.Tensor:
        progress = tf.minimum(tf.cast(step, tf.float32) / float(self.total_steps), 1.0)
        return self.initial / tf.pow(1.0 + _ANNEAL_ALPHA * progress, _ANNEAL_BETA)

    def get_config(self) -> dict[str, Any]:
        return {"initial": self.initial, "total_steps": self.total_steps}


def fit_domain_adversarial(
    model: keras.Model,
    source_train: tf.data.Dataset,
    source_eval: tf.data.Dataset,
    target_train: tf.data.Dataset,
    *,
    output_dir: str,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    learning_rate: float,
    base_learning_rate_factor: float = 1.0,
    adapt: bool = True,
    discriminator_units: Sequence[int] = (256, 256),
    gamma: float = DEFAULT_GAMMA,
    target_eval: Optional[tf.data.Dataset] = None,
    seed: int = 0,
    log_prefix: str = "",
    checkpoint_dir: Optional[str] = None,
) -> dict[str, Any]:
    """Train `model` with DANN (`adapt=True`) or on the source alone (`adapt=False`), the same budget either way.

    `source_train` and `source_eval` are unbatched (image, label) datasets,
    `target_train` unbatched target images (no labels); `target_eval`, when
    some target labels exist, unbatched (image, label) pairs that are only
    reported. Each of the `epochs` x `steps_per_epoch` steps draws
    `batch_size` source and (DANN) `batch_size` target examples. The whole
    base trains. Returns the history (also `<output_dir>/history.json`):
    per-epoch entries {phase, epoch, step, loss, accuracy, domain_loss,
    domain_accuracy, lambda, learning_rate, val_loss, val_accuracy,
    [target_val_loss, target_val_accuracy], seconds}, the final epoch as
    `best` (the final weights are kept) and the phase summary, written by
    the same history writer as every fit (`_checkpoints.write_history`).
    After every epoch the weights (classifier and discriminator), both
    optimizers and the random states are saved in `checkpoint_dir` (default
    `<output_dir>/checkpoints`), so a rerun resumes after the last complete
    epoch and ends where an uninterrupted run would; TensorBoard scalars go to
    `<output_dir>/logs/<phase>`, progress to the console's bar.
    """
    for key, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(key, value, "an integer >= 1")
    if learning_rate <= 0 or not 0 < base_learning_rate_factor <= 1:
        raise ConfigError("learning_rate", (learning_rate, base_learning_rate_factor),
                          "a positive rate and a base factor in (0, 1]")
    phase = DANN if adapt else SOURCE_ONLY
    network = DomainAdversarialNetwork(model, discriminator_units=discriminator_units)
    _unfreeze(network.base)
    total_steps = epochs * steps_per_epoch
    base_optimizer = keras.optimizers.Adam(AnnealedRate(learning_rate * base_learning_rate_factor, total_steps))
    head_optimizer = keras.optimizers.Adam(AnnealedRate(learning_rate, total_steps))
    base_variables = network.base_variables
    head_variables = network.head_variables + (network.discriminator_variables if adapt else [])
    base_optimizer.build(base_variables)
    head_optimizer.build(head_variables)

    @tf.function(jit_compile=False)  # no XLA: hub modules may hold ops it cannot compile
    def train_step(source_images: tf.Tensor, source_labels: tf.Tensor, target_images: tf.Tensor) -> dict:
        with tf.GradientTape() as tape:
            if adapt:
                losses = network.losses(source_images, source_labels, target_images, training=True)
                class_loss, class_accuracy = losses.class_loss, losses.class_accuracy
                domain_loss, domain_accuracy = losses.domain_loss, losses.domain_accuracy
            else:
                class_loss, class_accuracy = network.class_loss(source_images, source_labels, training=True)
                domain_loss = domain_accuracy = tf.constant(0.0)
            total = class_loss + domain_loss + tf.add_n([tf.constant(0.0)] + [tf.cast(l, tf.float32) for l in network.base.losses])
        gradients = tape.gradient(total, base_variables + head_variables)
        base_optimizer.apply_gradients(zip(gradients[:len(base_variables)], base_variables))
        head_optimizer.apply_gradients(zip(gradients[len(base_variables):], head_variables))
        return {"loss": class_loss, "accuracy": class_accuracy, "domain_loss": domain_loss,
                "domain_accuracy": domain_accuracy}

    trainables = _Trainables(model, network.discriminator)
    store = CheckpointStore(checkpoint_dir or os.path.join(output_dir, CHECKPOINT_DIR))
    settings = {"adapt": adapt, "gamma": gamma, "discriminator_units": [int(u) for u in discriminator_units],
                "batch_size": batch_size, "learning_rate": learning_rate,
                "base_learning_rate_factor": base_learning_rate_factor}
    state = store.load({"strategy": phase, "epochs": epochs, "steps_per_epoch": steps_per_epoch, "seed": seed,
                        **settings})
    if state.weights is not None:
        store.restore_weights(trainables, state.weights)
        store.restore_optimizer([base_optimizer, head_optimizer], state.optimizer)
        store.restore_random_states(trainables, state.random_states)
        if state.done:
            log(f"{log_prefix}{phase}: training already complete in {store.directory}; restoring its weights")
        else:
            log(f"{log_prefix}{phase}: resuming from {store.directory}: {state.epoch} epoch(s) done, step {state.step}")
            state.resumed_from.append({"phase": phase, "epoch": state.epoch, "step": state.step})
    summary = state.phases.setdefault(phase, {
        "epochs_planned": epochs, "epochs_run": 0, "stopped_early": False, "seconds": 0.0,
        "trainable_base_variables": [variable.path for variable in base_variables], "cached_features": False})
    os.makedirs(output_dir, exist_ok=True)
    # One stream of batches over all epochs: a resumed loop skips the epochs done and sees the same batches.
    batches = iter(_training_batches(source_train, target_train, batch_size, seed).skip(state.epoch * steps_per_epoch))
    evaluate = _evaluator(network)
    tensorboard = ScalarLog(os.path.join(output_dir, LOG_DIR, phase))
    bar = Bar(f"{log_prefix}{phase}".strip(), epochs, steps_per_epoch)
    if state.epoch < epochs:
        log(f"{log_prefix}{phase}: {len(base_variables)} base and {len(head_variables)} head"
            + (" + discriminator" if adapt else "") + f" variables, {epochs} epoch(s) of {steps_per_epoch} step(s), "
            f"batch {batch_size}" + (" per domain" if adapt else "") + f", learning rate {learning_rate:g}")
    try:
        for epoch in range(state.epoch + 1, epochs + 1):
            entry = _train_epoch(network, train_step, batches, evaluate, bar, phase=phase, epoch=epoch,
                                 steps_per_epoch=steps_per_epoch, total_steps=total_steps, gamma=gamma, adapt=adapt,
                                 source_eval=source_eval, target_eval=target_eval)
            entry["learning_rate"] = float(head_optimizer.learning_rate.numpy())
            state.entries.append(entry)
            state.epoch, state.step = epoch, entry["step"]
            state.best = {key: entry[key] for key in ("phase", "epoch", "step", "val_accuracy", "val_loss")}
            summary["epochs_run"] = epoch
            summary["seconds"] = round(summary["seconds"] + entry["seconds"], 3)
            store.save_epoch(state, trainables, [base_optimizer, head_optimizer], phase, epoch, improved=False)
            tensorboard.write(state.step, {key: entry[key] for key in _SCALARS if key in entry})
            write_history(output_dir, phase, state, domain=settings)
            _log_epoch(log_prefix, entry, epochs, adapt=adapt, target_eval=target_eval is not None)
            if epoch == epochs:
                bar.finish(epoch, entry["step"], entry["accuracy"], entry["val_accuracy"])
            else:
                bar.epoch_end(epoch, entry["step"], entry["accuracy"], entry["val_accuracy"])
    finally:
        tensorboard.close()
    state.done = True
    store.write(state)
    return write_history(output_dir, phase, state, domain=settings)


def _train_epoch(network: DomainAdversarialNetwork, train_step: Any, batches: Any, evaluate: Any, bar: Bar, *,
                 phase: str, epoch: int, steps_per_epoch: int, total_steps: int, gamma: float, adapt: bool,
                 source_eval: tf.data.Dataset, target_eval: Optional[tf.data.Dataset]) -> dict[str, Any]:
    """One epoch of `train_step` over `batches` (the reversal coefficient on its schedule), then the evaluation:
    the epoch's history entry."""
    started = time.monotonic()
    sums: dict[str, float] = {}
    for index in range(steps_per_epoch):
        step = (epoch - 1) * steps_per_epoch + index
        network.reversal.coefficient.assign(reversal_coefficient(step / total_steps, gamma) if adapt else 0.0)
        source_images, source_labels, target_images = next(batches)
        for key, value in train_step(source_images, source_labels, target_images).items():
            sums[key] = sums.get(key, 0.0) + float(value)
        if bar.due():
            bar.update(epoch, index + 1, step + 1, sums["accuracy"] / (index + 1))
    entry: dict[str, Any] = {"phase": phase, "epoch": epoch, "step": epoch * steps_per_epoch}
    entry.update({key: value / steps_per_epoch for key, value in sums.items()})
    entry["lambda"] = float(network.reversal.coefficient.numpy())
    entry["val_loss"], entry["val_accuracy"] = evaluate(source_eval, "source eval")
    if target_eval is not None:
        entry["target_val_loss"], entry["target_val_accuracy"] = evaluate(target_eval, "target eval")
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


def _log_epoch(log_prefix: str, entry: dict[str, Any], epochs: int, *, adapt: bool, target_eval: bool) -> None:
    log(f"{log_prefix}{entry['phase']} epoch {entry['epoch']}/{epochs} step {entry['step']}: class loss "
        f"{entry['loss']:.4f} accuracy {entry['accuracy']:.4f}"
        + (f" domain loss {entry['domain_loss']:.4f} domain accuracy {entry['domain_accuracy']:.4f} "
           f"lambda {entry['lambda']:.3f}" if adapt else "")
        + f" val_accuracy {entry['val_accuracy']:.4f}"
        + (f" target val_accuracy {entry['target_val_accuracy']:.4f}" if target_eval else ""))


class _Trainables(keras.Model):
    """The classifier and the discriminator as one model, for the checkpoint store (weights and random states)."""

    def __init__(self, classifier: keras.Model, discriminator: keras.Model):
        super().__init__(name="domain_adversarial_trainables")
        self.classifier = classifier
        self.discriminator = discriminator
        self.built = True  # both parts are built; this model is never called


def _unfreeze(base: keras.layers.Layer) -> None:
    """DANN adapts the features: the whole base trains (HubFeatureVector or a Keras network)."""
    if hasattr(base, "set_trainable"):
        base.set_trainable(True)
    else:
        base.trainable = True


def _training_batches(source: tf.data.Dataset, target: tf.data.Dataset, batch_size: int,
                      seed: int) -> tf.data.Dataset:
    """Endless (source images, source labels, target images) batches, each domain shuffled with the seed."""

    def endless(data: tf.data.Dataset, salt: int) -> tf.data.Dataset:
        return data.shuffle(4096, seed=seed + salt, reshuffle_each_iteration=True).repeat().batch(
            batch_size, drop_remainder=True)

    pairs = tf.data.Dataset.zip((endless(source, 0), endless(target, 1)))
    return pairs.map(lambda labelled, target_images: (labelled[0], labelled[1], target_images)).prefetch(
        tf.data.AUTOTUNE)


def _evaluator(network: DomainAdversarialNetwork) -> Any:
    """(loss, accuracy) of the classifier in inference mode over an unbatched labelled dataset."""

    @tf.function(jit_compile=False)
    def batch_sums(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        loss, accuracy = network.class_loss(images, labels, training=False)
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        return loss * count, accuracy * count

    def evaluate(data: tf.data.Dataset, name: str) -> tuple[float, float]:
        total_loss = total_correct = 0.0
        count = 0
        for images, labels in data.batch(_EVAL_BATCH):
            loss, correct = batch_sums(images, labels)
            total_loss += float(loss)
            total_correct += float(correct)
            count += int(labels.shape[0])
        if count == 0:
            raise DataError(f"the {name} data is empty: nothing to evaluate the domain-adapted model on")
        return total_loss / count, total_correct / count

    return evaluate


def sample_images(data: tf.data.Dataset, limit: int, *, seed: int = 0) -> np.ndarray:
    """Up to `limit` images of an unbatched dataset of images (or (image, label) pairs), shuffled with `seed`."""
    data = data.map(lambda *item: item[0]).shuffle(max(limit, 1) * 4, seed=seed).take(limit)
    batches = list(data.batch(_EVAL_BATCH).as_numpy_iterator())
    if not batches:
        raise DataError("no images to sample: the dataset is empty")
    return np.concatenate(batches)
