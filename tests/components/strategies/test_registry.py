"""The strategy registry: the run order (teachers first, the configured teacher included), the config checks each
strategy declares, the evaluator's pairing, and a strategy's own evaluate step."""

import pytest

from tlpipe.components.config_schema import from_dict
from tlpipe.components.evaluator.spec import EVALUATE, EVALUATE_MULTI_TASK
from tlpipe.components.strategies.registry import (
    candidate_strategies, check_trainer, evaluation_for, get_strategy, teacher_of, train_steps,
)
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.models.plumbing.errors import ConfigError

pytestmark = pytest.mark.quick


def _trainer(**values) -> TrainerConfig:
    return from_dict(TrainerConfig, values, "trainer")


def test_teachers_train_before_their_students_and_the_config_picks_self_trainings():
    # self_training's matched reference, baseline_self_training, trains with it (after its own teacher, baseline)
    assert train_steps(_trainer(strategies=["self_training"])) == [
        "fine_tune_all", "self_training", "baseline", "baseline_self_training"]
    frozen = _trainer(strategies=["self_training"], self_training={"teacher": "feature_extraction"})
    assert train_steps(frozen) == ["feature_extraction", "self_training", "baseline", "baseline_self_training"]
    assert teacher_of("self_training", frozen) == "feature_extraction"
    assert teacher_of("bn_adapt", frozen) == "source_only" and teacher_of("baseline", frozen) is None
    # a reference the section asks for on its own
    asked = _trainer(strategies=["feature_extraction"], baseline={"self_training": True})
    assert train_steps(asked) == ["feature_extraction", "baseline", "baseline_self_training"]


def test_only_registered_candidates_may_be_listed():
    assert "baseline" not in candidate_strategies() and "fine_tune_all" in candidate_strategies()
    for strategies, received in ((["fine_tune_everything"], "fine_tune_everything"), (["baseline"], "baseline"),
                                 ([], []), (["fine_tune_all", "fine_tune_all"], ["fine_tune_all", "fine_tune_all"])):
        with pytest.raises(ConfigError) as caught:
            check_trainer(_trainer(strategies=strategies))
        assert (caught.value.key, caught.value.received) == ("trainer.strategies", received)
    with pytest.raises(KeyError, match="unknown strategy 'fine_tune_everything'; known: feature_extraction"):
        get_strategy("fine_tune_everything")


@pytest.mark.parametrize("trainer, key", [
    ({"strategies": ["multi_task"], "tasks": [{"name": "a"}]}, "trainer.tasks"),
    ({"strategies": ["multi_task", "fine_tune_all"], "tasks": [{"name": "a"}, {"name": "b", "label": "g"}]},
     "trainer.strategies"),
    ({"strategies": ["fine_tune_all"], "tasks": [{"name": "a"}, {"name": "b", "label": "g"}]}, "trainer.tasks"),
    ({"strategies": ["multi_task"], "tasks": [{"name": "a"}, {"name": "b"}]}, "trainer.tasks"),
    ({"strategies": ["multi_task"], "tasks": [{"name": "a"}, {"name": "b", "label": "g", "loss_weight": 0}]},
     "trainer.tasks[1].loss_weight"),
    ({"strategies": ["multi_task"], "tasks": [{"name": "a"}, {"name": "b c", "label": "g"}]},
     "trainer.tasks[1].name"),
])
def test_multi_tasks_own_checks_are_config_errors_naming_the_key(trainer, key):
    with pytest.raises(ConfigError) as caught:
        check_trainer(_trainer(**trainer))
    assert caught.value.key == key


def test_a_strategy_with_its_own_evaluation_gets_its_evaluate_step():
    assert evaluation_for(["multi_task", "multi_task_baseline"]) is EVALUATE_MULTI_TASK
    assert evaluation_for(["feature_extraction", "baseline"]) is EVALUATE
    assert EVALUATE_MULTI_TASK.name == EVALUATE.name and EVALUATE_MULTI_TASK.inputs == EVALUATE.inputs


def test_a_plugin_module_that_cannot_be_imported_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as caught:
        check_trainer(_trainer(strategies=["feature_extraction"], plugins=["tlpipe_no_such_plugin"]))
    assert (caught.value.key, caught.value.received) == ("trainer.plugins[0]", "tlpipe_no_such_plugin")
    assert "No module named 'tlpipe_no_such_plugin'" in str(caught.value)
