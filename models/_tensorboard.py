"""TensorBoard scalar logs written with TensorFlow's own summary ops.

`tf.summary.scalar` and Keras' TensorBoard callback need the `tensorboard`
package at training time; the event files they write do not. This writes the
same records (tag, float32 value, step, the "scalars" plugin's metadata) with
`tf.summary.write`, which is in TensorFlow itself, so training never depends
on TensorBoard being installed and `tensorboard --logdir` shows the curves.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


class ScalarLog:
    """One TensorBoard run folder; `write` records scalars at a step."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self._writer = tf.summary.create_file_writer(log_dir)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        with self._writer.as_default():
            for tag, value in scalars.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
