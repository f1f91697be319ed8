"""The evaluator component's spec: the thresholds that decide the blessing, and how
uncertainty and convergence are measured."""

from __future__ import annotations

import dataclasses
from typing import Literal

from tlpipe.components.evaluator.multi_task_config import TaskThresholds, check_task_thresholds
from tlpipe.models.plumbing.errors import ConfigError


@dataclasses.dataclass
class EvaluatorConfig:
    """A candidate is blessed when its test accuracy is at least `min_accuracy` and
    beats its matched reference (the model that saw the same data without the
    pre-trained module: components/evaluator/pairing.py) and the model in
    production, when there is one, by at least `min_improvement` (absolute
    accuracy, inclusive). A transfer model
    below the from-scratch baseline is never blessed (negative transfer), hence no
    negative margins.

    `gate` says what "beats by at least `min_improvement`" means. 'interval'
    (default): the lower end of the `confidence_level` interval of the paired
    accuracy difference (candidate minus reference on the same test examples) is
    at least `min_improvement`, so only a model that is surely better ships.
    'point': the point estimate of the difference is (TFX's change threshold; a
    difference that is noise can pass).

    Confidence intervals are TFMA's: `confidence_interval_method` resamples the
    test set (TFMA's 20 jackknife buckets or 20 Poisson-bootstrap replicates), and
    the interval is the t-interval at `confidence_level` over those resamples.
    `seed` seeds TFMA's resampling, so the comparisons of one evaluation resample
    alike (intervals can still move a little between processes: Beam's element
    order is not fixed). `convergence_fraction` defines the report's "steps to converge": the first
    training step whose eval accuracy reaches that fraction of the final one.

    `bless_from_scratch`: when a from-scratch reference is the most accurate
    model of the run, whether it may be blessed and pushed (when it clears
    `min_accuracy` and beats production). Off by default: tlpipe ships a model
    when transfer paid off, and a from-scratch winner says the module is not
    worth its cost here; the headline says so either way.

    Edge exports (`pusher.formats` beyond `saved_model`; see
    components/evaluator/edge_check.py): the blessed candidate is converted to
    each format and scored on the same test examples; a format whose accuracy
    drop against the SavedModel is surely above `edge_max_drop` (the upper end
    of the `confidence_level` interval of the paired difference is below
    -edge_max_drop) blocks the push. `edge_calibration_examples` images, a
    sample seeded by `seed` from the train and unlabelled splits, calibrate
    `tflite_int8`.

    `tasks`: per-task thresholds of a multi-task candidate (strategy
    `multi_task`; see multi_task_config.py): each task's floor and how far
    below its single-task model it may fall.
    """

    min_accuracy: float = 0.0
    min_improvement: float = 0.0
    gate: Literal["interval", "point"] = "interval"
    compare_with_production: bool = True
    top_k: list[int] = dataclasses.field(default_factory=lambda: [2])
    confidence_level: float = 0.95
    confidence_interval_method: Literal["jackknife", "poisson_bootstrap"] = "jackknife"
    seed: int = 0
    convergence_fraction: float = 0.9
    bless_from_scratch: bool = False
    tasks: dict[str, TaskThresholds] = dataclasses.field(default_factory=dict)  # multi-task models, per task
    edge_max_drop: float = 0.01
    edge_calibration_examples: int = 200

    def validate(self) -> None:
        if not 0.0 <= self.min_accuracy <= 1.0:
            raise ConfigError("min_accuracy", self.min_accuracy, "a number in [0, 1]")
        if not 0.0 <= self.min_improvement <= 1.0:
            raise ConfigError(
                "min_improvement", self.min_improvement,
                "a number in [0, 1]: the accuracy margin by which a transfer model must beat the baseline",
            )
        if not 0.0 < self.confidence_level < 1.0:
            raise ConfigError("confidence_level", self.confidence_level, "a number in (0, 1)")
        if any(k < 1 for k in self.top_k) or len(set(self.top_k)) != len(self.top_k):
            raise ConfigError("top_k", self.top_k, "a list of distinct integers >= 1 (e.g. [2, 3])")
        if not 0.0 < self.convergence_fraction <= 1.0:
            raise ConfigError("convergence_fraction", self.convergence_fraction, "a number in (0, 1]")
        if not 0.0 <= self.edge_max_drop <= 1.0:
            raise ConfigError("edge_max_drop", self.edge_max_drop,
                              "a number in [0, 1]: the accuracy an edge export may surely lose against its SavedModel")
        if self.edge_calibration_examples < 1:
            raise ConfigError("edge_calibration_examples", self.edge_calibration_examples,
                              "an integer >= 1 (images that calibrate tflite_int8)")
        check_task_thresholds(self.tasks)
