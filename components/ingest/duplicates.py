"""Leakage by content: the same example (identical image bytes or text) in the training split and another split.

Split ranges keep example ids apart (split_spec.py), but a source can hold one
image or text twice under two ids (a copied file, a re-scraped page, two
releases of a dataset merged): a model then is tested on what it trained on.
Each written example contributes the SHA-256 digest of the content it stores,
with its split and id; grouping by digest finds the contents that are in the
`train` split and in another one. Only the digests and ids are grouped (never
the contents), and only a count per split and a few id pairs reach the stats
file and the error. Identical bytes are what is compared: the same image
saved again with another encoder is not found.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

import apache_beam as beam

from tlpipe.models.plumbing.errors import DataError

TRAINING_SPLIT = "train"
SHARED_KIND = "shared_content"
SHARED_EXAMPLE_KIND = "shared_content_example"
_EXAMPLES_PER_SPLIT = 3
# An example's digest on its way to the check: (digest, (split, id)).
Digest = tuple[str, tuple[str, str]]


def content_digest(content: bytes) -> str:
    """The digest that identifies a stored content (image bytes or UTF-8 text)."""
    return hashlib.sha256(content).hexdigest()


def _shared(group: tuple[str, Iterable[tuple[str, str]]]) -> Iterator[tuple[str, str, str]]:
    """(split, id of the example there, id of a training example with the same content) per shared example."""
    _, members = group
    by_split: dict[str, list[str]] = {}
    for split, example_id in members:
        by_split.setdefault(split, []).append(example_id)
    training = sorted(by_split.pop(TRAINING_SPLIT, []))
    if training:
        for split, ids in by_split.items():
            for example_id in ids:
                yield split, example_id, training[0]


class SharedContentStats(beam.PTransform):
    """Digests of every written example -> stats rows: how many per split share a training example's content.

    Rows are `(SHARED_KIND, split, None)` once per shared example and
    `(SHARED_EXAMPLE_KIND, split, "'id' = train 'id'")` for the first few (by id), as transforms.py counts them.
    """

    def expand(self, digests: Any) -> Any:
        shared = digests | "Group by content" >> beam.GroupByKey() | "Shared with train" >> beam.FlatMap(_shared)
        counted = shared | "Stat shared" >> beam.Map(lambda row: (SHARED_KIND, row[0], None))
        examples = (
            shared
            | "Describe shared" >> beam.Map(lambda row: (row[0], f"{row[1]!r} = {TRAINING_SPLIT} {row[2]!r}"))
            | "First shared" >> beam.combiners.Top.SmallestPerKey(_EXAMPLES_PER_SPLIT)
            | "Stat shared examples" >> beam.FlatMap(
                lambda keyed: [(SHARED_EXAMPLE_KIND, keyed[0], text) for text in keyed[1]])
        )
        return (counted, examples) | "Merge shared" >> beam.Flatten()


def shared_content(counts: dict[str, dict[Any, dict[Any, int]]]) -> dict[str, int]:
    """Split -> number of its examples whose content is also in the training split (from the stats counts)."""
    return {split: per_label.get(None, 0) for split, per_label in sorted(counts[SHARED_KIND].items())}


def check_shared_content(counts: dict[str, dict[Any, dict[Any, int]]], allowed: bool) -> None:
    """Refuse examples of another split whose content is in the training split, unless `allowed`."""
    shared = shared_content(counts)
    if not shared or allowed:
        return
    found = "; ".join(
        f"{n} example(s) of split {split!r} (e.g. {', '.join(sorted(counts[SHARED_EXAMPLE_KIND][split]))})"
        for split, n in shared.items()
    )
    raise DataError(
        f"leakage: the same content is in split {TRAINING_SPLIT!r} and another split under other ids: {found} "
        "(a model would be evaluated on what it trained on); remove the copies from the source, or accept it "
        "with ingest.allow_overlapping_splits: true"
    )
