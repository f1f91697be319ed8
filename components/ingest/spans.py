"""Spans: numbered versions of a source for scheduled retraining.

A LOCATION containing `{SPAN}` (e.g. `/data/span-{SPAN}/labels.csv`) matches
every existing path where `{SPAN}` is a number; the highest number is the
latest span and is used unless a span is requested.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Optional

from tlpipe.components.ingest.config import SPAN_TOKEN
from tlpipe.models.plumbing.errors import DataError


@dataclasses.dataclass(frozen=True)
class ResolvedSpan:
    """The location to read, the span it belongs to (None without `{SPAN}`) and all spans found."""

    location: str
    span: Optional[int]
    available: tuple[int, ...]


def resolve_span(location: str, span: Optional[int]) -> ResolvedSpan:
    """Replace `{SPAN}` by the requested span, or by the latest one that exists."""
    if SPAN_TOKEN not in location:
        return ResolvedSpan(location, None, ())
    # The path up to the end of the component holding the first {SPAN} names the span.
    component_end = location.find(os.sep, location.index(SPAN_TOKEN))
    head = location if component_end < 0 else location[:component_end]
    pieces = head.split(SPAN_TOKEN)
    pattern = "*".join(glob.escape(p) for p in pieces)
    matcher = re.compile("(\\d+)".join(re.escape(p) for p in pieces))
    found: dict[int, str] = {}
    for path in glob.glob(pattern):
        match = matcher.fullmatch(path)
        if match and len(set(match.groups())) == 1:
            found.setdefault(int(match.group(1)), match.group(1))
    available = tuple(sorted(found))
    if not available:
        parent = os.path.dirname(head)
        where = f"folder {parent!r} does not exist" if parent and not os.path.isdir(parent) else f"nothing matches {pattern!r}"
        raise DataError(f"no span found for source location {location!r}: {where}; expected paths where {SPAN_TOKEN} is a number")
    if span is None:
        span = available[-1]
    elif span not in found:
        raise DataError(
            f"span {span} does not exist for source location {location!r}; available spans: "
            + ", ".join(str(s) for s in available)
        )
    return ResolvedSpan(location.replace(SPAN_TOKEN, found[span]), span, available)
