"""AdaBN (Li et al. 2016): re-estimate a network's batch-norm statistics on the target domain.

Why: a network trained on the source normalises every layer with the source's
mean and variance; on shifted target images those statistics are wrong, and
replacing them with the target's is the cheapest domain adaptation there is
(no labels, no gradient step, no weight other than the moving statistics
changes).

How, for any base: a HubFeatureVector (the module's restored functions update
its own moving statistics when called with `training=True`) or a Keras
network with BatchNormalization layers. A batch-norm layer in training mode
updates each statistic s as s <- m s + (1 - m) b, b the batch's statistic and
m the layer's momentum, which a restored module does not expose. So: one
calibration pass runs a batch twice, from s = 0 and from s = 1, which gives m;
then every target batch runs once from s = 0, which gives (1 - m) b; the new
statistic is the example-weighted mean of b over all target batches (the
target's mean, and the mean within-batch variance, up to the layer's own
variance estimator). Layers run in training mode, so each layer's statistics
are those of its input as normalised by the layers below on target data.

The moving statistics are found by name: variables whose path ends in
`moving_mean` or `moving_variance` (Keras 2 and 3, TF-Slim).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from tlpipe.models._classifier import base_layer
from tlpipe.models.plumbing.errors import DataError, ModelError

_STATISTIC = re.compile(r"(^|[/.])moving_(mean|variance)(:\d+)?$")


def batch_norm_statistics(network: keras.layers.Layer) -> list[keras.Variable]:
    """The moving means and variances of the batch-norm layers in `network` (a base or a whole classifier)."""
    return [variable for variable in network.non_trainable_variables if _STATISTIC.search(_path(variable))]


def adapt_batch_norm(model: keras.Model, images: Any, *, batch_size: int = 256) -> list[str]:
    """Replace the batch-norm moving statistics of `model`'s base with those of `images` (AdaBN).

    `model` is a tlpipe classifier (its `feature_extractor` is adapted) or a
    base network itself; `images` an array or a tf.data.Dataset of unbatched
    images (labels, if present, are ignored), typically the unlabelled target
    training images. Nothing but the moving statistics changes. Returns the
    paths of the statistics that were re-estimated.
    """
    base = _base(model)
    statistics = batch_norm_statistics(base)
    if not statistics:
        raise ModelError(
            f"the base {base.name!r} has no batch-norm moving statistics (no variable named moving_mean / "
            "moving_variance): AdaBN has nothing to adapt; use another strategy"
        )
    statistic_ids = {id(variable) for variable in statistics}
    # Training-mode passes also advance other state (dropout's random-seed state): put it back afterwards.
    other_state = [(variable, variable.numpy()) for variable in base.non_trainable_variables
                   if id(variable) not in statistic_ids]
    forward = _training_forward(base)
    batches = _batches(images, batch_size)
    first = next(iter(batches), None)
    if first is None:
        raise DataError("AdaBN received no target images: the unlabelled target split is empty")
    momentum = _momentum(statistics, forward, first, other_state)
    if any(np.any(m >= 1.0 - 1e-6) for m in momentum):
        raise ModelError("a batch-norm layer of the base does not update its moving statistics in training mode")
    totals = [np.zeros(variable.shape, np.float64) for variable in statistics]
    count = 0
    for batch in batches:
        size = int(batch.shape[0])
        updates = _run_from(statistics, 0.0, forward, batch)
        for total, update in zip(totals, updates):
            total += size * update
        count += size
    for variable, total, m in zip(statistics, totals, momentum):
        variable.assign((total / count / (1.0 - m)).astype(variable.dtype))
    for variable, value in other_state:
        variable.assign(value)
    return [_path(variable) for variable in statistics]


def _base(model: keras.Model) -> keras.layers.Layer:
    try:
        return base_layer(model)
    except ModelError:
        return model  # a base network given directly


def _path(variable: keras.Variable) -> str:
    return getattr(variable, "path", None) or variable.name


def _training_forward(base: keras.layers.Layer) -> Callable[[tf.Tensor], Any]:
    """A call of the base that runs its batch norm in training mode, whatever its training policy."""
    module = getattr(base, "module", None)
    if module is None:
        return lambda batch: base(batch, training=True)
    if getattr(base, "signature_name", None) is not None or not getattr(base, "_accepts_training", False):
        raise ModelError(
            f"hub module {getattr(base, 'handle', base.name)!r} cannot be called in training mode (no `training` "
            "argument), so its batch-norm statistics cannot be re-estimated: publish it in the TF2 hub format "
            "(export_hub_module)"
        )
    arguments = dict(getattr(base, "arguments", {}) or {})
    return lambda batch: module(batch, training=True, **arguments)


def _run_from(statistics: list[keras.Variable], start: float, forward: Callable, batch: tf.Tensor) -> list[np.ndarray]:
    """Set every statistic to `start`, run one training-mode pass, return the statistics it left."""
    for variable in statistics:
        variable.assign(np.full(variable.shape, start, variable.dtype))
    forward(batch)
    return [np.asarray(keras.ops.convert_to_numpy(variable), np.float64) for variable in statistics]


def _momentum(statistics: list[keras.Variable], forward: Callable, batch: tf.Tensor,
              random_state: list[tuple[keras.Variable, np.ndarray]]) -> list[np.ndarray]:
    """Each statistic's momentum m: from s = 1 a pass leaves m + (1 - m) b, from s = 0 it leaves (1 - m) b.

    Both passes must see the same b: a base with dropout or stochastic depth
    (EfficientNet-Lite drops residual branches in training mode) draws other
    masks on each pass unless its random-generator state (`random_state`, the
    other non-trainable variables as they were) is put back before each.
    """
    passes = []
    for start in (0.0, 1.0):
        for variable, value in random_state:
            variable.assign(value)
        passes.append(_run_from(statistics, start, forward, batch))
    from_zero, from_one = passes
    return [one - zero for one, zero in zip(from_one, from_zero)]


def _batches(images: Any, batch_size: int) -> tf.data.Dataset:
    """Batches of images (streamed: a target split need not fit in memory)."""
    if isinstance(images, tf.data.Dataset):
        images = images.map(lambda *item: item[0])
    else:
        images = tf.data.Dataset.from_tensor_slices(np.asarray(images, np.float32))
    return images.batch(batch_size).prefetch(tf.data.AUTOTUNE)
