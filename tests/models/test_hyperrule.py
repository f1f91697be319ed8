"""The hyper-rule: schedules by dataset size, config overrides, fairness to the baseline."""

from __future__ import annotations

import math

import pytest

from tlpipe.models.hyperrule import Schedule, batch_norm_settle_steps, make_schedule, student_settings
from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick


def test_small_dataset_gets_small_batches_and_many_epochs():
    schedule = make_schedule(50, 5)  # 10 labels per class of 5 classes
    assert schedule.tier == "small"
    assert schedule.batch_size == 16
    assert schedule.steps_per_epoch == 4
    assert schedule.head_epochs == 50 and schedule.head_steps == 200
    assert schedule.fine_tune_steps == schedule.fine_tune_epochs * 4 >= 300
    assert schedule.fine_tune_learning_rate == pytest.approx(schedule.head_learning_rate * 0.03)
    assert schedule.fine_tune_warmup_steps == 30


def test_large_dataset_gets_large_batches_and_few_epochs():
    small, large = make_schedule(500, 10), make_schedule(60_000, 10)
    assert large.tier == "large" and large.batch_size == 128
    assert large.steps_per_epoch == math.ceil(60_000 / 128)
    assert large.head_epochs < small.head_epochs
    assert large.fine_tune_steps > small.fine_tune_steps
    assert make_schedule(5_000, 10).tier == "medium"


def test_batch_holds_two_examples_per_class_and_never_exceeds_the_data():
    assert make_schedule(900, 40).batch_size == 128  # next power of two above 2 * 40
    assert make_schedule(100_000, 1000).batch_size == 256  # capped
    assert make_schedule(5, 2).batch_size == 4  # not more than the examples


def test_baseline_trains_until_batch_norm_statistics_settle():
    assert batch_norm_settle_steps() == 459  # 0.99 ** 459 < 0.01 < 0.99 ** 458
    assert 0.99 ** 459 < 0.01 < 0.99 ** 458
    schedule = make_schedule(50, 5)
    assert schedule.baseline_steps >= batch_norm_settle_steps()
    # early stopping may not cut the baseline before its statistics settle
    assert schedule.baseline_min_epochs * schedule.steps_per_epoch >= batch_norm_settle_steps()



@pytest.mark.parametrize("num_train", [50, 5_000, 60_000])
def test_baseline_budget_is_at_least_the_transfer_models(num_train):
    schedule = make_schedule(num_train, 10)
    assert schedule.baseline_steps >= schedule.head_steps + schedule.fine_tune_steps


def test_config_values_win_and_steps_follow_epochs():
    schedule = make_schedule(
        50, 5, batch_size=10, head_epochs=3, head_learning_rate=0.01, fine_tune_epochs=4,
        fine_tune_learning_rate=2e-5, warmup_fraction=0.25, baseline_epochs=7, baseline_learning_rate=0.003,
    )
    assert (schedule.batch_size, schedule.steps_per_epoch) == (10, 5)
    assert (schedule.head_epochs, schedule.head_steps, schedule.head_learning_rate) == (3, 15, 0.01)
    assert (schedule.fine_tune_epochs, schedule.fine_tune_steps) == (4, 20)
    assert schedule.fine_tune_learning_rate == 2e-5
    assert schedule.fine_tune_warmup_steps == 5
    assert schedule.fine_tune_min_epochs == 1
    assert (schedule.baseline_epochs, schedule.baseline_steps, schedule.baseline_learning_rate) == (7, 35, 0.003)
    # a configured budget is a cap early stopping must respect
    assert schedule.baseline_min_epochs == 7


def test_fine_tune_learning_rate_follows_a_configured_head_rate():
    assert make_schedule(50, 5, head_learning_rate=0.02).fine_tune_learning_rate == pytest.approx(0.0006)


def test_schedule_round_trips_through_plain_data():
    schedule = make_schedule(123, 4)
    assert Schedule.from_dict(schedule.to_dict()) == schedule


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"head_epochs": 1.5}, "head_epochs"),
        ({"fine_tune_learning_rate": -1.0}, "fine_tune_learning_rate"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
    ],
)
def test_bad_overrides_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        make_schedule(50, 5, **kwargs)


def test_empty_data_and_single_class_are_data_errors():
    with pytest.raises(DataError, match="0 examples"):
        make_schedule(0, 5)
    with pytest.raises(DataError, match="1 class"):
        make_schedule(10, 1)


def test_batch_norm_training_in_the_base_gets_the_settling_budget():
    frozen_statistics = make_schedule(50, 5)
    training_statistics = make_schedule(50, 5, base_batch_norm_trains=True)
    settle = batch_norm_settle_steps()
    assert frozen_statistics.fine_tune_steps < settle
    assert training_statistics.fine_tune_steps >= settle
    assert training_statistics.fine_tune_min_epochs * training_statistics.steps_per_epoch >= settle
    assert make_schedule(50, 5, base_batch_norm_trains=True, fine_tune_epochs=3).fine_tune_epochs == 3


def test_source_schedule_caps_steps_and_epochs_and_may_stop_after_the_minimum():
    from tlpipe.models.hyperrule import SOURCE_MAX_EPOCHS, SOURCE_MAX_STEPS, SOURCE_MIN_EPOCHS, source_schedule

    large = source_schedule(27_000, 5, batch_size=128, learning_rate=2e-3)
    assert large.steps_per_epoch == 211 and large.baseline_epochs == SOURCE_MAX_STEPS // 211 == 5
    assert large.baseline_min_epochs == SOURCE_MIN_EPOCHS and large.baseline_learning_rate == 2e-3
    assert source_schedule(60, 3, batch_size=8, learning_rate=1e-3).baseline_epochs == SOURCE_MAX_EPOCHS
    given = source_schedule(60, 3, batch_size=8, learning_rate=1e-3, epochs=2)
    assert given.baseline_epochs == given.baseline_min_epochs == 2


def test_a_large_pseudo_labelled_student_gets_a_fixed_step_budget_and_small_ones_keep_the_tiers():
    assert student_settings(999) == {}
    settings = student_settings(24_009)  # 188 steps per epoch at batch 128
    assert settings["batch_size"] == 128
    assert (settings["head_epochs"], settings["fine_tune_epochs"]) == (2, 5)  # >= 200 and >= 800 steps
    assert settings["baseline_epochs"] == 7
    assert settings["fine_tune_learning_rate"] < settings["head_learning_rate"]
    frozen = student_settings(24_009, frozen_base=True)  # the head phase is the whole fit: both phases' steps
    assert frozen["head_epochs"] == 7 and {k: v for k, v in frozen.items() if k != "head_epochs"} == {
        k: v for k, v in settings.items() if k != "head_epochs"}
    schedule = make_schedule(24_009, 5, **{k: v for k, v in settings.items()})
    assert schedule.fine_tune_steps == 5 * 188 and schedule.tier == "large"
