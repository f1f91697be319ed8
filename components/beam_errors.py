"""User errors raised inside Beam work reach the driver as themselves, in one line.

Beam wraps what a DoFn raises: it logs the exception with its traceback,
appends " [while running 'STEP']" to the message, and replaces an exception it
cannot rebuild with that message (ConfigError takes other arguments), or one
raised in another worker process (the `multi_processing` runner), by a
RuntimeError holding the traceback's text. A TlpipeError already says what is
wrong, where, and what to do, so for those:

- `UserErrorPipeline` (what `create_pipeline` returns) re-raises the
  TlpipeError at the driver with its own message, whichever way it arrived;
- `QuietUserErrors`, a logging filter on Beam's loggers, drops Beam's logged
  traceback of a TlpipeError (any other exception keeps its traceback: a bug);
- `in_dofn(error)` marks an error raised in a DoFn the way Beam marks an error
  it has already annotated (Beam's `_tagged_with_step` attribute), so Beam
  re-raises it unchanged without logging it at all.
"""

from __future__ import annotations

import logging
import re
from typing import Optional

import apache_beam as beam

from tlpipe.models.plumbing import errors
from tlpipe.models.plumbing.errors import TlpipeError

_STEP_ANNOTATION = re.compile(r" \[while running '[^']*'\]")
_WORKER_ERROR = re.compile(r"(?:tlpipe\.models\.errors\.)?(ConfigError|DataError|ModelError|NotBlessedError|TlpipeError): (.+)")
_BEAM_LOGGERS = ("apache_beam.runners.common", "apache_beam.runners.portability.local_job_service",
                 "apache_beam.runners.worker.sdk_worker")
_ERRORS_MODULE = "tlpipe.models.plumbing.errors."


def in_dofn(error: TlpipeError) -> TlpipeError:
    """`error`, marked so that Beam re-raises it as it is (no step annotation, no logged traceback)."""
    error._tagged_with_step = True  # the attribute Beam's DoFnRunner checks before wrapping an exception
    return error


class QuietUserErrors(logging.Filter):
    """Drop Beam's log records of TlpipeErrors; the driver reports them in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exception = record.exc_info[1] if record.exc_info else None
        if isinstance(exception, TlpipeError):
            return False
        return _ERRORS_MODULE not in record.getMessage()


_FILTER = QuietUserErrors()


def quiet_beam_user_errors() -> None:
    """Install the filter on Beam's loggers (once per process)."""
    for name in _BEAM_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def user_error(error: BaseException) -> Optional[TlpipeError]:
    """The TlpipeError behind what a Beam pipeline raised, with its own message; None for anything else."""
    if isinstance(error, TlpipeError):
        clean = _STEP_ANNOTATION.sub("", str(error))
        if clean != str(error):
            error.args = (clean,)
        return error
    if isinstance(error, RuntimeError):
        found = [m for m in (_WORKER_ERROR.search(line) for line in str(error).splitlines()) if m]
        if found:
            name, message = found[-1].groups()
            message = _STEP_ANNOTATION.sub("", message).strip()
            if name == "ConfigError":  # its constructor takes (key, received, allowed); the message is complete
                return TlpipeError(message)
            return getattr(errors, name)(message)
    return None


class UserErrorPipeline(beam.Pipeline):
    """A `beam.Pipeline` whose run (at the end of its `with` block) raises user errors as they are."""

    def __init__(self, *args, **kwargs):
        quiet_beam_user_errors()
        super().__init__(*args, **kwargs)

    def __exit__(self, exc_type, exc_val, exc_tb):
        try:
            return super().__exit__(exc_type, exc_val, exc_tb)
        except (TlpipeError, RuntimeError) as error:
            user = user_error(error)
            if user is None:
                raise
            raise user from None
