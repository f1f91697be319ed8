"""The evaluator component's spec: the thresholds that decide the blessing."""

from __future__ import annotations

import dataclasses

from tlpipe.pipeline.errors import ConfigError


@dataclasses.dataclass
class EvaluatorConfig:
    """A candidate is blessed when its test accuracy is at least `min_accuracy` and
    beats the from-scratch baseline (and the model in production, when there is one)
    by at least `min_improvement` (absolute accuracy)."""

    min_accuracy: float = 0.0
    min_improvement: float = 0.0
    compare_with_production: bool = True
    top_k: list[int] = dataclasses.field(default_factory=lambda: [2])
    confidence_level: float = 0.95
    num_bootstrap_samples: int = 100

    def validate(self) -> None:
        if not 0.0 <= self.min_accuracy <= 1.0:
            raise ConfigError("min_accuracy", self.min_accuracy, "a number in [0, 1]")
        if not -1.0 <= self.min_improvement <= 1.0:
            raise ConfigError("min_improvement", self.min_improvement, "a number in [-1, 1]")
        if not 0.0 < self.confidence_level < 1.0:
            raise ConfigError("confidence_level", self.confidence_level, "a number in (0, 1)")
