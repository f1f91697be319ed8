"""Per-split statistics of a transform run, and the checks the run makes on them.

`SplitStatistics` is the state of a Beam combiner: it adds the summary of each
record (`ImageSummary`, `TextSummary` or `BadRecord` from `records`) and merges
with other partial states. Pixel moments are kept as exact integer sums of the
uint8 values, so the result does not depend on how Beam splits the work.
Pixel mean and std are reported per channel for pixels scaled to [0, 1].
"""

from __future__ import annotations

import collections
import math
from typing import Any, Optional

from tlpipe.components.transform.records import BadRecord, ImageSummary, TextSummary
from tlpipe.models.plumbing.errors import DataError

FIRST_BAD_KEPT = 5


class _Range:
    """Count, min, max and total of integer observations."""

    def __init__(self) -> None:
        self.count = 0
        self.min: Optional[int] = None
        self.max: Optional[int] = None
        self.total = 0

    def add(self, value: int) -> None:
        self.merge_values(1, value, value, value)

    def merge_values(self, count: int, low: Optional[int], high: Optional[int], total: int) -> None:
        if count == 0:
            return
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        self.count += count
        self.total += total

    def merge(self, other: "_Range") -> None:
        self.merge_values(other.count, other.min, other.max, other.total)

    def report(self) -> dict[str, Any]:
        mean = self.total / self.count if self.count else None
        return {"min": self.min, "max": self.max, "mean": mean}


class SplitStatistics:
    """Mergeable statistics of one split."""

    def __init__(self) -> None:
        self.examples = 0
        self.class_counts: collections.Counter[int] = collections.Counter()
        self.bad_kinds: collections.Counter[str] = collections.Counter()
        self.first_bad: list[tuple[str, str]] = []  # (id, reason), smallest ids first
        self.source_shapes: collections.Counter[tuple[int, int, int]] = collections.Counter()
        # keyed by the number of output channels: images, pixels per channel, sums, sums of squares
        self.channel_images: collections.Counter[int] = collections.Counter()
        self.channel_pixels: collections.Counter[int] = collections.Counter()
        self.channel_sums: dict[int, list[int]] = {}
        self.channel_square_sums: dict[int, list[int]] = {}
        self.chars = _Range()
        self.tokens = _Range()

    def add(self, summary: ImageSummary | TextSummary | BadRecord) -> None:
        """Count one record's summary."""
        if isinstance(summary, BadRecord):
            self.bad_kinds[summary.kind] += 1
            self._keep_first_bad([(summary.id, summary.reason)])
            return
        self.examples += 1
        self.class_counts[summary.label] += 1
        if isinstance(summary, ImageSummary):
            self.source_shapes[summary.source_shape] += 1
            channels = len(summary.channel_sums)
            self.channel_images[channels] += 1
            self.channel_pixels[channels] += summary.pixels
            _add_into(self.channel_sums, channels, summary.channel_sums)
            _add_into(self.channel_square_sums, channels, summary.channel_square_sums)
        else:
            self.chars.add(summary.chars)
            self.tokens.add(summary.tokens)

    def merge(self, other: "SplitStatistics") -> None:
        """Fold another partial state into this one."""
        self.examples += other.examples
        self.class_counts.update(other.class_counts)
        self.bad_kinds.update(other.bad_kinds)
        self._keep_first_bad(other.first_bad)
        self.source_shapes.update(other.source_shapes)
        self.channel_images.update(other.channel_images)
        self.channel_pixels.update(other.channel_pixels)
        for channels, sums in other.channel_sums.items():
            _add_into(self.channel_sums, channels, sums)
        for channels, sums in other.channel_square_sums.items():
            _add_into(self.channel_square_sums, channels, sums)
        self.chars.merge(other.chars)
        self.tokens.merge(other.tokens)

    def _keep_first_bad(self, records: list[tuple[str, str]]) -> None:
        self.first_bad = sorted(self.first_bad + list(records))[:FIRST_BAD_KEPT]

    def report(self, modality: str, label_names: list[str]) -> dict[str, Any]:
        """JSON-ready statistics; class counts by name, pixel moments in [0, 1]."""
        bad = sum(self.bad_kinds.values())
        total = self.examples + bad
        result: dict[str, Any] = {
            "examples": self.examples,
            "bad_records": bad,
            "bad_fraction": bad / total if total else 0.0,
            "bad_reasons": dict(sorted(self.bad_kinds.items())),
            "first_bad_records": [{"id": i, "reason": r} for i, r in self.first_bad],
            "class_counts": {name: self.class_counts[index] for index, name in enumerate(label_names)},
        }
        if modality == "image":
            result["image"] = self._image_report()
        else:
            result["text"] = {"chars": self.chars.report(), "tokens": self.tokens.report()}
        return result

    def _image_report(self) -> dict[str, Any]:
        mean = std = None
        if len(self.channel_images) == 1:
            (channels,) = self.channel_images
            n = self.channel_pixels[channels]
            sums, squares = self.channel_sums[channels], self.channel_square_sums[channels]
            mean = [s / n / 255.0 for s in sums]
            # n * sum(v^2) - sum(v)^2 is exact in integers, so the variance has no cancellation error.
            std = [math.sqrt(n * q - s * s) / n / 255.0 for s, q in zip(sums, squares)]
        heights = [shape[0] for shape in self.source_shapes]
        widths = [shape[1] for shape in self.source_shapes]
        return {
            "channel_counts": {str(c): n for c, n in sorted(self.channel_images.items())},
            "pixel_mean": mean,
            "pixel_std": std,
            "source": {
                "min_height": min(heights, default=None),
                "max_height": max(heights, default=None),
                "min_width": min(widths, default=None),
                "max_width": max(widths, default=None),
                "shapes": {"x".join(map(str, shape)): n for shape, n in sorted(self.source_shapes.items())},
            },
        }


def _add_into(target: dict[int, list[int]], key: int, values: Any) -> None:
    if key in target:
        target[key] = [a + b for a, b in zip(target[key], values)]
    else:
        target[key] = list(values)


def check_bad_fractions(split_reports: dict[str, dict[str, Any]], max_bad_fraction: float) -> None:
    """Raise `DataError` naming every split whose bad fraction exceeds `max_bad_fraction`."""
    failing = {s: r for s, r in split_reports.items() if r["bad_fraction"] > max_bad_fraction}
    if not failing:
        return
    lines = []
    for split, report in sorted(failing.items()):
        total = report["examples"] + report["bad_records"]
        reasons = "; ".join(f"id {b['id']!r}: {b['reason']}" for b in report["first_bad_records"])
        lines.append(
            f"split '{split}': {report['bad_records']} of {total} records are bad "
            f"({report['bad_fraction']:.2%}); first reasons: {reasons}"
        )
    needed = math.ceil(max(r["bad_fraction"] for r in failing.values()) * 1000) / 1000
    raise DataError(
        f"transform: too many bad records, above transform.max_bad_fraction={max_bad_fraction:g}:\n  "
        + "\n  ".join(lines)
        + f"\nFix or drop these records at the source, or accept them by raising the threshold, "
        f"e.g. --set transform.max_bad_fraction={needed:g} (bad records are then written to "
        f"bad_records/<split>.jsonl in the transform output)."
    )


def resolve_channels(split_reports: dict[str, dict[str, Any]], requested: Optional[int]) -> Optional[int]:
    """The one channel count of all transformed images; `DataError` when images disagree.

    Only possible when `transform.channels` is null and the data mixes grey and colour.
    """
    counts: collections.Counter[str] = collections.Counter()
    for report in split_reports.values():
        counts.update(report["image"]["channel_counts"])
    if len(counts) > 1:
        found = ", ".join(f"{n} images with {c} channel(s)" for c, n in sorted(counts.items()))
        raise DataError(
            f"transform: images decode to different channel counts ({found}) and transform.channels "
            f"is null, so they cannot share one shape; set transform.channels to 1 or 3, "
            f"e.g. --set transform.channels=3"
        )
    if counts:
        return int(next(iter(counts)))
    return requested
