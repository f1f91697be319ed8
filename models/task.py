"""The one base of tlpipe's classifiers: a base network and the head(s) the task owns.

Why: `Classifier` (one head, models/builders.py) and `MultiTaskClassifier` (a
head per task, models/multi_task.py) were siblings, and the generic code (the
fit loop, the head/feature split, the serving export) told them apart with
isinstance checks. As in keras-hub, where a Task owns its head over a
Backbone, each classifier now owns what differs: the losses and metrics that
train its heads (`compile_objective`), what its training history adds per
epoch (`history_extras`), whether its heads can train on base features
computed once (`caches_features`), and its heads' classes for the export
(`task_classes`). Generic code asks the model; a Keras model written by hand
(not a `ClassifierTask`) still takes part through models/_classifier.py's
layer-name conventions.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import keras

ACCURACY = "accuracy"


class ClassifierTask(keras.Model):
    """A functional model over a base network (`base`, whose output in this graph is `features`) that ends in
    softmax probabilities. Subclasses build their heads and call `__init__` with the graph's ends."""

    caches_features: ClassVar[bool] = True  # whether a head-only model over cached base features can train it

    def __init__(self, inputs: Any, outputs: Any, *, base: keras.layers.Layer, features: Any, input_dtype: str,
                 input_shape: Sequence[int] | None, **kwargs: Any):
        super().__init__(inputs, outputs, **kwargs)
        self.base = base
        self.features = features
        self.base_input_dtype = input_dtype
        self.base_input_shape = None if input_shape is None else tuple(input_shape)

    def compile_objective(self) -> dict[str, Any]:
        """`compile` arguments: one sparse cross-entropy on the probabilities and its accuracy."""
        return {"loss": keras.losses.SparseCategoricalCrossentropy(),
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name=ACCURACY)]}

    def history_extras(self, logs: Mapping[str, Any]) -> dict[str, Any]:
        """What one epoch's history entry records beyond loss and accuracy (Keras' epoch `logs`)."""
        return {}

    def task_classes(self) -> dict[str, int]:
        """{task: number of classes} of a model with a head per task; {} for a single-task classifier."""
        return {}
