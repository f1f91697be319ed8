"""Every configuration in examples/ loads and validates as written (running them is measured in bench/)."""

import pathlib

import pytest

from tlpipe.pipeline.config import load_config

pytestmark = pytest.mark.quick

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert {path.name for path in EXAMPLES} >= {"domain_shift.yaml", "multi_task.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_an_example_loads_and_validates(path):
    config = load_config(str(path))
    assert config.trainer.strategies
