"""Reproducible training: the same seeds give bit-identical weights in any fresh process.

Keras' global seed (Python, NumPy and TensorFlow generators, and the seed
generators of layers such as dropout and random augmentation) fixes every
random draw; TensorFlow's op determinism makes the ops themselves
deterministic (no order-dependent parallel reductions; tf.data keeps element
order). Without the second, source pre-training gave different modules in two
processes and so different target metrics. The determinism switch is
process-wide and stays on: every step after it (pre-training, trainers) wants
it too.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def make_deterministic(seed: int) -> None:
    """Seed every generator with `seed` and turn on TensorFlow's op determinism."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
