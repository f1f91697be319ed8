"""The `multi_task` strategy and its references: one shared base with a head per task.

`train_multi_task` trains, into one train step's folder:

    single_task/<task>/   a single-task model per head (the same hub base, the
                          same head, the same two-phase fit and schedule, only
                          that task's loss): what sharing the base must beat
    model/, history.json, summary.json, ...
                          the multi-task model: all heads on the frozen base
                          (phase "head"), then the whole base fine-tuned with
                          all heads (phase "fine_tune"), the tasks' losses
                          weighted by `trainer.tasks[].loss_weight`, early
                          stopping on the weighted eval accuracy

`train_multi_task_baseline` trains the same heads on a randomly initialised
base with the baseline's own budget (the `multi_task` step's reference).

Every model is a `MultiTaskClassifier` (one head for the single-task ones), so
all of them export the same per-task output groups (`<task>/probabilities`,
...) and the evaluator reads them alike. The summary lists each task's label,
classes and best eval accuracy, and the single-task models' folders.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar, Optional

import keras
import tensorflow as tf

from tlpipe.components.config_schema import validate_tree
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.data import EVAL_SPLIT, TRAIN_SPLIT, TransformedData, load_transformed
from tlpipe.components.trainer.engine import augmentation_for, checkpoint_dir_for, train_and_export
from tlpipe.components.trainer.executor import BaselineRecipe
from tlpipe.components.trainer.spec import MODEL_DIR
from tlpipe.components.trainer.transfer_fits import FINE_TUNE_ALL, FINE_TUNE_TOP
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.examples import decode_examples
from tlpipe.models.fit import UNFREEZE_ALL, Unfreeze, two_phase_fit
from tlpipe.models.hyperrule import Schedule
from tlpipe.models.multi_task import TaskHead, build_multi_task_baseline_model, build_multi_task_transfer_model

SINGLE_TASK_DIR = "single_task"
TASKS_KEY = "tasks"
_DECODE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class TaskData:
    """The transformed data with a label per task: datasets of (inputs, {task: label})."""

    data: TransformedData
    label_names: dict[str, list[str]]  # task -> its class names
    labels: dict[str, str]  # task -> the label it reads ('label' or a label task)

    def only(self, task: str) -> "TaskData":
        """The same examples with one task's label."""

        def pick(inputs: tf.Tensor, labels: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
            return inputs, {task: labels[task]}

        data = dataclasses.replace(self.data, train=self.data.train.map(pick), eval=self.data.eval.map(pick))
        return TaskData(data, {task: self.label_names[task]}, {task: self.labels[task]})


def single_task_dir(output_dir: str, task: str) -> str:
    """The folder of the single-task model of `task` inside a `multi_task` train step's folder."""
    return os.path.join(output_dir, SINGLE_TASK_DIR, task)


def load_task_data(config: TrainerConfig, transformed_dir: str) -> TaskData:
    """The transform artifact's train and eval splits with every task's label; DataError naming a missing label."""
    data = load_transformed(transformed_dir)
    metadata = fmt.read_metadata(transformed_dir, expected="a transform artifact")
    present = {fmt.MAIN_LABEL: list(metadata["label_names"]),
               **{name: list(info["label_names"]) for name, info in (metadata.get("label_tasks") or {}).items()}}
    names = {}
    for task in config.tasks:
        if task.label not in present:
            raise DataError(
                f"task {task.name!r} reads label {task.label!r}, which the data in {transformed_dir!r} does not "
                f"carry; labels present: {sorted(present)} (derive it with ingest.label_tasks.{task.label})")
        names[task.name] = present[task.label]
    keys = {task.name: fmt.label_key_of(task.label) for task in config.tasks}
    image_shape = data.image_shape

    def dataset(split: str, count: int) -> tf.data.Dataset:
        spec = {key: tf.io.FixedLenFeature([], tf.int64) for key in keys.values()}

        def decode(serialized: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
            inputs, _ = decode_examples(serialized, data.modality, image_shape)
            parsed = tf.io.parse_example(serialized, spec)
            return inputs, {task: parsed[key] for task, key in keys.items()}

        return (tf.data.TFRecordDataset(fmt.split_files(transformed_dir, split)).batch(_DECODE_BATCH)
                .map(decode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
                .apply(tf.data.experimental.assert_cardinality(count)))

    first = config.tasks[0].name
    data = dataclasses.replace(data, train=dataset(TRAIN_SPLIT, data.num_train), eval=dataset(EVAL_SPLIT, data.num_eval),
                               label_names=names[first])
    return TaskData(data, names, {task.name: task.label for task in config.tasks})


def _heads(config: TrainerConfig, task_data: TaskData) -> list[TaskHead]:
    return [
        TaskHead(task.name, len(task_data.label_names[task.name]), loss_weight=task.loss_weight,
                 dropout=config.head.dropout if task.dropout is None else task.dropout,
                 hidden_units=tuple(config.head.hidden_units if task.hidden_units is None else task.hidden_units))
        for task in config.tasks if task.name in task_data.label_names
    ]


def _task_summary(config: TrainerConfig, task_data: TaskData) -> dict[str, Any]:
    return {task.name: {"label": task.label, "label_names": task_data.label_names[task.name],
                        "loss_weight": task.loss_weight}
            for task in config.tasks if task.name in task_data.label_names}


@dataclasses.dataclass(frozen=True)
class MultiTaskTransferRecipe:
    """The heads on one shared hub base, fit in two phases (the base fine-tuned: all of it, or the pattern's)."""

    kind: ClassVar[str] = "transfer"
    config: TrainerConfig
    handle: str
    heads: list[TaskHead]
    output_dir: str
    name: str
    work_dir: Optional[str] = None

    def build(self, data: TransformedData) -> keras.Model:
        return build_multi_task_transfer_model(self.handle, self.heads, input_shape=data.image_shape,
                                               training_policy=self.config.base_training, name=self.name)

    def fit(self, model: keras.Model, data: TransformedData, schedule: Schedule) -> dict[str, Any]:
        config = self.config
        pattern = config.fine_tune_pattern
        return two_phase_fit(
            model, data.train, data.eval, unfreeze=Unfreeze(pattern=pattern) if pattern else UNFREEZE_ALL,
            name=FINE_TUNE_TOP if pattern else FINE_TUNE_ALL, schedule=schedule, output_dir=self.output_dir,
            augment=augmentation_for(config, data), early_stopping_patience=config.early_stopping_patience,
            seed=config.seed, log_prefix=f"trainer [{self.name}] ", checkpoint_dir=checkpoint_dir_for(self.work_dir),
        )


@dataclasses.dataclass(frozen=True)
class MultiTaskBaselineRecipe(BaselineRecipe):
    """The same heads on a randomly initialised base, fit as the baseline is (its budget, end to end)."""

    heads: tuple[TaskHead, ...] = ()

    def build(self, data: TransformedData) -> keras.Model:
        config = self.config
        return build_multi_task_baseline_model(
            self.handle, list(self.heads), architecture=config.baseline.architecture,
            cnn_filters=config.baseline.cnn_filters, input_shape=data.image_shape, name=self.name,
            resize_to=config.baseline.input_size)


def _train_transfer_heads(config: TrainerConfig, transformed_dir: str, output_dir: str, task_data: TaskData, *,
                          handle: str, name: str, work_dir: Optional[str],
                          extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Two-phase fit of the heads of `task_data` on one shared hub base; export with every task's names."""
    recipe = MultiTaskTransferRecipe(config, handle, _heads(config, task_data), output_dir, name, work_dir)
    return train_and_export(config, transformed_dir, output_dir, recipe, strategy=name, handle=handle,
                            data=task_data.data, extra={TASKS_KEY: _task_summary(config, task_data), **(extra or {})},
                            export_options={"task_label_names": task_data.label_names})


def train_multi_task(config: TrainerConfig, transformed_dir: str, output_dir: str, *, strategy: str,
                     handle: str, work_dir: Optional[str] = None) -> dict[str, Any]:
    """A single-task model per head, then the multi-task model; returns the multi-task model's summary."""
    validate_tree(config, "trainer")
    task_data = load_task_data(config, transformed_dir)
    singles = {}
    for task in config.tasks:
        folder = single_task_dir(output_dir, task.name)
        summary = _train_transfer_heads(
            config, transformed_dir, folder, task_data.only(task.name), handle=handle,
            name=f"single_task_{task.name}", work_dir=single_task_dir(work_dir, task.name) if work_dir else None)
        singles[task.name] = {"model_dir": os.path.join(folder, MODEL_DIR), "eval_accuracy": summary["eval_accuracy"]}
    return _train_transfer_heads(config, transformed_dir, output_dir, task_data, handle=handle, name=strategy,
                                 work_dir=work_dir, extra={"single_task": singles})


def train_multi_task_baseline(config: TrainerConfig, transformed_dir: str, output_dir: str, *,
                              strategy: str, handle: str,
                              work_dir: Optional[str] = None) -> dict[str, Any]:
    """The same heads on a randomly initialised base, trained end to end with the baseline's budget."""
    validate_tree(config, "trainer")
    task_data = load_task_data(config, transformed_dir)
    recipe = MultiTaskBaselineRecipe(config, handle, output_dir, strategy, work_dir, heads=tuple(_heads(config, task_data)))
    return train_and_export(config, transformed_dir, output_dir, recipe, strategy=strategy, handle=handle,
                            data=task_data.data, extra={TASKS_KEY: _task_summary(config, task_data)},
                            export_options={"task_label_names": task_data.label_names})
