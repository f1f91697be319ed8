"""TFMA over multi-task models: one output name per task, metrics and intervals per task and per class.

A multi-task model (strategy `multi_task`, `tlpipe.models.multi_task`) serves
one output group per task; TFMA reads each task as an output of the model
(`ModelSpec.prediction_keys` {task: `<task>/probabilities`}, `label_keys`
{task: the task's label feature}) and computes example count, accuracy and
the confusion matrix per output, overall and sliced by each task's label, with
its resampled intervals. A run compares the candidate with one reference
(`is_baseline`) on the tasks both have: the from-scratch multi-head baseline
on all tasks, or the single-task model of one task on that task, so each
task's difference comes out paired, as in the single-task evaluator.
"""

from __future__ import annotations

from typing import Any

from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.tfma_analysis import CONFUSION_MATRIX, SIGNATURE, confusion_matrix, metric_value
from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.serving import task_output_key

PROBABILITIES = "probabilities"


def build_multi_task_eval_config(config: EvaluatorConfig, candidate: str, reference: str,
                                 label_keys: dict[str, str]) -> Any:
    """TFMA EvalConfig: `candidate` and `reference` (baseline) on the tasks of `label_keys` ({task: feature})."""
    from tensorflow_model_analysis.proto import config_pb2

    def spec(name: str, is_baseline: bool) -> Any:
        return config_pb2.ModelSpec(
            name=name, signature_name=SIGNATURE, is_baseline=is_baseline,
            prediction_keys={task: task_output_key(task, PROBABILITIES) for task in label_keys},
            label_keys=dict(label_keys),
        )

    metrics = [config_pb2.MetricConfig(class_name="ExampleCount"),
               config_pb2.MetricConfig(class_name="SparseCategoricalAccuracy"),
               config_pb2.MetricConfig(class_name="MultiClassConfusionMatrixPlot")]
    return config_pb2.EvalConfig(
        model_specs=[spec(candidate, False), spec(reference, True)],
        slicing_specs=[config_pb2.SlicingSpec(),
                       *(config_pb2.SlicingSpec(feature_keys=[key]) for key in dict.fromkeys(label_keys.values()))],
        metrics_specs=[config_pb2.MetricsSpec(metrics=metrics, output_names=list(label_keys))],
        options=config_pb2.Options(
            compute_confidence_intervals={"value": True},
            confidence_intervals=config_pb2.ConfidenceIntervalOptions(
                method=config_pb2.ConfidenceIntervalOptions.ConfidenceIntervalMethod.Value(
                    config.confidence_interval_method.upper())),
        ),
    )


def read_multi_task_output(output_path: str, label_keys: dict[str, str], num_classes: dict[str, int],
                           confidence_level: float) -> dict[str, Any]:
    """TFMA's per-task numbers as plain data.

    Returns {"models": {model: {task: {"overall": {metric: value}, "per_class": {class_id: {...}},
    "confusion_matrix": K x K}}}, "diffs": {model: {task: {metric: interval}}}}: per class only
    from the slices of the task's own label.
    """
    import tensorflow_model_analysis as tfma

    models: dict[str, Any] = {}
    diffs: dict[str, Any] = {}
    for slice_metrics in tfma.load_metrics(output_path):
        for item in slice_metrics.metric_keys_and_values:
            task, model, name = item.key.output_name, item.key.model_name, item.key.name
            if task not in label_keys:
                continue
            class_id = _class_of_slice(slice_metrics.slice_key, label_keys[task], num_classes[task])
            if class_id is False:
                continue
            value = metric_value(item, confidence_level, diff=item.key.is_diff)
            if item.key.is_diff:
                if class_id is None:
                    diffs.setdefault(model, {}).setdefault(task, {})[name] = value
                continue
            entry = models.setdefault(model, {}).setdefault(task, {"overall": {}, "per_class": {}})
            target = entry["overall"] if class_id is None else entry["per_class"].setdefault(class_id, {})
            target[name] = value
    for slice_plots in tfma.load_plots(output_path):
        for item in slice_plots.plot_keys_and_values:
            task = item.key.output_name
            if item.key.name != CONFUSION_MATRIX or task not in label_keys:
                continue
            if _class_of_slice(slice_plots.slice_key, label_keys[task], num_classes[task]) is not None:
                continue
            models[item.key.model_name][task]["confusion_matrix"] = confusion_matrix(item.value, num_classes[task])
    return {"models": models, "diffs": diffs}


def _class_of_slice(slice_key: Any, label_key: str, num_classes: int) -> int | None | bool:
    """None for the overall slice, the class id of a slice of `label_key`, False for another task's slice."""
    if not slice_key.single_slice_keys:
        return None
    (single,) = slice_key.single_slice_keys
    if single.column != label_key:
        return False
    class_id = int(single.int64_value)
    if not 0 <= class_id < num_classes:
        raise DataError(f"test examples carry {label_key} {class_id}, outside 0..{num_classes - 1} of the model's "
                        "label names")
    return class_id

