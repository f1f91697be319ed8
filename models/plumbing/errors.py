"""Errors a user can act on.

Every error tlpipe raises on purpose derives from `TlpipeError`: the CLI prints
its message and exits non-zero without a traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from typing import Any, Iterable


class TlpipeError(Exception):
    """Base class of errors caused by the user's input, config or data."""


class ConfigError(TlpipeError, ValueError):
    """A configuration key or value is wrong.

    The message names the key, the value received and what is allowed.
    """

    def __init__(self, key: str, received: Any, allowed: str | Iterable[Any]):
        if not isinstance(allowed, str):
            allowed = "one of " + ", ".join(repr(a) for a in allowed)
        self.key = key
        self.received = received
        self.allowed = allowed
        super().__init__(f"config key '{key}': received {received!r}; allowed: {allowed}")


class DataError(TlpipeError):
    """Input data is missing, empty, corrupt or inconsistent with the config."""


class ModelError(TlpipeError):
    """A model, hub handle or training request cannot be honoured."""


class NotBlessedError(TlpipeError):
    """A model that the evaluator did not bless was asked to be pushed."""


class NoSpaceError(TlpipeError, OSError):
    """The disk under a folder tlpipe writes is full; the message names the folder and what to do."""

    def __init__(self, folder: str):
        self.folder = folder
        super().__init__(
            f"no space left on device writing {folder}: free space there (or point the run at another disk) and "
            "run the same command again; finished steps are reused and training resumes from its last checkpoint"
        )


def is_no_space(error: BaseException) -> bool:
    """An OSError for a full disk (also as h5py words it, without an errno)."""
    import errno

    return isinstance(error, OSError) and (
        getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error))
