"""Further labels per example: the data side of multi-task learning.

`ingest.label_tasks` names each further label. A task either

- is *derived* from the main label: `mapping` sends every class of the main
  label (its output class names, after `classes`) to a class of the task,
  e.g. Fashion-MNIST's classes to coarse groups:

      label_tasks:
        group:
          mapping: {Sandal: footwear, Sneaker: footwear, Ankle boot: footwear, Bag: bags, Shirt: tops}

  Its classes are the mapping's values in the order they first appear along
  the main classes (or `label_names`, which fixes the order and must list
  exactly those values). A main class the mapping does not cover is a
  ConfigError naming the class (before reading when the classes are
  declared, after it when they are discovered);
- or is *read* from the source: `feature` names a column (CSV), an int64 /
  bytes feature (TFRecord) or a ClassLabel / integer / Text feature (TFDS)
  holding the label, as a class name of
  `label_names` (required: the task's classes, in order) or an integer
  0..N-1. A source without that column or feature is a ConfigError naming it;
  an example without the value, or with a value outside `label_names`, a
  DataError naming the example.

Each written example carries its task labels as `task/<name>/label` (int64)
and `task/<name>/label/name` (bytes), see
`tlpipe.models.plumbing.example_format.task_label_key`; metadata.json counts them per
split and class.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

from tlpipe.components.ingest.labels import LabelSet, SourceLabel
from tlpipe.models.plumbing.errors import ConfigError, DataError

TASK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
FEATURE_SCHEMES = ("csv", "tfrecord", "tfds")
# A task's label of one example: (task, label, class name).
TaskLabel = tuple[str, int, str]


@dataclasses.dataclass
class LabelTaskConfig:
    """One further label: derived (`mapping`: main class name -> this task's class) or read (`feature`)."""

    mapping: dict[str, str] = dataclasses.field(default_factory=dict)
    feature: str = ""
    label_names: list[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if bool(self.mapping) == bool(self.feature):
            raise ConfigError("mapping", self.mapping, "either a mapping of every main class name to a class of "
                              "this task, or a source `feature` holding the label (not both)")
        if len(set(self.label_names)) != len(self.label_names) or not all(self.label_names):
            raise ConfigError("label_names", self.label_names, "distinct non-empty class names")
        if self.feature:
            if len(self.label_names) < 2:
                raise ConfigError("label_names", self.label_names,
                                  f"the classes of feature {self.feature!r} in label order, at least two")
            return
        empty = [source for source, target in self.mapping.items() if not target]
        if empty:
            raise ConfigError(f"mapping.{empty[0]}", self.mapping[empty[0]], "a non-empty class name")
        values = set(self.mapping.values())
        if self.label_names and set(self.label_names) != values:
            raise ConfigError("label_names", self.label_names, f"each of the mapping's classes once: {sorted(values)}")
        if len(values) < 2:
            raise ConfigError("mapping", self.mapping, "a mapping onto at least two classes")


def check_label_tasks(tasks: dict[str, LabelTaskConfig], scheme: str) -> None:
    """Each task valid; names of letters, digits and '_' (a letter first): they become feature keys and
    output names; `feature` tasks only for sources with further features."""
    for name, task in tasks.items():
        if not TASK_NAME_RE.match(name):
            raise ConfigError(f"label_tasks.{name}", name, "a name of letters, digits and '_' starting with a letter")
        try:
            task.validate()
        except ConfigError as error:
            raise ConfigError(f"label_tasks.{name}.{error.key}", error.received, error.allowed) from None
        if task.feature and scheme not in FEATURE_SCHEMES:
            raise ConfigError(f"label_tasks.{name}.feature", task.feature,
                              f"a `mapping` for {scheme} sources (only {', '.join(FEATURE_SCHEMES)} sources carry "
                              "further label features)")


def feature_tasks(tasks: dict[str, LabelTaskConfig]) -> dict[str, str]:
    """{task: source feature} of the tasks read from the source."""
    return {name: task.feature for name, task in tasks.items() if task.feature}


@dataclasses.dataclass(frozen=True)
class ResolvedTasks:
    """The label tasks resolved against the main classes."""

    names: dict[str, tuple[str, ...]]  # task -> its class names (label i = names[i])
    derived: dict[str, tuple[TaskLabel, ...]]  # main class name -> the derived tasks' labels
    read: dict[str, LabelSet]  # task read from the source -> its classes

    def labels_of(self, main_class: str, values: dict[str, SourceLabel], example_id: str) -> tuple[TaskLabel, ...]:
        """Every task's label of one example (`values`: the read tasks' source values), in config order."""
        labels = {task: row for task, *row in self.derived[main_class]}
        result = []
        for task in self.names:
            if task in labels:
                result.append((task, *labels[task]))
                continue
            label_set = self.read[task]
            index = label_set.index(values[task]) if task in values else None
            if index is None:
                raise DataError(f"example {example_id!r}: label {values.get(task)!r} of task {task!r} is not one of "
                                f"{label_set.describe()} (ingest.label_tasks.{task}.label_names)")
            result.append((task, index, label_set.names[index]))
        return tuple(result)


def resolve_label_tasks(tasks: dict[str, LabelTaskConfig], main_classes: Sequence[str]) -> ResolvedTasks:
    """Check that every mapping covers `main_classes` and resolve each task's classes."""
    names: dict[str, tuple[str, ...]] = {}
    rows: dict[str, list[tuple[str, int, str]]] = {main: [] for main in main_classes}
    read = {}
    for task, config in tasks.items():
        if config.feature:
            names[task] = tuple(config.label_names)
            read[task] = LabelSet.from_names(config.label_names)
            continue
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
    return ResolvedTasks(names, {main: tuple(r) for main, r in rows.items()}, read)


def stat_kind(task: str) -> str:
    """The kind of the ingest stats rows that count task `task`'s labels."""
    return f"task/{task}"


def task_metadata(tasks: dict[str, LabelTaskConfig], resolved: ResolvedTasks,
                  counts: dict[str, dict[Any, dict[Any, int]]], splits: Sequence[str]) -> dict[str, Any]:
    """metadata.json's `label_tasks`: per task its classes, where it comes from, and counts per split and class
    (from the ingest stats rows of `stat_kind(task)`)."""
    result = {}
    for task, config in tasks.items():
        names = resolved.names[task]
        written = counts.get(stat_kind(task), {})
        origin = {"feature": config.feature} if config.feature else {"derived_from": "label",
                                                                      "mapping": dict(config.mapping)}
        result[task] = {"label_names": list(names), "num_classes": len(names), **origin,
                        "counts": {split: {name: written.get(split, {}).get(i, 0) for i, name in enumerate(names)}
                                   for split in splits}}
    return result


class TaskLabeler:
    """Inside Beam: the task labels of an example, resolved once per label set.

    A mapping that misses a main class yields no task labels here; the
    executor reports the ConfigError after the run (`resolve_label_tasks`).
    A read task's value outside its classes is a DataError naming the example.
    """

    def __init__(self, tasks: dict[str, LabelTaskConfig], classes: Sequence[str]):
        self.tasks = dict(tasks)
        self.classes = tuple(classes)
        self._label_set: Any = None
        self._resolved: ResolvedTasks | None = None

    def labels(self, main_class: str, label_set: Any, record: Any) -> tuple[TaskLabel, ...]:
        if not self.tasks:
            return ()
        if label_set is not self._label_set:
            from tlpipe.components.ingest.labels import select_classes

            self._label_set = label_set
            try:
                self._resolved = resolve_label_tasks(self.tasks, select_classes(label_set, self.classes).names)
            except ConfigError:
                self._resolved = None
        if self._resolved is None:
            return ()
        from tlpipe.components.beam_errors import in_dofn

        try:
            return self._resolved.labels_of(main_class, dict(record.task_values), record.id)
        except DataError as error:
            raise in_dofn(error) from None
