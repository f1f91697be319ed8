"""Writing artifacts so that a reader never sees a half-written one.

A component writes into a temporary sibling folder and renames it into place
only when everything succeeded; on failure the temporary folder is removed and
any earlier artifact at the final path is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from typing import IO, Any, Callable, Iterator

from tlpipe.models.plumbing.errors import NoSpaceError, is_no_space


@contextlib.contextmanager
def atomic_output_dir(final_dir: str, *, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary folder that becomes `final_dir` when the block succeeds.

    With `overwrite`, an existing `final_dir` is replaced (moved aside, then deleted)
    only after the new content is complete.
    """
    final_dir = os.path.abspath(final_dir)
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = os.path.join(parent, f".{os.path.basename(final_dir)}.tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp_dir)
    try:
        yield tmp_dir
    except BaseException as error:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if is_no_space(error) and not isinstance(error, NoSpaceError):
            raise NoSpaceError(parent) from None
        raise
    if os.path.exists(final_dir):
        if not overwrite:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise FileExistsError(f"artifact already exists: {final_dir}")
        old_dir = tmp_dir + ".old"
        os.rename(final_dir, old_dir)
        os.rename(tmp_dir, final_dir)
        shutil.rmtree(old_dir, ignore_errors=True)
    else:
        os.rename(tmp_dir, final_dir)


def write_atomically(path: str, write: Callable[[str], Any], tmp_path: str) -> None:
    """Write through `write(tmp_path)`, then rename `tmp_path` to `path` (one step: complete or absent).

    On a failure the temporary file is removed and `path` keeps what it held;
    a full disk becomes a NoSpaceError naming the folder.
    """
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as error:  # a Ctrl-C between the write and the rename leaves no temporary file either
        with contextlib.suppress(OSError):
            os.remove(tmp_path)
        if isinstance(error, OSError) and is_no_space(error):
            raise NoSpaceError(os.path.dirname(os.path.abspath(path))) from None
        raise


def _write_file(path: str, fill: Callable[[IO[str]], Any]) -> None:
    """Open a temporary text file beside `path`, `fill(handle)` it, rename it to `path`."""

    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8") as handle:
            fill(handle)

    write_atomically(path, write, f"{path}.tmp-{uuid.uuid4().hex[:8]}")


def write_text(path: str, text: str) -> None:
    """Write a small text file atomically (temp file + rename)."""
    _write_file(path, lambda handle: handle.write(text))


def write_json(path: str, payload: Any) -> None:
    """Write JSON atomically (temp file + rename), sorted keys, trailing newline."""

    def fill(handle: IO[str]) -> None:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")

    _write_file(path, fill)


def read_json(path: str) -> Any:
    """Read a JSON artifact file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
