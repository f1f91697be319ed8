"""Further labels per example, derived from the main label: the data side of multi-task learning.

`ingest.label_tasks` names each further label and maps every class of the
main label (its output class names, after `classes`) to a class of the task,
e.g. Fashion-MNIST's classes to coarse groups:

    label_tasks:
      group:
        mapping: {Sandal: footwear, Sneaker: footwear, Ankle boot: footwear, Bag: bags, Shirt: tops}

A task's classes are the mapping's values in the order they first appear
along the main classes (or `label_names`, which fixes the order and must list
exactly those values). Each written example carries its task labels as
`task/<name>/label` (int64) and `task/<name>/label/name` (bytes), see
`tlpipe.models.example_format.task_label_key`. A main class the mapping does
not cover is a ConfigError naming the class (before reading when the classes
are declared, after it when they are discovered).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

from tlpipe.models.errors import ConfigError

TASK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclasses.dataclass
class LabelTaskConfig:
    """One derived label: main class name -> this task's class name; `label_names` orders the task's classes."""

    mapping: dict[str, str] = dataclasses.field(default_factory=dict)
    label_names: list[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if not self.mapping:
            raise ConfigError("mapping", self.mapping, "a mapping of every main class name to a class of this task")
        empty = [source for source, target in self.mapping.items() if not target]
        if empty:
            raise ConfigError(f"mapping.{empty[0]}", self.mapping[empty[0]], "a non-empty class name")
        values = set(self.mapping.values())
        if self.label_names:
            if len(set(self.label_names)) != len(self.label_names) or set(self.label_names) != values:
                raise ConfigError("label_names", self.label_names,
                                  f"each of the mapping's classes once: {sorted(values)}")
        if len(values) < 2:
            raise ConfigError("mapping", self.mapping, "a mapping onto at least two classes")


def check_label_tasks(tasks: dict[str, LabelTaskConfig]) -> None:
    """Each task valid; task names become feature keys and output names: letters, digits, '_', a letter first."""
    for name, task in tasks.items():
        if not TASK_NAME_RE.match(name):
            raise ConfigError(f"label_tasks.{name}", name, "a name of letters, digits and '_' starting with a letter")
        try:
            task.validate()
        except ConfigError as error:
            raise ConfigError(f"label_tasks.{name}.{error.key}", error.received, error.allowed) from None


@dataclasses.dataclass(frozen=True)
class DerivedLabels:
    """The label tasks resolved against the main classes: main class name -> (task, label, class name) rows."""

    names: dict[str, tuple[str, ...]]  # task -> its class names (label i = names[i])
    rows: dict[str, tuple[tuple[str, int, str], ...]]  # main class name -> one row per task

    def labels_of(self, main_class: str) -> tuple[tuple[str, int, str], ...]:
        return self.rows[main_class]


def resolve_label_tasks(tasks: dict[str, LabelTaskConfig], main_classes: Sequence[str]) -> DerivedLabels:
    """Check that every mapping covers `main_classes` and resolve each task's classes and labels."""
    names: dict[str, tuple[str, ...]] = {}
    rows: dict[str, list[tuple[str, int, str]]] = {main: [] for main in main_classes}
    for task, config in tasks.items():
        missing = [main for main in main_classes if main not in config.mapping]
        if missing:
            raise ConfigError(f"label_tasks.{task}.mapping", missing[0],
                              f"a class for every main class; missing: {missing} (main classes: {list(main_classes)})")
        order = config.label_names or list(dict.fromkeys(config.mapping[main] for main in main_classes))
        unused = [name for name in order if name not in {config.mapping[main] for main in main_classes}]
        if unused:
            raise ConfigError(f"label_tasks.{task}.mapping", config.mapping,
                              f"a mapping whose classes all occur among the main classes (no example would "
                              f"have {unused})")
        if len(order) < 2:
            raise ConfigError(f"label_tasks.{task}.mapping", config.mapping,
                              f"a mapping of the main classes {list(main_classes)} onto at least two classes")
        names[task] = tuple(order)
        for main in main_classes:
            target = config.mapping[main]
            rows[main].append((task, order.index(target), target))
    return DerivedLabels(names, {main: tuple(r) for main, r in rows.items()})


def task_metadata(tasks: dict[str, LabelTaskConfig], derived: DerivedLabels,
                  counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """metadata.json's `label_tasks`: per task its classes, the mapping, and counts per split and class."""
    result = {}
    for task, config in tasks.items():
        per_split = {}
        for split, per_class in counts.items():
            task_counts = {name: 0 for name in derived.names[task]}
            for main, n in per_class.items():
                task_counts[config.mapping[main]] += n
            per_split[split] = task_counts
        result[task] = {"label_names": list(derived.names[task]), "num_classes": len(derived.names[task]),
                        "derived_from": "label", "mapping": dict(config.mapping), "counts": per_split}
    return result


class TaskLabeler:
    """Inside Beam: the task labels of an example from its main class name, resolved once per label set.

    A mapping that misses a main class yields no task labels here; the
    executor reports the ConfigError after the run (`resolve_label_tasks`).
    """

    def __init__(self, tasks: dict[str, LabelTaskConfig], classes: Sequence[str]):
        self.tasks = dict(tasks)
        self.classes = tuple(classes)
        self._label_set: Any = None
        self._derived: DerivedLabels | None = None

    def labels(self, main_class: str, label_set: Any) -> tuple[tuple[str, int, str], ...]:
        if not self.tasks:
            return ()
        if label_set is not self._label_set:
            from tlpipe.components.ingest.labels import select_classes

            self._label_set = label_set
            try:
                self._derived = resolve_label_tasks(self.tasks, select_classes(label_set, self.classes).names)
            except ConfigError:
                self._derived = None
        return () if self._derived is None else self._derived.labels_of(main_class)
