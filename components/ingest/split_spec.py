"""Split specs: which examples of a source split an output split takes.

A spec is `SOURCE_SPLIT` (all of it) or `SOURCE_SPLIT[a%:b%]` (either bound may
be left out): the examples whose stable id hashes into [a%, b%). Because the
fraction depends only on the example's id, an example keeps its output split
when data is appended, and complementary ranges (`train[:80%]`,
`train[80%:]`) are disjoint and together cover the source split. Unlike TFDS's
own slicing, the range is not positional.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from tlpipe.models.plumbing.errors import ConfigError

_SPEC_RE = re.compile(
    r"^(?P<split>[A-Za-z0-9_-]+)"
    r"(?:\[(?:(?P<start>\d+(?:\.\d+)?)%)?:(?:(?P<end>\d+(?:\.\d+)?)%)?\])?$"
)
SPEC_FORMAT = "SOURCE_SPLIT or SOURCE_SPLIT[a%:b%] with 0 <= a < b <= 100, e.g. 'train', 'train[:80%]', 'train[80%:]'"


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """A source split and the hash range [start, end) (in percent) taken from it."""

    source_split: str
    start: float = 0.0
    end: float = 100.0

    def contains(self, example_id: str) -> bool:
        """Whether the example with this id falls into the range."""
        return self.start <= 100.0 * stable_fraction(example_id) < self.end

    def shared_with(self, other: "SplitSpec") -> float:
        """The percentage of the source split both specs take (0 for another source split or disjoint ranges)."""
        if self.source_split != other.source_split:
            return 0.0
        return max(0.0, min(self.end, other.end) - max(self.start, other.start))


def parse_split_spec(text: str, key: str) -> SplitSpec:
    """Parse `train`, `train[:80%]`, `train[10%:20%]`; `key` names the config key in errors."""
    match = _SPEC_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(key, text, SPEC_FORMAT)
    start = float(match["start"]) if match["start"] is not None else 0.0
    end = float(match["end"]) if match["end"] is not None else 100.0
    if not 0.0 <= start < end <= 100.0:
        raise ConfigError(key, text, SPEC_FORMAT)
    return SplitSpec(match["split"], start, end)


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) that depends only on `parts` (SHA-256 based, same on every machine)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
