"""Small Keras layers for text that need no vocabulary: the from-scratch text baseline.

`HashedEmbeddingBag` turns a batch of strings into one vector each: lower-case,
split on whitespace, hash every token into a fixed number of buckets, look the
buckets up in a trainable embedding and average them (an NNLM / fastText-style
bag of words). Hashing instead of a vocabulary means the model can be built
before any data is seen, which is what a baseline built beside a pre-trained
text module needs.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tlpipe")
class HashedEmbeddingBag(keras.layers.Layer):
    """Mean of hashed-token embeddings: (batch,) strings -> (batch, output_dim) floats."""

    def __init__(self, num_buckets: int = 4096, output_dim: int = 64, **kwargs: Any):
        super().__init__(**kwargs)
        if num_buckets < 1 or output_dim < 1:
            raise ValueError(f"num_buckets and output_dim must be >= 1; received {num_buckets}, {output_dim}")
        self.num_buckets = int(num_buckets)
        self.output_dim = int(output_dim)

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight(
            shape=(self.num_buckets, self.output_dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
            name="embeddings",
        )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        tokens = tf.strings.split(tf.strings.lower(tf.reshape(inputs, [-1])))
        buckets = tf.strings.to_hash_bucket_fast(tokens, self.num_buckets)
        vectors = tf.gather(tf.convert_to_tensor(self.embeddings), buckets)
        # An empty string has no tokens: its sum is zeros, and so is its mean.
        counts = tf.cast(tf.maximum(buckets.row_lengths(), 1), vectors.dtype)
        return tf.reduce_sum(vectors, axis=1) / counts[:, None]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_buckets": self.num_buckets, "output_dim": self.output_dim}
