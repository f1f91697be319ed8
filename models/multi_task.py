"""Multi-task classifiers: one base network shared by one classification head per task.

A `MultiTaskClassifier` is the multi-head sibling of `Classifier`
(models/builders.py): it owns its heads, keeps its base as `base` and the
base's output as `features` (so the fit loop freezes and unfreezes the one
shared base for all heads), and outputs a dict {task: probabilities}. Its
heads are named `<task>_classifier` (softmax), `<task>_dropout`,
`<task>_dense_<i>`.

Training: `compile_objective` gives the fit loop one sparse cross-entropy per
task weighted by the task's `loss_weight` (Keras logs `<task>_loss`) and one
accuracy per task (`<task>_accuracy`); the model adds `accuracy`, the
loss-weighted mean of the task accuracies, which the fit loop's early
stopping and best-epoch choice read as `val_accuracy` (and `val_loss` is the
weighted sum of the task losses).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any, Literal, Mapping, Sequence

import keras

from tlpipe.models.builders import base_on_input, baseline_network, hub_base
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.plumbing.progress import log
from tlpipe.models.task import ACCURACY, ClassifierTask

# A history entry's per-task values: (entry key, Keras log prefix, metric).
_TASK_KEYS = (("loss", "", "loss"), (ACCURACY, "", ACCURACY), ("val_loss", "val_", "loss"),
              ("val_accuracy", "val_", ACCURACY))
_TASK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class TaskHead:
    """One task's head: its classes, its weight in the loss, and its dropout and hidden layers."""

    name: str
    num_classes: int
    loss_weight: float = 1.0
    dropout: float = 0.2
    hidden_units: tuple[int, ...] = ()

    def check(self) -> None:
        if not _TASK_NAME_RE.match(self.name):
            raise ModelError(f"task name {self.name!r} must be letters, digits and '_' starting with a letter")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ModelError(f"task {self.name!r}: num_classes must be an integer >= 2; received {self.num_classes!r}")
        if not self.loss_weight > 0:
            raise ModelError(f"task {self.name!r}: loss_weight must be > 0; received {self.loss_weight!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"task {self.name!r}: dropout must be in [0, 1); received {self.dropout!r}")
        if any(int(units) < 1 for units in self.hidden_units):
            raise ModelError(f"task {self.name!r}: hidden_units must be positive; received {list(self.hidden_units)!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "hidden_units": list(self.hidden_units)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskHead":
        return cls(**{**data, "hidden_units": tuple(data.get("hidden_units", ()))})


def _task_head(features: Any, head: TaskHead) -> Any:
    x = features
    if head.dropout > 0:
        x = keras.layers.Dropout(head.dropout, name=f"{head.name}_dropout")(x)
    for i, units in enumerate(head.hidden_units, start=1):
        x = keras.layers.Dense(int(units), activation="relu", name=f"{head.name}_dense_{i}")(x)
        if head.dropout > 0:
            x = keras.layers.Dropout(head.dropout, name=f"{head.name}_dropout_{i}")(x)
    return keras.layers.Dense(head.num_classes, activation="softmax", name=f"{head.name}_classifier")(x)


@keras.saving.register_keras_serializable(package="tlpipe")
class MultiTaskClassifier(ClassifierTask):
    """A base network and one classification head per task; outputs {task: probabilities}.

    Its heads do not train on cached base features: the fit loop's early stopping reads the weighted accuracy
    the model computes (`get_metrics_result`), which a head-only model would not.

    As keras-hub's Task over a Backbone, with several heads: `get_config`
    mirrors `__init__` (heads as plain dicts).
    """

    caches_features = False

    def __init__(self, base: keras.layers.Layer, heads: Sequence[TaskHead | dict[str, Any]], *,
                 input_dtype: str = "float32", input_shape: Sequence[int] | None = None, **kwargs: Any):
        heads = tuple(head if isinstance(head, TaskHead) else TaskHead.from_dict(head) for head in heads)
        if not heads:
            raise ModelError("a multi-task classifier needs at least one task head")
        names = [head.name for head in heads]
        if len(set(names)) != len(names):
            raise ModelError(f"task names must be distinct; received {names}")
        for head in heads:
            head.check()
        inputs, features = base_on_input(base, input_dtype, input_shape, kwargs.get("name") or base.name)
        outputs = {head.name: _task_head(features, head) for head in heads}
        super().__init__(inputs, outputs, base=base, features=features, input_dtype=input_dtype,
                         input_shape=input_shape, **kwargs)
        self.heads = heads

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(head.name for head in self.heads)

    def head_layers(self, task: str) -> list[keras.layers.Layer]:
        """The layers of one task's head (its dropout, dense and classifier layers)."""
        return [layer for layer in self.layers if layer.name.startswith(f"{task}_")]

    def compile_objective(self) -> dict[str, Any]:
        """`compile` arguments: per-task sparse cross-entropy with the tasks' weights, per-task accuracy."""
        return {
            "loss": {head.name: keras.losses.SparseCategoricalCrossentropy() for head in self.heads},
            "loss_weights": {head.name: float(head.loss_weight) for head in self.heads},
            "metrics": {head.name: [keras.metrics.SparseCategoricalAccuracy(name=ACCURACY)] for head in self.heads},
        }

    def history_extras(self, logs: Mapping[str, Any]) -> dict[str, Any]:
        """Each task's loss and accuracy, on train and eval, under `tasks`."""
        return {"tasks": {task: {key: float(logs[f"{prefix}{task}_{metric}"]) for key, prefix, metric in _TASK_KEYS}
                          for task in self.task_names}}

    def task_classes(self) -> dict[str, int]:
        return {head.name: head.num_classes for head in self.heads}

    def get_metrics_result(self) -> dict[str, Any]:
        """Keras's metrics plus `accuracy`: the tasks' accuracies averaged with their loss weights.

        With one head Keras logs only `loss` and `accuracy`; they are also
        given as `<task>_loss` and `<task>_accuracy`, as with several heads."""
        results = super().get_metrics_result()
        if len(self.heads) == 1:
            task = self.heads[0].name
            for metric in ("loss", ACCURACY):
                if metric in results:
                    results[f"{task}_{metric}"] = results[metric]
        keys = [f"{head.name}_{ACCURACY}" for head in self.heads]
        if all(key in results for key in keys):
            total = sum(head.loss_weight for head in self.heads)
            results[ACCURACY] = sum(head.loss_weight * results[key] for head, key in zip(self.heads, keys)) / total
        return results

    def get_config(self) -> dict[str, Any]:
        return {
            "base": keras.saving.serialize_keras_object(self.base), "heads": [head.to_dict() for head in self.heads],
            "input_dtype": self.base_input_dtype, "input_shape": self.base_input_shape, "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "MultiTaskClassifier":
        config = copy.deepcopy(config)  # deserializing consumes the nested config
        base = keras.saving.deserialize_keras_object(config.pop("base"))
        return cls(base, **config)


def build_multi_task_transfer_model(
    handle_or_preset: str, heads: Sequence[TaskHead], *, input_shape: Sequence[int] | None = None,
    training_policy: str = "inference", name: str | None = None, **layer_kwargs: Any,
) -> MultiTaskClassifier:
    """One frozen hub base (`feature_extractor`) shared by a head per task."""
    base = hub_base(handle_or_preset, input_shape=input_shape, training_policy=training_policy, **layer_kwargs)
    return MultiTaskClassifier(base, heads, input_dtype=base.module_input_dtype, input_shape=base.input_size,
                               name=name or "multi_task")


def build_multi_task_baseline_model(
    handle_or_preset: str, heads: Sequence[TaskHead], *, architecture: Literal["same", "small_cnn"] = "same",
    cnn_filters: Sequence[int] = (32, 64, 128), input_shape: Sequence[int] | None = None, name: str | None = None,
    resize_to: Sequence[int] | None = None,
) -> MultiTaskClassifier:
    """The from-scratch competitor: the same heads on a randomly initialised base (see `baseline_network`;
    `resize_to` as in `build_baseline_model`)."""
    network, input_dtype, used, reason = baseline_network(handle_or_preset, architecture=architecture,
                                                          cnn_filters=cnn_filters, input_shape=input_shape,
                                                          resize_to=resize_to)
    model = MultiTaskClassifier(network, heads, input_dtype=input_dtype,
                                input_shape=tuple(network.inputs[0].shape[1:]), name=name or "multi_task_baseline")
    model.baseline_architecture = used
    model.baseline_reason = reason
    log(f"multi-task baseline for {handle_or_preset!r}: {used} ({reason})")
    return model
