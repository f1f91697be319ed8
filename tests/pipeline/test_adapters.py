"""The adapters hold a step to its declaration: undeclared inputs and values are refused before it runs."""

import pytest

from tlpipe.components.evaluator.spec import EVALUATE
from tlpipe.components.pusher.spec import PUSH
from tlpipe.components.strategies.train_step import TRAIN
from tlpipe.components.trainer.spec import SELECTED
from tlpipe.pipeline.adapters import InProcessOps, declared_values, flatten_inputs
from tlpipe.pipeline.config import load_config

pytestmark = pytest.mark.quick


def test_a_value_a_step_does_not_declare_is_refused(tmp_path):
    assert declared_values(TRAIN, {SELECTED: {"handle": "x"}}) == {SELECTED: {"handle": "x"}}
    assert declared_values(PUSH, None) == {}
    with pytest.raises(ValueError, match=r"step 'push' declares no value inputs \['production'\].*value_inputs: \[\]"):
        declared_values(PUSH, {"production": {}})
    ops = InProcessOps(load_config(), {}, str(tmp_path / "run"))
    with pytest.raises(ValueError, match="declares no value inputs"):
        ops.run(PUSH, "push", inputs={"evaluation": "e", "models": {}}, values={"production": {}})
    assert not (tmp_path / "run").exists() and ops.results == {}  # refused before anything ran


def test_an_input_a_step_does_not_declare_is_refused():
    with pytest.raises(ValueError, match=r"step 'evaluate' has no inputs \['teachers'\]"):
        flatten_inputs(EVALUATE, {"transformed": "t", "models": {}, "teachers": {}})
