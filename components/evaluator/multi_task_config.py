"""`evaluator.tasks`: per-task thresholds for multi-task models (strategy `multi_task`).

Each task of a multi-task candidate must, on the test split:
- reach at least its floor `min_accuracy` (null: `evaluator.min_accuracy`);
- be no worse than the single-task model of the same head by more than
  `max_drop` (absolute accuracy), read as `evaluator.gate` says: with 'interval'
  the lower end of the paired difference's interval must be at least
  `-max_drop`, with 'point' its point estimate;
- beat the from-scratch multi-head baseline's same task by
  `evaluator.min_improvement`, read by the same gate.
Tasks not listed get the defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from tlpipe.models.plumbing.errors import ConfigError

DEFAULT_MAX_DROP = 0.02


@dataclasses.dataclass
class TaskThresholds:
    """One task's floor and the largest loss against its single-task model a blessing tolerates."""

    min_accuracy: Optional[float] = None
    max_drop: float = DEFAULT_MAX_DROP

    def validate(self) -> None:
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise ConfigError("min_accuracy", self.min_accuracy, "null (evaluator.min_accuracy) or a number in [0, 1]")
        if not 0.0 <= self.max_drop <= 1.0:
            raise ConfigError("max_drop", self.max_drop, "a number in [0, 1] (accuracy below the single-task model)")


def check_task_thresholds(tasks: dict[str, TaskThresholds]) -> None:
    for name, thresholds in tasks.items():
        try:
            thresholds.validate()
        except ConfigError as error:
            raise ConfigError(f"tasks.{name}.{error.key}", error.received, error.allowed) from None
