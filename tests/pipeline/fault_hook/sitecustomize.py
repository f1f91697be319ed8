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

_NO_SPACE = os.environ.get("TLPIPE_TEST_ENOSPC", "")
if _NO_SPACE:
    _FULL = re.compile(_NO_SPACE)
    _hit = []

    def _full_disk(original):
        def rename(src, dst, *args, **kwargs):
            if not _hit and _FULL.search(os.fspath(dst)):
                _hit.append(dst)
                raise OSError(errno.ENOSPC, "No space left on device", os.fspath(dst))
            return original(src, dst, *args, **kwargs)

        return rename

    os.rename = _full_disk(os.rename)
    os.replace = _full_disk(os.replace)

_INTERRUPT = os.environ.get("TLPIPE_TEST_SIGINT", "")
if _INTERRUPT:
    _AT = re.compile(_INTERRUPT)
    _sent = []

    def _ctrl_c(original):
        def rename(src, dst, *args, **kwargs):
            if not _sent and _AT.search(os.fspath(dst)):
                _sent.append(dst)
                os.kill(os.getpid(), signal.SIGINT)
            return original(src, dst, *args, **kwargs)

        return rename

    os.rename = _ctrl_c(os.rename)
    os.replace = _ctrl_c(os.replace)
