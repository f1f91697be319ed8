"""Test-only fault injection for tests/pipeline/test_faults.py: a process kills itself (SIGKILL) at a named point.

Python imports `sitecustomize` at start-up from the path, so putting this folder
on PYTHONPATH arms every process of a run: the `tlpipe` command and the
kfp.local step subprocesses, which inherit the environment.

TLPIPE_TEST_KILL="before:REGEX" (or "after:REGEX"): the process sends itself
SIGKILL just before (just after) the first `os.rename` / `os.replace` whose
destination path matches REGEX (re.search). Every step publishes its output
folder with a rename (`atomic_output_dir`), writes its JSON files with one
(`write_json`), and the pusher publishes a version with one, so a pattern names
a step and a point of it: e.g. "before:/ingest[^/]*/examples$" is "ingest has
written everything into its temporary folder and is about to publish it".
Before dying it writes the path into TLPIPE_TEST_KILL_MARK, so the test knows
the kill happened there (and not some other failure).

TLPIPE_TEST_ENOSPC="REGEX": the first `os.rename` / `os.replace` whose
destination matches REGEX fails with ENOSPC instead, as on a full disk
(the temporary file is written; publishing it finds no space).

TLPIPE_TEST_SIGINT="REGEX": just before the first rename whose destination
matches REGEX the process sends itself SIGINT, as a Ctrl-C at that moment
(a test that watched the files and signalled from outside could be late
on a loaded machine and hit another step).
"""

import errno
import os
import re
import signal

_SPEC = os.environ.get("TLPIPE_TEST_KILL", "")
if _SPEC:
    _WHEN, _, _PATTERN = _SPEC.partition(":")
    _REGEX = re.compile(_PATTERN)
    _MARK = os.environ.get("TLPIPE_TEST_KILL_MARK", "")

    def _die(destination: str) -> None:
        if _MARK:
            with open(_MARK, "w", encoding="utf-8") as handle:
                handle.write(f"{_WHEN} {destination}\n")
        os.kill(os.getpid(), signal.SIGKILL)

    def _armed(original):
        def rename(src, dst, *args, **kwargs):
            hit = _REGEX.search(os.fspath(dst)) is not None
            if hit and _WHEN == "before":
                _die(os.fspath(dst))
            result = original(src, dst, *args, **kwargs)
            if hit and _WHEN == "after":
                _die(os.fspath(dst))
            return result

        return rename

    os.rename = _armed(os.rename)
    os.replace = _armed(os.replace)

def _on_first_rename(pattern: str, act) -> None:
    """Call `act(destination)` just before the first `os.rename` / `os.replace` whose destination matches
    `pattern`; the rename then goes on unless `act` raises."""
    regex, fired = re.compile(pattern), []

    def armed(original):
        def rename(src, dst, *args, **kwargs):
            if not fired and regex.search(os.fspath(dst)):
                fired.append(dst)
                act(os.fspath(dst))
            return original(src, dst, *args, **kwargs)

        return rename

    os.rename = armed(os.rename)
    os.replace = armed(os.replace)


def _full_disk(destination: str) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", destination)


def _ctrl_c(destination: str) -> None:
    os.kill(os.getpid(), signal.SIGINT)


if os.environ.get("TLPIPE_TEST_ENOSPC"):
    _on_first_rename(os.environ["TLPIPE_TEST_ENOSPC"], _full_disk)
if os.environ.get("TLPIPE_TEST_SIGINT"):
    _on_first_rename(os.environ["TLPIPE_TEST_SIGINT"], _ctrl_c)
