"""Regularised fine-tuning: penalties that keep a fine-tuned base close to what it learnt on the source.

With a handful of target labels, fine-tuning a whole base can forget the
source task's features faster than it learns the target's. Two remedies from
the transfer-learning literature, added to the training loss:

- `l2_sp` (Li et al., "Explicit Inductive Bias for Transfer Learning with
  Convolutional Networks", ICML 2018):
  alpha/2 * ||w - w0||^2 over the base's trainable variables, w0 their
  pre-trained values (the starting point, not the origin, is what weight
  decay pulls towards), plus beta/2 * ||w||^2 over the head's kernels (plain
  weight decay on the new layers).
- `bss` (Chen et al., "Catastrophic Forgetting Meets Negative Transfer:
  Batch Spectral Shrinkage for Safe Transfer Learning", NeurIPS 2019):
  eta * the sum of the k smallest squared singular values of the batch's
  feature matrix (the base's outputs), which suppresses the feature
  directions that only fit the few target labels.

`RegularizedModel` trains a tlpipe classifier (or its head alone, on cached
features) with one of them: it computes the base's features and the head's
outputs in one pass, adds the penalty to the loss while training and reports
it as the `penalty` metric, so the fit's history shows it per epoch.
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf

from tlpipe.models._classifier import base_layer, feature_model, head_model
from tlpipe.models.regularization import L2_SP, Regularization

PENALTY_METRIC = "penalty"


class PretrainedReference:
    """The base's weights before any fine-tuning: the w0 that L2-SP pulls towards.

    Taken when the fit starts (the freshly built model), held as constants
    outside Keras' tracking so checkpoints and optimizers never see them.
    """

    def __init__(self, model: keras.Model):
        self._values = {id(variable): tf.constant(keras.ops.convert_to_numpy(variable))
                        for variable in base_layer(model).weights}

    def value_of(self, variable: keras.Variable) -> Optional[tf.Tensor]:
        return self._values.get(id(variable))


def l2_sp_penalty(base_variables: list, reference: PretrainedReference, head_kernels: list, *,
                  alpha: float, beta: float) -> tf.Tensor:
    """alpha/2 * sum ||w - w0||^2 over `base_variables` + beta/2 * sum ||w||^2 over `head_kernels`."""
    total = tf.constant(0.0, tf.float32)
    for variable in base_variables:
        start = reference.value_of(variable)
        if start is not None:
            total += alpha / 2 * tf.reduce_sum(tf.square(tf.cast(variable.value - start, tf.float32)))
    for kernel in head_kernels:
        total += beta / 2 * tf.reduce_sum(tf.square(tf.cast(kernel.value, tf.float32)))
    return total


def bss_penalty(features: tf.Tensor, *, eta: float, k: int) -> tf.Tensor:
    """eta * the sum of the `k` smallest squared singular values of the (batch, dimensions) `features`.

    The squared singular values are the eigenvalues of the smaller Gram
    matrix (F^T F or F F^T), whose eigenvalue gradient is well defined even
    when singular values repeat (an SVD's is not).
    """
    features = tf.cast(tf.reshape(features, [tf.shape(features)[0], -1]), tf.float32)
    rows, columns = tf.shape(features)[0], tf.shape(features)[1]
    gram = tf.cond(rows < columns, lambda: tf.matmul(features, features, transpose_b=True),
                   lambda: tf.matmul(features, features, transpose_a=True))
    eigenvalues = tf.linalg.eigvalsh(gram)  # ascending
    smallest = eigenvalues[:tf.minimum(k, tf.shape(eigenvalues)[0])]
    return eta * tf.reduce_sum(tf.maximum(smallest, 0.0))


class RegularizedModel(keras.Model):
    """Trains `model` (or its head alone, when the inputs are the base's cached features) with a penalty.

    Shares every layer with `model`: training it trains `model`. The loss
    Keras reports is the cross-entropy plus the penalty; the penalty alone is
    the `penalty` metric (zero during evaluation).
    """

    def __init__(self, model: keras.Model, regularization: Regularization, reference: PretrainedReference, *,
                 features_cached: bool, **kwargs: Any):
        super().__init__(name=f"{model.name}_{regularization.kind}", **kwargs)
        self.regularization = regularization
        self.reference = reference
        self.base = base_layer(model)
        self.features = None if features_cached else feature_model(model)
        self.head = head_model(model)
        self.penalty_tracker = keras.metrics.Mean(name=PENALTY_METRIC)
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        features = inputs if self.features is None else self.features(inputs, training=training)
        outputs = self.head(features, training=training)
        if training:
            penalty = self.penalty(features)
            self.add_loss(penalty)
            self.penalty_tracker.update_state(penalty)
        return outputs

    def penalty(self, features: tf.Tensor) -> tf.Tensor:
        """The configured penalty for a batch whose base outputs are `features`."""
        settings = self.regularization
        if settings.kind == L2_SP:
            kernels = [layer.kernel for layer in self.head.layers
                       if getattr(layer, "kernel", None) is not None and layer.trainable]
            return l2_sp_penalty(list(self.base.trainable_variables), self.reference, kernels,
                                 alpha=settings.alpha, beta=settings.beta)
        return bss_penalty(features, eta=settings.eta, k=settings.k)
