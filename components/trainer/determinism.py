"""Reproducible training: the same seeds give bit-identical weights in any fresh process.

Keras' global seed (Python, NumPy and TensorFlow generators, and the seed
generators of layers such as dropout and random augmentation) fixes every
random draw; TensorFlow's op determinism makes the ops themselves
deterministic (no order-dependent parallel reductions; tf.data keeps element
order). Source pre-training used to run unseeded and gave a different module,
hence different target metrics, in every process (with the seeding removed,
tests/components/trainer/test_pretrain_determinism.py fails). Op determinism
guards against order-dependent parallel reductions, which that test's tiny
data does not provoke on a CPU (it passes there with the seed alone). The
switch is process-wide and stays on: every step after it (pre-training,
trainers) wants it too.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def make_deterministic(seed: int) -> None:
    """Seed every generator with `seed` and turn on TensorFlow's op determinism."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
