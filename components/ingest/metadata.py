"""After the Beam run: the checks that need the data, and the ingest metadata.

The pipeline's stats (see transforms.py) say how many examples each source
split, output split and class had; from them follow the errors that only the
data can reveal and the `metadata.json` that later components read:

    label_names, num_classes, modality      the output classes (label i = label_names[i])
    counts {split: {class: n}}, num_examples {split: n}    what was written
    unlabeled {split, from_split, num_examples}   with ingest.unlabeled: the unsampled
                                            `train` examples written without labels
                                            (counted in num_examples, not in counts)
    available {split: {class: n}}           per class before k-shot sampling
    source_counts {source split: n}         examples read
    shared_content {split: n}               examples whose content is also in `train` (duplicates.py;
                                            {} unless ingest.allow_overlapping_splits lets them through)
    source, resolved_source, span, available_spans, fingerprint, source_label_names
    splits, shots, seed, num_shards         the config that produced them
    label_tasks {task: {label_names, num_classes, derived_from + mapping or feature, counts}}
                                            the further labels (`ingest.label_tasks`), {} when none
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.duplicates import check_shared_content, shared_content
from tlpipe.components.ingest.label_tasks import resolve_label_tasks, task_metadata
from tlpipe.components.ingest.labels import LabelSet, select_classes
from tlpipe.components.ingest.spans import ResolvedSpan
from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.plumbing.example_format import UNLABELED_SOURCE_SPLIT, UNLABELED_SPLIT

_MAX_LISTED = 10


def _listed(items: list[str]) -> str:
    return "; ".join(items[:_MAX_LISTED]) + (f"; ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def build_metadata(
    config: IngestConfig, resolved: ResolvedSpan, modality: str, fingerprint: str, stats: dict[str, Any]
) -> dict[str, Any]:
    """Check the run's stats and return the metadata; raises DataError/ConfigError for bad data."""
    counts: dict[str, dict[Any, dict[Any, int]]] = defaultdict(lambda: defaultdict(dict))
    for kind, split, label, n in stats["counts"]:
        counts[kind][split][label] = n
    read_splits = sorted({spec.source_split for spec in config.split_specs().values()})
    source_counts = {split: counts["read"][split].get(None, 0) for split in read_splits}
    if not sum(source_counts.values()):
        raise DataError(f"empty dataset: source {config.source!r} has no examples in source split(s) {', '.join(read_splits)}")
    label_set = LabelSet.from_json(stats["label_set"])
    unknown = counts["unknown"][None]
    if unknown:
        received = [f"{label!r} ({n} examples)" for label, n in sorted(unknown.items(), key=lambda item: str(item[0]))]
        raise DataError(
            f"labels outside the label set in {config.source!r}: received {_listed(received)}; allowed: "
            f"{label_set.describe()} (fix the data or label_names)"
        )
    names = select_classes(label_set, config.classes).names
    tasks = resolve_label_tasks(config.label_tasks, names)
    _check_splits(config, counts, names, source_counts)
    written = {split: {name: counts["written"][split].get(i, 0) for i, name in enumerate(names)} for split in config.splits}
    _check_coverage(config, names, written)
    check_shared_content(counts, config.allow_overlapping_splits)
    num_examples = {split: sum(per_class.values()) for split, per_class in written.items()}
    unlabeled = None
    if config.unlabeled:
        num_examples[UNLABELED_SPLIT] = sum(counts["written"][UNLABELED_SPLIT].values())
        unlabeled = {"split": UNLABELED_SPLIT, "from_split": UNLABELED_SOURCE_SPLIT,
                     "num_examples": num_examples[UNLABELED_SPLIT]}
    return {
        "label_names": list(names),
        "num_classes": len(names),
        "modality": modality,
        "counts": written,
        "num_examples": num_examples,
        "unlabeled": unlabeled,
        "available": {
            split: {name: counts["available"][split].get(i, 0) for i, name in enumerate(names)} for split in config.splits
        },
        "source_counts": source_counts,
        "shared_content": shared_content(counts),
        "source": config.source,
        "resolved_source": f"{config.scheme}:{resolved.location}",
        "span": resolved.span,
        "available_spans": list(resolved.available),
        "fingerprint": fingerprint,
        "source_label_names": list(label_set.names),
        "splits": dict(config.splits),
        "shots": dict(config.shots),
        "seed": config.seed,
        "num_shards": config.num_shards,
        "label_tasks": task_metadata(config.label_tasks, tasks, counts, list(config.splits)),
    }


def _check_splits(
    config: IngestConfig, counts: dict[str, dict[Any, dict[Any, int]]], names: tuple[str, ...], source_counts: dict[str, int]
) -> None:
    """Every output split has examples; a k-shot split has at least k of every class."""
    specs = config.split_specs()
    for split, spec in specs.items():
        if not sum(counts["available"][split].values()):
            raise DataError(
                f"output split {split!r} ({config.splits[split]!r}) has no examples of the selected classes; source "
                f"split {spec.source_split!r} has {source_counts.get(spec.source_split, 0)} examples in all: widen the "
                "range, pick other classes, or add data"
            )
    shortages = [
        f"split {split!r} class {name!r}: {counts['available'][split].get(i, 0)} available, k={k}"
        for split, k in config.shots.items()
        for i, name in enumerate(names)
        if counts["available"][split].get(i, 0) < k
    ]
    if shortages:
        raise DataError(
            "k-shot sampling asks for more examples than a class has: " + _listed(shortages) + "; lower 'shots' "
            "to at most the available count, widen the split, or add data"
        )


# The splits every class must reach: a class never trained on cannot be predicted, one never tested cannot be
# judged, and the verdict would silently cover fewer classes than the model serves.
COVERED_SPLITS = ("train", "test")


def _check_coverage(config: IngestConfig, names: tuple[str, ...], written: dict[str, dict[str, int]]) -> None:
    """At least two classes, and every class in the training and test splits (those the config has)."""
    if len(names) < 2:
        raise DataError(
            f"{config.source!r} has {len(names)} class ({', '.join(map(repr, names)) or 'none'}): a classifier needs "
            "at least 2; add the other classes' data (a sub-folder or label per class), or widen ingest.classes"
        )
    missing = [f"class {name!r} has no example in split {split!r} ({config.splits[split]!r})"
               for split in COVERED_SPLITS if split in written
               for name in names if not written[split].get(name)]
    if missing and not config.allow_missing_classes:
        raise DataError(
            "every class needs examples in the training and the test split: " + _listed(missing) + "; add examples "
            "of those classes, change ingest.splits so that each split has some, leave the classes out "
            "(ingest.classes), or accept it with ingest.allow_missing_classes: true"
        )
