"""Label sets and class selection: source labels -> output labels 0..K-1.

A source's label set is the list of classes it can have, in source order.
Each class has a name and, when the source labels it with an integer, that
integer. It is *declared* when known before reading (image sub-folders, TFDS
class names, `label_names`) or *discovered* from the distinct labels in the
data. `select_classes` applies the config's `classes` (subset and order).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterable, Optional, Sequence, Union

from tlpipe.models.plumbing.errors import ConfigError

SourceLabel = Union[int, str]
_MAX_LISTED = 20


def as_int(value: SourceLabel) -> Optional[int]:
    """The integer a label denotes (an int, or a string of decimal digits), else None."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return None


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """The classes of a source: names in source order and their integer labels (None if named only)."""

    names: tuple[str, ...]
    numbers: tuple[Optional[int], ...]

    @classmethod
    def from_names(cls, names: Sequence[str]) -> "LabelSet":
        """Declared names; class i has integer label i."""
        return cls(tuple(names), tuple(range(len(names))))

    @classmethod
    def from_values(cls, values: Iterable[SourceLabel]) -> "LabelSet":
        """Discovered from data: integer labels sort numerically and are named by their value,
        any other strings sort alphabetically and have no integer label."""
        distinct = set(values)
        numbers = {as_int(v) for v in distinct}
        if None not in numbers:
            ordered = sorted(numbers)  # type: ignore[type-var]
            return cls(tuple(str(n) for n in ordered), tuple(ordered))
        names = sorted({str(v) for v in distinct})
        return cls(tuple(names), (None,) * len(names))

    @functools.cached_property
    def _by_name(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @functools.cached_property
    def _by_number(self) -> dict[int, int]:
        return {n: i for i, n in enumerate(self.numbers) if n is not None}

    def index(self, label: SourceLabel) -> Optional[int]:
        """Position of the class a label denotes: by name first, then by integer label
        (an integer also matches a class named by its digits, as in a set discovered from mixed labels)."""
        if isinstance(label, str) and label in self._by_name:
            return self._by_name[label]
        number = as_int(label)
        if number is not None and number in self._by_number:
            return self._by_number[number]
        return self._by_name.get(str(label))

    def describe(self) -> str:
        """What a label may be, for error messages."""
        listed = ", ".join(repr(n) for n in self.names[:_MAX_LISTED])
        if len(self.names) > _MAX_LISTED:
            listed += f", ... ({len(self.names)} classes)"
        numbers = [n for n in self.numbers if n is not None]
        if not numbers:
            return f"class names {listed}"
        if numbers == list(range(len(self.names))):
            return f"class names {listed} or their integer labels 0..{len(numbers) - 1}"
        return f"class names {listed} (integer labels named by their value)"

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names), "numbers": list(self.numbers)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LabelSet":
        return cls(tuple(data["names"]), tuple(data["numbers"]))


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """The selected source classes in output order: output label i is source class `selected[i]`."""

    label_set: LabelSet
    selected: tuple[int, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Output class names, index = output label."""
        return tuple(self.label_set.names[i] for i in self.selected)

    @functools.cached_property
    def _output_of(self) -> dict[int, int]:
        return {source: out for out, source in enumerate(self.selected)}

    def output_label(self, source_index: int) -> Optional[int]:
        """The output label of a source class, None when the class is not selected."""
        return self._output_of.get(source_index)


def select_classes(label_set: LabelSet, classes: Sequence[str]) -> LabelMap:
    """Apply `classes` (names or integer labels, in output order); empty keeps all classes."""
    if not classes:
        return LabelMap(label_set, tuple(range(len(label_set.names))))
    selected: list[int] = []
    for entry in classes:
        index = label_set.index(entry)
        if index is None:
            raise ConfigError("classes", entry, label_set.describe())
        if index in selected:
            first = classes[selected.index(index)]
            raise ConfigError("classes", entry, f"each class once ({entry!r} and {first!r} name the same class)")
        selected.append(index)
    return LabelMap(label_set, tuple(selected))
