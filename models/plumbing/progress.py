"""What a person sees while tlpipe works: notes, one progress bar per training phase, details.

Three kinds of output, shown by verbosity (`tlpipe -q`: QUIET, default: NORMAL,
`tlpipe -v`: VERBOSE):
- `note(message)`: a line worth reading at the default verbosity;
- `step(name)`: a pipeline step's start and end lines;
- `Bar`: a training phase's progress (epoch, step, accuracy, eta), redrawn in
  place on a terminal and printed as a few plain lines otherwise;
- `log(message)` and `Progress`: details (set-up, counts, every epoch), shown
  with `-v` only.
Output goes to stderr, so stdout stays for results.

Pipeline steps often run where no person looks: kfp.local runs each one in a
child process whose output its parent collects into the run's log. With
`EVENTS_ENV` set to "1" (the parent's console sets it), every note, bar update
and detail is written as one marked line instead, whatever the verbosity; the
console decodes them with `parse_event` and shows them with a `Renderer`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from typing import Any, Iterator, Optional, TextIO

QUIET, NORMAL, VERBOSE = 0, 1, 2
EVENTS_ENV = "TLPIPE_PROGRESS_EVENTS"
LOG_MARK = "[tlpipe] "
NOTE_MARK = "[tlpipe:note] "
STEP_MARK = "[tlpipe:step] "
BAR_MARK = "[tlpipe:bar] "
# A plain (non-terminal) bar prints when its phase passes each of these fractions, and when it ends.
PLAIN_MILESTONES = (0.25, 0.5, 0.75)
BAR_WIDTH = 20

_verbosity = NORMAL


def set_verbosity(level: int) -> None:
    """QUIET, NORMAL or VERBOSE for the whole process."""
    global _verbosity
    if level not in (QUIET, NORMAL, VERBOSE):
        raise ValueError(f"verbosity {level!r}; allowed: {QUIET} (quiet), {NORMAL} (normal), {VERBOSE} (verbose)")
    _verbosity = level


def verbosity() -> int:
    return _verbosity


def set_quiet(quiet: bool) -> None:
    """Silence progress output (`-q`), or lift the silence (back to NORMAL unless more verbose)."""
    if quiet:
        set_verbosity(QUIET)
    elif _verbosity == QUIET:
        set_verbosity(NORMAL)


def is_quiet() -> bool:
    return _verbosity == QUIET


def emits_events() -> bool:
    """True where a console collects this process's output (see the module docstring)."""
    return os.environ.get(EVENTS_ENV) == "1"


def _emit(mark: str, text: str, level: int) -> None:
    if emits_events():
        print(mark + text, file=sys.stderr, flush=True)
    elif _verbosity >= level:
        _renderer().line(mark + text if mark == LOG_MARK else text)


def log(message: str) -> None:
    """A detail line: shown with `-v`, always kept in the run's log."""
    _emit(LOG_MARK, message, VERBOSE)


def note(message: str) -> None:
    """A line shown at the default verbosity."""
    _emit(NOTE_MARK, message, NORMAL)


def step_line(step: str, what: str) -> str:
    """The line for a pipeline step's start or end: the time, the step, what happened."""
    return f"{time.strftime('%H:%M:%S')}  {step:<22} {what}"


class StepReport:
    """What `step` reports at the end: the folders the step wrote (their key numbers go in the end line)."""

    def __init__(self) -> None:
        self.outputs: list[str] = []


@contextlib.contextmanager
def step(name: str) -> Iterator[StepReport]:
    """A pipeline step run in this process: its start and end lines (the console reads them as kfp's)."""
    report = StepReport()
    started = time.monotonic()
    _step_event({"step": name, "status": "started"})
    try:
        yield report
    except BaseException:
        _step_event({"step": name, "status": "failed", "seconds": round(time.monotonic() - started, 3)})
        raise
    _step_event({"step": name, "status": "done", "seconds": round(time.monotonic() - started, 3),
                 "outputs": report.outputs})


def _step_event(event: dict[str, Any]) -> None:
    if emits_events():
        print(STEP_MARK + json.dumps(event), file=sys.stderr, flush=True)
    elif _verbosity >= NORMAL:
        seconds = f" after {event['seconds']:.0f} s" if event["status"] == "failed" else \
            f" in {event['seconds']:.0f} s" if "seconds" in event else ""
        _renderer().line(step_line(event["step"], event["status"] + seconds))


class Progress:
    """Counts items of one stage; a detail line at most every `interval_s` seconds."""

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


class Bar:
    """The progress of one training phase: `epochs` epochs of `steps_per_epoch` steps.

    `update` after a batch (sent at most every `interval_s` seconds), `epoch_end`
    after each epoch, `finish` when the phase ends (early or not).
    """

    def __init__(self, label: str, epochs: int, steps_per_epoch: int, interval_s: float = 1.0):
        self.label = label
        self.epochs = max(1, epochs)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.interval_s = interval_s
        self._start = time.monotonic()
        self._last = 0.0

    def _send(self, epoch: int, batches: int, step: int, accuracy: Optional[float],
              val_accuracy: Optional[float], done: bool = False, remark: str = "") -> None:
        fraction = min(1.0, ((epoch - 1) + batches / self.steps_per_epoch) / self.epochs)
        event = {"id": self.label, "label": self.label, "epoch": epoch, "epochs": self.epochs, "step": step,
                 "accuracy": accuracy, "val_accuracy": val_accuracy, "fraction": 1.0 if done else fraction,
                 "elapsed": round(time.monotonic() - self._start, 3), "done": done, "remark": remark}
        if emits_events():
            print(BAR_MARK + json.dumps(event), file=sys.stderr, flush=True)
        elif _verbosity >= NORMAL:
            _renderer().bar(event)

    def due(self) -> bool:
        """True when an `update` now would be sent (at most one every `interval_s` seconds)."""
        return time.monotonic() - self._last >= self.interval_s

    def update(self, epoch: int, batches: int, step: int, accuracy: Optional[float]) -> None:
        """After batch `batches` of epoch `epoch` (1-based), global step `step`; skipped unless `due()`."""
        if self.due():
            self._last = time.monotonic()
            self._send(epoch, batches, step, accuracy, None)

    def epoch_end(self, epoch: int, step: int, accuracy: float, val_accuracy: float) -> None:
        self._last = time.monotonic()
        self._send(epoch, self.steps_per_epoch, step, accuracy, val_accuracy)

    def finish(self, epoch: int, step: int, accuracy: Optional[float], val_accuracy: Optional[float],
               remark: str = "") -> None:
        self._send(epoch, self.steps_per_epoch, step, accuracy, val_accuracy, done=True, remark=remark)


def parse_event(line: str) -> Optional[tuple[str, Any]]:
    """('log'|'note', text) or ('bar'|'step', event) for a marked line, None for any other line."""
    if line.startswith(BAR_MARK):
        try:
            return "bar", json.loads(line[len(BAR_MARK):])
        except json.JSONDecodeError:
            return None
    if line.startswith(STEP_MARK):
        try:
            return "step", json.loads(line[len(STEP_MARK):])
        except json.JSONDecodeError:
            return None
    if line.startswith(NOTE_MARK):
        return "note", line[len(NOTE_MARK):]
    if line.startswith(LOG_MARK):
        return "log", line[len(LOG_MARK):]
    return None


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def format_bar(event: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """One line for a bar event: label, bar, epoch, step, accuracies, eta (or the time taken when done)."""
    fraction = float(event["fraction"])
    filled = int(round(fraction * width))
    parts = [event["label"], "[" + "#" * filled + "." * (width - filled) + "]",
             f"epoch {event['epoch']}/{event['epochs']}", f"step {event['step']}"]
    if event.get("accuracy") is not None:
        parts.append(f"acc {event['accuracy']:.3f}")
    if event.get("val_accuracy") is not None:
        parts.append(f"val {event['val_accuracy']:.3f}")
    elapsed = float(event["elapsed"])
    if event.get("done"):
        parts.append(f"done in {_clock(elapsed)}")
    elif fraction > 0:
        parts.append(f"eta {_clock(elapsed * (1 - fraction) / fraction)}")
    if event.get("remark"):
        parts.append(f"({event['remark']})")
    return "  ".join(parts)


class Renderer:
    """Writes notes and bars to a stream: bars redrawn in place on a terminal, a few plain lines otherwise."""

    def __init__(self, stream: TextIO, tty: Optional[bool] = None):
        self.stream = stream
        if tty is None:
            isatty = getattr(stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self._open = ""  # the bar line now on screen (terminal only)
        self._milestones: dict[str, int] = {}

    def _width(self) -> int:
        return max(40, shutil.get_terminal_size().columns - 1)

    def line(self, text: str) -> None:
        """A whole line; an open bar is cleared first and redrawn below it."""
        if self._open:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        if self._open:
            self.stream.write(self._open)
        self.stream.flush()

    def bar(self, event: dict[str, Any]) -> None:
        if self.tty:
            text = format_bar(event)[: self._width()]
            self.stream.write("\r\x1b[K" + text + ("\n" if event["done"] else ""))
            self._open = "" if event["done"] else text
            self.stream.flush()
            return
        passed = sum(1 for milestone in PLAIN_MILESTONES if event["fraction"] >= milestone)
        if event["done"]:
            self._milestones.pop(event["id"], None)
            self.line(format_bar(event))
        elif passed > self._milestones.get(event["id"], 0):
            self._milestones[event["id"]] = passed
            self.line(format_bar(event))

    def close(self) -> None:
        """End an open bar's line (a phase that stopped without finishing)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = ""


_current: Optional[Renderer] = None


def _renderer() -> Renderer:
    """The renderer over the current sys.stderr (tests and consoles swap sys.stderr)."""
    global _current
    if _current is None or _current.stream is not sys.stderr:
        _current = Renderer(sys.stderr)
    return _current
