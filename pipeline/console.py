"""The terminal during a run: a line per step, a bar per training phase; the rest only in the run's log.

kfp.local runs each step in a child process and prints everything the child
writes (kfp's executor_input JSON, TensorFlow's C++ start-up lines, warnings)
through this process's stdout, next to its own log records and warnings; a
step running in this process writes to the same two file descriptors.
`capture` points descriptors 1 and 2 (and sys.stdout / sys.stderr) at a pipe
for the duration of a run. A reader thread writes every line into the run's
log (`kfp.log`) and shows on the terminal only:
- one line when a step starts and when it ends (its time, whether it came from
  kfp's cache, and its key number, read from its output artifact);
- tlpipe's notes and progress bars (`tlpipe.models.plumbing.progress` events, which the
  steps emit because `capture` sets `progress.EVENTS_ENV` for them);
- with `-v`, every line; with `-q`, nothing (errors and the headline are
  printed by the CLI after the run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
import warnings
from typing import IO, Callable, Iterator, Optional, TextIO

from tlpipe.models.plumbing import progress

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp.local's own log records: "20:39:51.792 - INFO - Executing task 'ingest'".
_KFP_RECORD = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} - [A-Z]+ - (.*)$")
_STARTED = re.compile(r"^Executing task '([^']+)'")
_CACHED = re.compile(r"^Task '?([^'\s]+)'? cache hit")
_FINISHED = re.compile(r"^Task '([^']+)' finished with status (\w+)")
_OUTPUTS = re.compile(r"^Task '([^']+)' (?:outputs:|has no outputs)")
_OUTPUT_URI = re.compile(r"uri='([^']*)'")
# How long the console waits for the last lines once the run is over.
JOIN_TIMEOUT_S = 30.0
# What TensorFlow's C++ start-up writes to stderr (absl-style log lines and their preamble), and the LiteRT
# converter's and interpreter's notices (edge exports: "fully_quantize: 0, ...", "INFO: Created TensorFlow Lite
# XNNPACK delegate for CPU.").
_TF_STARTUP = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)"
                         r"|[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]"
                         r"|To enable the following instructions:"
                         r"|fully_quantize: \d|INFO: Created TensorFlow Lite XNNPACK delegate)")

_held_lines: list[str] = []  # start-up lines held back until a run's log opens
_real_stderr: Optional[int] = None  # the descriptor of the terminal while `hide_startup_lines` filters fd 2


class Console:
    """Turns the lines of a run's output into the run's log and what the terminal shows."""

    def __init__(self, log: IO[str], renderer: progress.Renderer, verbosity: int,
                 on_step: Optional[Callable[[str], None]] = None):
        self.log = log
        self.renderer = renderer
        self.verbosity = verbosity
        self.on_step = on_step
        self._started: dict[str, float] = {}
        self._finished: Optional[tuple[str, str, float]] = None  # task, status, seconds: waits for its outputs
        self._uris: list[str] = []
        self.failed_step: Optional[str] = None
        # kfp.local's task names (train, train-2, ...) -> the graph's step names (adapters.kfp_step_names)
        self.step_names: dict[str, str] = {}

    @property
    def current_step(self) -> Optional[str]:
        """The step that failed, else the last one started and not ended (what a failed run names)."""
        if self.failed_step is not None:
            return self.failed_step
        return next(reversed(self._started), None)

    def show(self, text: str, level: int = progress.NORMAL) -> None:
        if self.verbosity >= level:
            self.renderer.line(text)

    def feed(self, line: str) -> None:
        """One line of output (without its newline)."""
        self.log.write(line + "\n")
        try:
            self._interpret(_ANSI.sub("", line))
        except Exception as error:  # a line the console cannot read must never stall the run's output
            self.log.write(f"[tlpipe console] could not interpret the line above: {error!r}\n")

    def _interpret(self, text: str) -> None:
        event = progress.parse_event(text.strip())
        if event is not None:
            kind, payload = event
            if kind == "bar":
                if self.verbosity >= progress.NORMAL:
                    self.renderer.bar(payload)
            elif kind == "step":
                self._step_event(payload)
            else:
                self.show(text.strip() if kind == "log" else payload,
                          progress.VERBOSE if kind == "log" else progress.NORMAL)
            return
        record = _KFP_RECORD.match(text)
        if record is None:
            if self._finished is not None:
                self._uris.extend(_OUTPUT_URI.findall(text))
            self.show(text, progress.VERBOSE)
            return
        message = record.group(1)
        outputs = _OUTPUTS.match(message)
        if outputs is None or self._finished is None or self._step_name(outputs.group(1)) != self._finished[0]:
            self._end_finished_step()
        self.show(text, progress.VERBOSE)
        if match := _STARTED.match(message):
            self._step_event({"step": self._step_name(match.group(1)), "status": "started"})
        elif match := _CACHED.match(message):
            self.show(progress.step_line(self._step_name(match.group(1)), "cached"))
        elif match := _FINISHED.match(message):
            task, status = self._step_name(match.group(1)), match.group(2)
            self._finished = (task, status, time.monotonic() - self._started.pop(task, time.monotonic()))
            self._uris = _OUTPUT_URI.findall(message)

    def _step_name(self, task: str) -> str:
        return self.step_names.get(task, task)

    def _step_event(self, event: dict) -> None:
        """A step's start or end, from kfp's records or a `progress.step` event."""
        name, status = event["step"], event["status"]
        if status == "started":
            self._started[name] = time.monotonic()
            self.show(progress.step_line(name, "started"))
            if self.on_step is not None:
                self.on_step(name)
            return
        seconds = event.get("seconds", time.monotonic() - self._started.get(name, time.monotonic()))
        self._started.pop(name, None)
        self._finished = (name, "SUCCESS" if status == "done" else status.upper(), seconds)
        self._uris = list(event.get("outputs", []))
        self._end_finished_step()

    def _end_finished_step(self) -> None:
        """The end line of the step that finished last, now that its outputs were listed."""
        if self._finished is None:
            return
        task, status, seconds = self._finished
        self._finished = None
        if status != "SUCCESS":
            self.failed_step = task
            self.renderer.close()
            self.show(progress.step_line(task, f"{status.lower()} after {seconds:.0f} s"), progress.NORMAL)
            return
        # Imported here: the step summaries read component specs, which load TensorFlow
        # (this module is imported by the CLI before `hide_startup_lines` starts).
        from tlpipe.pipeline.step_summary import artifact_summary

        summaries = [summary for summary in (artifact_summary(uri) for uri in self._uris) if summary]
        self.show(progress.step_line(task, f"done in {seconds:.0f} s" + "".join(f"  {s}" for s in summaries)))

    def close(self) -> None:
        self._end_finished_step()
        self.renderer.close()
        self.log.flush()

    def read(self, stream: TextIO) -> None:
        for line in stream:
            self.feed(line.rstrip("\n"))


def _terminal() -> TextIO:
    """Where the console writes: the current stderr, through a descriptor that `capture` does not redirect."""
    if _real_stderr is not None and sys.stderr is sys.__stderr__:
        return os.fdopen(os.dup(_real_stderr), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    if descriptor not in (1, 2):
        return sys.stderr
    sys.stderr.flush()
    return os.fdopen(os.dup(descriptor), "w", buffering=1, encoding="utf-8", errors="replace")


@contextlib.contextmanager
def capture(log_path: str, verbosity: Optional[int] = None,
            on_step: Optional[Callable[[str], None]] = None) -> Iterator[Console]:
    """Everything written to stdout and stderr inside goes to `log_path`; the terminal shows what `Console` keeps.

    `verbosity` defaults to the process's (`progress.verbosity()`); `on_step(name)` is called when a step starts.
    """
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    terminal = _terminal()
    log = open(log_path, "a", encoding="utf-8", errors="replace")
    log.writelines(line + "\n" for line in _held_lines)
    _held_lines.clear()
    console = Console(log, progress.Renderer(terminal), progress.verbosity() if verbosity is None else verbosity,
                      on_step)
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "r", encoding="utf-8", errors="replace")
    thread = threading.Thread(target=console.read, args=(reader,), name="tlpipe-console", daemon=True)
    thread.start()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    saved_events = os.environ.get(progress.EVENTS_ENV)
    writer = os.fdopen(write_fd, "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    sys.stdout = sys.stderr = writer
    os.environ[progress.EVENTS_ENV] = "1"
    # kfp.local logs some records (a task's cache hit) outside its own logging set-up, at INFO.
    root_logger, level = logging.getLogger(), logging.getLogger().level
    handler = logging.StreamHandler(writer)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d - %(levelname)s - %(message)s", "%H:%M:%S"))
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    try:
        yield console
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(level)
        if saved_events is None:
            os.environ.pop(progress.EVENTS_ENV, None)
        else:
            os.environ[progress.EVENTS_ENV] = saved_events
        writer.flush()
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for descriptor in saved_fds:
            os.close(descriptor)
        writer.close()  # the pipe's last writer, unless a process the run started outlives it
        thread.join(timeout=JOIN_TIMEOUT_S)
        reader.close()
        console.close()
        log.close()
        if terminal is not sys.stderr:
            terminal.close()


@contextlib.contextmanager
def hide_startup_lines() -> Iterator[None]:
    """Inside, TensorFlow's C++ start-up lines on stderr (oneDNN, cuda, cuInit) are held back for the next
    run's log (`capture` writes them there first) instead of the terminal; every other line passes.

    TF_CPP_MIN_LOG_LEVEL does not reach them: they are written before absl's logging is initialised.
    """
    global _real_stderr
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")

    def forward() -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as reader:
            for line in reader:
                if _TF_STARTUP.match(line):
                    _held_lines.append(line.rstrip("\n"))
                else:
                    terminal.write(line)

    thread = threading.Thread(target=forward, name="tlpipe-startup-filter", daemon=True)
    thread.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    _real_stderr = saved
    try:
        yield
    finally:
        sys.stderr.flush()
        _real_stderr = None
        os.dup2(saved, 2)
        os.close(saved)
        thread.join(timeout=JOIN_TIMEOUT_S)
        terminal.close()
