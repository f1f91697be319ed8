"""Ending the step processes of an interrupted run, so that none outlives the `tlpipe` command.

kfp.local runs each step in a child process of `tlpipe`. When Ctrl-C or SIGTERM
ends the command, kfp.local stops waiting for that child and returns: the step
went on under PID 1 for half a minute and wrote a partial model (issue #26).
The local runner therefore ends every descendant before it records the run as
interrupted: SIGINT first (a step then stops like a Ctrl-C: its temporary
output folder is removed), SIGKILL for what is still there after a grace
period. Linux only (the process tree is read from /proc); elsewhere nothing is
found and nothing is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

GRACE_S = 30.0
_POLL_S = 0.1


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first, parent pid second); [] when gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, their children, ...), parents before children."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            fields = _stat(int(entry))
            if len(fields) > 1:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, frontier = [], [pid]
    while frontier:
        children = [child for parent in frontier for child in parents.get(parent, [])]
        found += children
        frontier = children
    return found


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, ended but not yet reaped, does not)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def end_descendants(pid: int, grace_s: float = GRACE_S) -> list[int]:
    """SIGINT every descendant of `pid`, wait up to `grace_s` for them to end, SIGKILL the rest; returns them."""
    processes = descendants(pid)
    _signal(processes, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while _remaining(processes) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    _signal(_remaining(processes), signal.SIGKILL)
    deadline = time.monotonic() + grace_s  # SIGKILL ends a process unless the kernel holds it (a hung disk)
    while _remaining(processes) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    return processes


def _signal(processes: list[int], signum: int) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process, signum)


def _remaining(processes: list[int]) -> list[int]:
    """The processes still alive; this process's own children that ended are reaped on the way."""
    for process in processes:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(process, os.WNOHANG)
    return [process for process in processes if alive(process)]
