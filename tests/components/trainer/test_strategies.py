"""The strategy registry's run order: teachers first, the configured self-training teacher included."""

import pytest

from tlpipe.components.trainer.strategies import strategies_to_run, teacher_of

pytestmark = pytest.mark.quick


def test_teachers_train_before_their_students_and_the_config_picks_self_trainings():
    # self_training's matched reference, baseline_self_training, trains with it (after its own teacher, baseline)
    assert strategies_to_run(["self_training"]) == ["fine_tune_all", "self_training", "baseline",
                                                    "baseline_self_training"]
    frozen = {"self_training": "feature_extraction"}
    assert strategies_to_run(["self_training"], teachers=frozen) == ["feature_extraction", "self_training", "baseline",
                                                                     "baseline_self_training"]
    assert teacher_of("self_training", frozen) == "feature_extraction"
    assert teacher_of("bn_adapt", frozen) == "source_only" and teacher_of("baseline", frozen) is None

