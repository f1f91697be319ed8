"""Progress lines for long work: stage, count processed, rate.

Components report through `Progress`; the CLI turns it off with `-q` by
calling `set_quiet(True)`. Lines go to stderr so stdout stays for results.
"""

from __future__ import annotations

import sys
import time

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) progress output for the whole process."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def log(message: str) -> None:
    """Print one progress line unless quiet."""
    if not _quiet:
        print(f"[tlpipe] {message}", file=sys.stderr, flush=True)


class Progress:
    """Counts items of one stage and prints a line at most every `interval_s` seconds."""

    def __init__(self, stage: str, unit: str = "examples", interval_s: float = 5.0):
        self.stage = stage
        self.unit = unit
        self.interval_s = interval_s
        self.count = 0
        self._start = time.monotonic()
        self._last = self._start
        log(f"{stage}: started")

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            log(f"{self.stage}: {self.count} {self.unit} ({self.rate():.1f}/s)")

    def rate(self) -> float:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        return self.count / elapsed

    def done(self, extra: str = "") -> None:
        elapsed = time.monotonic() - self._start
        suffix = f"; {extra}" if extra else ""
        log(f"{self.stage}: done, {self.count} {self.unit} in {elapsed:.1f}s ({self.rate():.1f}/s){suffix}")
