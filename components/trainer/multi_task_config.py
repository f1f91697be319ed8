"""`trainer.tasks`: the heads of the `multi_task` strategy, one per label of the examples.

    trainer:
      strategies: [multi_task]
      tasks:
        - {name: item, label: label}                        # the main classes
        - {name: group, label: group, loss_weight: 0.5}     # ingest.label_tasks.group
          hidden_units: [64]

`label` is `label` (the main classes) or the name of a label task of the
ingest step (`ingest.label_tasks`); a label the data does not carry is a
DataError at training time naming the task and the labels present.
`dropout` and `hidden_units` left null take `trainer.head`'s.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from tlpipe.models.plumbing.errors import ConfigError

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MIN_TASKS = 2


@dataclasses.dataclass
class TaskConfig:
    """One head: its name (the output group of the served model), its label, loss weight and head options."""

    name: str = ""
    label: str = "label"
    loss_weight: float = 1.0
    dropout: Optional[float] = None
    hidden_units: Optional[list[int]] = None

    def validate(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError("name", self.name, "a name of letters, digits and '_' starting with a letter")
        if not self.label:
            raise ConfigError("label", self.label, "'label' (the main classes) or a name of ingest.label_tasks")
        if not self.loss_weight > 0:
            raise ConfigError("loss_weight", self.loss_weight, "a number > 0")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout", self.dropout, "null (trainer.head's) or a number in [0, 1)")
        if self.hidden_units is not None and any(units < 1 for units in self.hidden_units):
            raise ConfigError("hidden_units", self.hidden_units, "null (trainer.head's) or a list of integers >= 1")


def check_tasks(tasks: list[TaskConfig], strategies: list[str], multi_task: str) -> None:
    """The tasks are set exactly when `multi_task` runs (and then alone), at least two, distinct names and labels."""
    if multi_task not in strategies:
        if tasks:
            raise ConfigError("tasks", [task.name for task in tasks],
                              f"an empty list unless trainer.strategies lists '{multi_task}'")
        return
    if strategies != [multi_task]:
        raise ConfigError("strategies", strategies, f"['{multi_task}'] alone (its references are its own)")
    if len(tasks) < MIN_TASKS:
        raise ConfigError("tasks", [task.name for task in tasks],
                          f"at least {MIN_TASKS} tasks for '{multi_task}', e.g. [{{name: item, label: label}}, "
                          "{name: group, label: group}]")
    for index, task in enumerate(tasks):
        try:
            task.validate()
        except ConfigError as error:
            raise ConfigError(f"tasks[{index}].{error.key}", error.received, error.allowed) from None
    for key in ("name", "label"):
        values = [getattr(task, key) for task in tasks]
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ConfigError("tasks", values, f"each {key} once ({repeated[0]!r} is repeated)")
