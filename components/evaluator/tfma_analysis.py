"""One TensorFlow Model Analysis run: candidates side by side with one reference model.

The run evaluates every candidate and the reference (`is_baseline`) over the
serialized tf.Examples of a split, through each model's `serving_default`
signature: accuracy (`probabilities` vs `label`), top-k accuracy, example
counts and the confusion matrix, overall and per class (slices by `label`),
with TFMA's resampled confidence intervals. The thresholds are TFMA's own, on
the overall slice: a value threshold (the accuracy floor) and a change
threshold against the reference (the required improvement).

`read_tfma_output` turns TFMA's output files back into plain dicts that the
blessing, the report and the summary use.
"""

from __future__ import annotations

import json
from typing import Any

from tlpipe.components.beam import BeamConfig, create_pipeline
from tlpipe.components.checked_tfrecords import ReadCheckedTFRecords
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import DataError

ACCURACY = "sparse_categorical_accuracy"
EXAMPLE_COUNT = "example_count"
CONFUSION_MATRIX = "multi_class_confusion_matrix_plot"
PREDICTION_KEY = "probabilities"
SIGNATURE = "serving_default"

# TFMA computes accuracies in float32 (2/3 comes out as 0.66666663) and compares
# them with the thresholds inclusively; the thresholds are loosened by this much
# so that an accuracy exactly at a configured bound passes. Far below the 1/N
# resolution of an accuracy over any realistic test set.
THRESHOLD_SLACK = 1e-6
_FIX = "re-run the transform step that wrote the split"
# Examples per Beam bundle. TFMA's metric combiners keep every example's label and prediction until they hold
# 1,000 (per model, slice and jackknife partition: 20 partitions x (1 + classes) slices), and the in-process
# runner keeps the combiners' tables until the bundle ends; one bundle of the whole split made the evaluator's
# memory grow with the test split (bench/README.md, "Scale"). Bundles of this size bound it. On the in-process
# runner only: Beam 2.77's multi-processing runner drops the residuals a self-checkpointing read leaves when it
# merges its workers' results (ParallelBundleManager), so it would evaluate 4,000 of 5,000 examples (measured).
BUNDLE_RECORDS = 2_000


def top_k_metric(k: int) -> str:
    """Name of the top-k accuracy metric in TFMA's output."""
    return f"top_{k}_accuracy"


def build_eval_config(config: EvaluatorConfig, candidates: list[str], reference: str, top_ks: list[int]) -> Any:
    """TFMA EvalConfig: candidates + `reference` as baseline, metrics, label slices, thresholds."""
    from tensorflow_model_analysis.proto import config_pb2

    def spec(name: str, is_baseline: bool) -> Any:
        return config_pb2.ModelSpec(
            name=name, signature_name=SIGNATURE, prediction_key=PREDICTION_KEY,
            label_key=fmt.LABEL_KEY, is_baseline=is_baseline,
        )

    overall = config_pb2.SlicingSpec()
    accuracy_threshold = config_pb2.PerSliceMetricThreshold(
        slicing_specs=[overall],
        threshold=config_pb2.MetricThreshold(
            value_threshold=config_pb2.GenericValueThreshold(
                lower_bound={"value": config.min_accuracy - THRESHOLD_SLACK}),
            change_threshold=config_pb2.GenericChangeThreshold(
                direction=config_pb2.MetricDirection.HIGHER_IS_BETTER,
                absolute={"value": config.min_improvement - THRESHOLD_SLACK}),
        ),
    )
    metrics = [
        config_pb2.MetricConfig(class_name="ExampleCount"),
        config_pb2.MetricConfig(class_name="SparseCategoricalAccuracy", per_slice_thresholds=[accuracy_threshold]),
        *(
            config_pb2.MetricConfig(class_name="SparseTopKCategoricalAccuracy",
                                    config=json.dumps({"k": k, "name": top_k_metric(k)}))
            for k in top_ks
        ),
        config_pb2.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
    ]
    return config_pb2.EvalConfig(
        model_specs=[spec(name, False) for name in candidates] + [spec(reference, True)],
        slicing_specs=[overall, config_pb2.SlicingSpec(feature_keys=[fmt.LABEL_KEY])],
        metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)],
        options=config_pb2.Options(
            compute_confidence_intervals={"value": True},
            confidence_intervals=config_pb2.ConfidenceIntervalOptions(
                method=config_pb2.ConfidenceIntervalOptions.ConfidenceIntervalMethod.Value(
                    config.confidence_interval_method.upper())),
        ),
    )


_WHY_NOT_ON_DASK = ("the evaluator reads the examples in bounded bundles with a splittable DoFn, which the DaskRunner "
                    "does not run, and TFMA's extractors emit tagged outputs, which the DaskRunner does not keep "
                    "apart")


def refuse_dask(beam_config: BeamConfig) -> None:
    """ConfigError before any work when `beam_config` would run TFMA on the DaskRunner."""
    beam_config.refuse_dask("evaluate", _WHY_NOT_ON_DASK)


def run_tfma(eval_config: Any, model_dirs: dict[str, str], data_files: list[str], output_path: str,
             beam_config: BeamConfig, seed: int) -> None:
    """Evaluate `model_dirs` (names as in `eval_config`) over `data_files` on the configured Beam runner.

    `seed` seeds TFMA's resampling for the confidence intervals (TFMA calls
    the argument `random_seed_for_testing`; it only seeds a RandomState).
    The records are read by tlpipe's checked reader, one read for all the
    files (in bundles of `BUNDLE_RECORDS` on the in-process runner), and
    handed to tfx-bsl as raw records: its own source (a read per file joined
    by a Flatten) made the in-process runner hold every record of the split.
    """
    import tensorflow_model_analysis as tfma
    from tfx_bsl.public import tfxio

    shared_models = [
        tfma.default_eval_shared_model(eval_saved_model_path=path, model_name=name, eval_config=eval_config)
        for name, path in model_dirs.items()
    ]
    source = tfxio.TFExampleRecord(file_pattern=data_files, raw_record_column_name=tfma.ARROW_INPUT_COLUMN)
    bundle_records = BUNDLE_RECORDS if beam_config.runner == "in_process" else None
    with create_pipeline(beam_config) as pipeline:
        _ = (
            pipeline
            | "ReadRecords" >> ReadCheckedTFRecords(data_files, _FIX, bundle_records=bundle_records)
            | "ToRecordBatches" >> source.RawRecordToRecordBatch()
            | "ExtractEvaluateAndWrite" >> tfma.ExtractEvaluateAndWriteResults(
                eval_config=eval_config, eval_shared_model=shared_models, output_path=output_path,
                random_seed_for_testing=seed,
            )
        )


def read_tfma_output(output_path: str, num_classes: int, confidence_level: float) -> dict[str, Any]:
    """TFMA's metrics, confusion matrices and validation failures as plain data.

    Returns {"models": {name: {"overall": {...}, "per_class": {class_id: {...}},
    "confusion_matrix": K x K counts (rows: true class)}}, "diffs": {candidate:
    {metric: interval}}, "failures": {candidate: [failure, ...]}}; intervals are
    {"value", "lower", "upper"} at `confidence_level`.
    """
    import tensorflow_model_analysis as tfma

    models: dict[str, Any] = {}
    diffs: dict[str, Any] = {}
    for slice_metrics in tfma.load_metrics(output_path):
        class_id = _class_of_slice(slice_metrics.slice_key, num_classes)
        for item in slice_metrics.metric_keys_and_values:
            name, model = item.key.name, item.key.model_name
            value = metric_value(item, confidence_level, diff=item.key.is_diff)
            if item.key.is_diff:
                if class_id is None:
                    diffs.setdefault(model, {})[name] = value
                continue
            entry = models.setdefault(model, {"overall": {}, "per_class": {}})
            target = entry["overall"] if class_id is None else entry["per_class"].setdefault(class_id, {})
            target[name] = value
    for slice_plots in tfma.load_plots(output_path):
        if _class_of_slice(slice_plots.slice_key, num_classes) is not None:
            continue
        for item in slice_plots.plot_keys_and_values:
            if item.key.name == CONFUSION_MATRIX:
                models[item.key.model_name]["confusion_matrix"] = confusion_matrix(item.value, num_classes)
    return {"models": models, "diffs": diffs, "failures": _failures(output_path)}


def _class_of_slice(slice_key: Any, num_classes: int) -> int | None:
    """None for the overall slice, else the class id of a `label` slice."""
    if not slice_key.single_slice_keys:
        return None
    (single,) = slice_key.single_slice_keys
    class_id = int(single.int64_value)
    if not 0 <= class_id < num_classes:
        raise DataError(f"test examples carry label {class_id}, outside 0..{num_classes - 1} of metadata.json")
    return class_id


def metric_value(item: Any, confidence_level: float, *, diff: bool) -> Any:
    """Example counts as int; everything else as an interval at `confidence_level`."""
    value = item.value.double_value.value
    if item.key.name == EXAMPLE_COUNT:
        return int(round(value))
    ci = item.confidence_interval
    return rescale_interval(
        value,
        lower_95=ci.lower_bound.double_value.value,
        upper_95=ci.upper_bound.double_value.value,
        standard_error=ci.standard_error.double_value.value,
        degrees_of_freedom=ci.degrees_of_freedom.value,
        confidence_level=confidence_level,
        bounds=(-1.0, 1.0) if diff else (0.0, 1.0),
    )


def rescale_interval(value: float, *, lower_95: float, upper_95: float, standard_error: float,
                     degrees_of_freedom: int, confidence_level: float,
                     bounds: tuple[float, float]) -> dict[str, float]:
    """TFMA's interval at another confidence level.

    TFMA writes the 95% t-interval `sample_mean +- t(0.975, dof) * standard_error`
    over its resamples; the same interval at `confidence_level` keeps the centre
    and standard error and swaps the t quantile. Clipped to `bounds` (an
    accuracy interval never leaves [0, 1]).
    """
    from scipy import stats

    centre = (lower_95 + upper_95) / 2.0
    half_width = float(stats.t.ppf(0.5 + confidence_level / 2.0, degrees_of_freedom)) * standard_error
    low, high = bounds
    return {
        "value": float(value),
        "lower": float(min(max(centre - half_width, low), high)),
        "upper": float(max(min(centre + half_width, high), low)),
    }


def confusion_matrix(plot_value: Any, num_classes: int) -> list[list[int]]:
    """K x K counts from TFMA's multi-class confusion matrix (threshold 0: the arg-max class)."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    (at_threshold,) = plot_value.multi_class_confusion_matrix_at_thresholds.matrices
    for entry in at_threshold.entries:
        actual, predicted = entry.actual_class_id, entry.predicted_class_id
        if not (0 <= actual < num_classes and 0 <= predicted < num_classes):
            raise DataError(
                f"TFMA's confusion matrix has class ids ({actual}, {predicted}) outside 0..{num_classes - 1}: "
                "the labels or the model's outputs do not match metadata.json's num_classes"
            )
        matrix[actual][predicted] += int(round(entry.num_weighted_examples))
    return matrix


def _failures(output_path: str) -> dict[str, list[dict[str, Any]]]:
    """Failed thresholds per candidate: which one ('floor' or 'improvement') and the measured value."""
    import tensorflow_model_analysis as tfma

    failures: dict[str, list[dict[str, Any]]] = {}
    result = tfma.load_validation_result(output_path)
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            kind = "improvement" if failure.metric_threshold.HasField("change_threshold") else "floor"
            failures.setdefault(failure.metric_key.model_name, []).append({
                "metric": failure.metric_key.name,
                "kind": kind,
                "measured": failure.metric_value.double_value.value,
            })
    return failures
