"""User errors raised inside Beam work reach the driver as themselves, in one line, whatever the runner."""

from __future__ import annotations

import apache_beam as beam
import pytest

from tlpipe.components.beam import BeamConfig, create_pipeline
from tlpipe.components.beam_errors import in_dofn, user_error
from tlpipe.models.plumbing.errors import ConfigError, DataError, TlpipeError

pytestmark = pytest.mark.quick


def _fail(value: int, kind: str):
    if value == 2:
        if kind == "config":
            raise ConfigError("classes", "zebra", ["cat", "dog"])
        error = DataError("file '/data/x.tfrecord' is damaged at record 2; re-copy it")
        raise in_dofn(error) if kind == "marked" else error
    yield value


@pytest.mark.parametrize("kind", ["marked", "plain", "config"])
def test_an_error_raised_in_a_dofn_arrives_without_beams_annotation(kind):
    expected = TlpipeError if kind == "config" else DataError
    with pytest.raises(expected) as error:
        with create_pipeline(BeamConfig()) as root:
            root | beam.Create([1, 2, 3]) | beam.FlatMap(_fail, kind)
    message = str(error.value)
    assert "[while running" not in message and "\n" not in message
    assert message.startswith("config key 'classes'" if kind == "config" else "file '/data/x.tfrecord'")


def test_an_error_from_a_worker_process_is_read_back_from_the_traceback_text():
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
            "tlpipe.models.plumbing.errors.DataError: IDX file '/d/a.gz' is truncated [while running 'Read train IDX']\n")
    found = user_error(RuntimeError(text))
    assert isinstance(found, DataError) and str(found) == "IDX file '/d/a.gz' is truncated"
    assert user_error(RuntimeError("Pipeline failed: ZeroDivisionError: division by zero")) is None
    assert user_error(ValueError("a bug")) is None
