"""A run's record (`runs/<run>/run.json`): never left saying "running" once the run is over.

Status: "running", then "succeeded", "failed" (with the step and the error)
or "interrupted" (Ctrl-C or SIGTERM, with the step). A run killed outright
(SIGKILL, power loss) cannot write its own end, so the record names the
process that runs it (host, pid, the process's start time): a "running"
record of this host whose process is gone is stale, and the next run (and
`tlpipe runs`) marks it "interrupted".
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
from typing import Any, Iterator, Optional

from tlpipe.models.plumbing.artifacts import read_json, write_json

RUN_FILE = "run.json"
LOG_FILE = "kfp.log"
RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _process_start(pid: int) -> Optional[str]:
    """The kernel's start time of process `pid` (clock ticks since boot), None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid())}


def process_gone(record: dict[str, Any]) -> bool:
    """True when the process a record names no longer runs (only decidable on the record's own host)."""
    process = record.get("process") or {}
    pid = process.get("pid")
    if process.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    started = process.get("process_start")
    return started is not None and _process_start(pid) not in (None, started)  # the pid now belongs to another


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so that it ends (and is recorded) like Ctrl-C."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM raises `Terminated` (in the main thread; elsewhere nothing changes)."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class RunRecord:
    """The record of one run, written at every change of status."""

    def __init__(self, record_dir: str, data: dict[str, Any]):
        self.record_dir = record_dir
        self.data = data

    @property
    def path(self) -> str:
        return os.path.join(self.record_dir, RUN_FILE)

    @property
    def log_path(self) -> str:
        return os.path.join(self.record_dir, LOG_FILE)

    @classmethod
    def start(cls, record_dir: str, **fields: Any) -> "RunRecord":
        record = cls(record_dir, {**fields, "started": now(), "status": RUNNING, "process": _this_process()})
        record.write()
        return record

    def write(self) -> None:
        write_json(self.path, self.data)

    def running_step(self, step: str) -> None:
        """Note the step now running (what a killed run's record names when it is found stale)."""
        self.data["step"] = step
        self.write()

    def _end(self, status: str, **fields: Any) -> None:
        self.data.update(status=status, finished=now(), **{k: v for k, v in fields.items() if v is not None})
        self.write()

    def succeed(self, steps: dict[str, Any], outcome: dict[str, Any], run_dir: str) -> None:
        """`steps`: artifact folder and cache use per step; `outcome`: `step_summary.run_outcome`;
        `run_dir`: the folder of the steps this run executed ('' when every one came from the cache)."""
        self.data.pop("step", None)
        self._end(SUCCEEDED, steps=steps, outcome=outcome, run_dir=run_dir)

    def fail(self, error: BaseException, step: Optional[str]) -> None:
        self._end(FAILED, step=step, error=str(error) or type(error).__name__)

    def interrupt(self, reason: str, step: Optional[str]) -> None:
        self._end(INTERRUPTED, step=step, reason=reason)


def list_records(runs_dir: str) -> list[RunRecord]:
    """Every run record under `runs_dir`, oldest first; stale "running" ones are marked "interrupted" first."""
    records = []
    if not os.path.isdir(runs_dir):
        return records
    for name in sorted(os.listdir(runs_dir)):
        path = os.path.join(runs_dir, name, RUN_FILE)
        if not os.path.isfile(path):
            continue
        try:
            data = read_json(path)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        record = RunRecord(os.path.dirname(path), data)
        if data.get("status") == RUNNING and process_gone(data):
            record.interrupt("its process ended without recording the run's end (killed?)", data.get("step"))
        records.append(record)
    return records
