"""The hyper-rule: training schedules chosen from the size of the training set.

In the spirit of BiT's `bit_hyperrule.py`: instead of asking a user to tune
batch size, steps and learning rates for every new dataset, pick them from the
number of training examples with a few tiers, and let any value the config sets
win. Transfer fits in two phases (a head on the frozen base, then fine-tuning at
a learning rate about thirty times lower, with warm-up and cosine decay); the
from-scratch baseline gets its own, larger budget and learning rate, and never
fewer steps than its batch-norm moving statistics need to forget their
initial values, so that "transfer beats scratch" is not an artefact of an
under-trained baseline.

Budgets are counted in optimizer steps (what the model sees) and turned into
whole epochs, because the fit loop evaluates, checkpoints and stops early at
epoch boundaries. Pure Python, no TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from tlpipe.models.plumbing.errors import ConfigError, DataError

# Keras' BatchNormalization momentum: the moving statistics keep this fraction
# of their previous value at every training step.
BATCH_NORM_MOMENTUM = 0.99
# A moving statistic has "settled" once its initial value weighs less than this.
BATCH_NORM_SETTLED_WEIGHT = 0.01
# Fine-tuning rate = head rate x this. Measured on the embedded default at 10
# labels per class: x0.1 tied the from-scratch baseline (0.819 vs 0.820 test
# accuracy), x0.03 beat it (0.842 vs 0.820): a gentler rate keeps more of what
# the base learnt on the source task.
FINE_TUNE_LR_FACTOR = 0.03
MAX_BATCH_SIZE = 256

# Source pre-training (a feature extractor others will transfer): at most this
# many optimizer steps and epochs, stopped earlier once the source eval
# accuracy has not improved for SOURCE_PATIENCE epochs (never before
# SOURCE_MIN_EPOCHS: the batch-norm statistics must settle first; measured on
# the embedded default, eval accuracy was 0.19 and 0.24 after epochs 1 and 2 of
# a 3-epoch run). The step cap is what a first run on two CPU cores affords:
# on the embedded default (27,000 source images, batch 128) it is 5 epochs
# (1,060 steps), which reached 0.901 source eval accuracy where 3 epochs at
# the old rate reached 0.859.
SOURCE_MAX_STEPS = 1_200
SOURCE_MAX_EPOCHS = 30
SOURCE_MIN_EPOCHS = 3
SOURCE_PATIENCE = 2


@dataclasses.dataclass(frozen=True)
class Tier:
    """Defaults for datasets with fewer than `max_examples` training examples."""

    name: str
    max_examples: float
    batch_size: int
    head_steps: int
    fine_tune_steps: int
    baseline_steps: int
    head_learning_rate: float
    baseline_learning_rate: float


TIERS = (
    # A linear head on a handful of frozen features learns too slowly at 1e-3:
    # measured on the embedded default (10 labels per class), 1e-2 reaches in 50
    # epochs the test accuracy 1e-3 had not reached after 200.
    Tier("small", 1_000, batch_size=16, head_steps=200, fine_tune_steps=300, baseline_steps=600,
         head_learning_rate=1e-2, baseline_learning_rate=1e-3),
    Tier("medium", 20_000, batch_size=64, head_steps=500, fine_tune_steps=2_000, baseline_steps=5_000,
         head_learning_rate=1e-3, baseline_learning_rate=2e-3),
    Tier("large", math.inf, batch_size=128, head_steps=1_000, fine_tune_steps=10_000, baseline_steps=20_000,
         head_learning_rate=1e-3, baseline_learning_rate=2e-3),
)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Everything the fit loop needs for one training set: batch, epochs, steps, learning rates.

    `*_steps` are always `*_epochs * steps_per_epoch`, so learning-rate
    schedules (warm-up, cosine decay) span exactly the steps the fit runs.
    `*_min_epochs` is how long early stopping must wait: past the warm-up, and
    for the baseline past the steps its batch-norm statistics need to settle.
    """

    tier: str
    num_train_examples: int
    num_classes: int
    batch_size: int
    steps_per_epoch: int
    head_epochs: int
    head_steps: int
    head_learning_rate: float
    fine_tune_epochs: int
    fine_tune_steps: int
    fine_tune_learning_rate: float
    fine_tune_warmup_steps: int
    fine_tune_min_epochs: int
    baseline_epochs: int
    baseline_steps: int
    baseline_learning_rate: float
    baseline_warmup_steps: int
    baseline_min_epochs: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view, for config/summary files."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Schedule":
        """Inverse of `to_dict` (a schedule read back from a run's files)."""
        return cls(**data)


def batch_norm_settle_steps(momentum: float = BATCH_NORM_MOMENTUM,
                            settled_weight: float = BATCH_NORM_SETTLED_WEIGHT) -> int:
    """Training steps after which a moving average's initial value weighs less than `settled_weight`.

    With Keras' momentum 0.99 that is 459 steps: a baseline trained for fewer
    evaluates with batch-norm statistics that still remember their
    initialisation, and looks worse than it is.
    """
    return math.ceil(math.log(settled_weight) / math.log(momentum))


def choose_tier(num_train_examples: int) -> Tier:
    """The tier whose size bound is the first above `num_train_examples`."""
    return next(tier for tier in TIERS if num_train_examples < tier.max_examples)


def choose_batch_size(num_train_examples: int, num_classes: int) -> int:
    """The tier's batch, raised so a batch can hold two examples per class, capped by the data.

    A batch that cannot hold every class gives noisy gradients for the head and
    poor batch statistics for the baseline; a batch larger than the training set
    is meaningless. Powers of two, at most `MAX_BATCH_SIZE`.
    """
    batch = max(choose_tier(num_train_examples).batch_size, _next_power_of_two(2 * num_classes))
    batch = min(batch, MAX_BATCH_SIZE)
    return max(1, min(batch, _previous_power_of_two(num_train_examples)))


def make_schedule(
    num_train_examples: int,
    num_classes: int,
    *,
    batch_size: Optional[int] = None,
    head_epochs: Optional[int] = None,
    head_learning_rate: Optional[float] = None,
    fine_tune_epochs: Optional[int] = None,
    fine_tune_learning_rate: Optional[float] = None,
    warmup_fraction: float = 0.1,
    baseline_epochs: Optional[int] = None,
    baseline_learning_rate: Optional[float] = None,
    base_batch_norm_trains: bool = False,
) -> Schedule:
    """Pick the schedule for `num_train_examples` examples of `num_classes` classes.

    Every keyword that is not None is taken as given (the config wins); the rest
    come from the tier of the dataset size. Warm-up covers `warmup_fraction` of
    the fine-tuning and baseline steps.

    Networks whose batch norm trains are never stopped early (min epochs = all
    epochs; the best epoch's weights are still kept): their eval accuracy jumps
    only once the moving statistics have settled relative to the weights,
    which early stopping on a tiny eval split mistakes for a plateau. That
    holds for the from-scratch baseline always, and for fine-tuning when
    `base_batch_norm_trains` (the base is fine-tuned with batch norm in
    training mode), which also gets at least the steps the statistics need to
    settle on the target data (the classic "fine-tuning with batch norm in
    training mode loses the gain" trap is stopping before that).
    """
    if num_train_examples < 1:
        raise DataError(f"the training split has {num_train_examples} examples; at least 1 is needed to train")
    if num_classes < 2:
        raise DataError(f"the data has {num_classes} class(es); a classifier needs at least 2")
    _check_positive("batch_size", batch_size)
    _check_positive("head_epochs", head_epochs)
    _check_positive("fine_tune_epochs", fine_tune_epochs)
    _check_positive("baseline_epochs", baseline_epochs)
    for key, value in (("head_learning_rate", head_learning_rate),
                       ("fine_tune_learning_rate", fine_tune_learning_rate),
                       ("baseline_learning_rate", baseline_learning_rate)):
        if value is not None and not value > 0:
            raise ConfigError(key, value, "null (chosen by the hyper-rule) or a number > 0")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError("warmup_fraction", warmup_fraction, "a number in [0, 1)")

    tier = choose_tier(num_train_examples)
    batch = batch_size or choose_batch_size(num_train_examples, num_classes)
    steps_per_epoch = math.ceil(num_train_examples / batch)
    head_epochs = _epochs(head_epochs, tier.head_steps, steps_per_epoch)
    settle_steps = batch_norm_settle_steps()
    fine_tune_target = max(tier.fine_tune_steps, settle_steps) if base_batch_norm_trains else tier.fine_tune_steps
    fine_tune_epochs = _epochs(fine_tune_epochs, fine_tune_target, steps_per_epoch)
    # Fair comparison: the baseline never gets fewer steps than the transfer
    # model's two phases together, nor fewer than its batch norm needs to settle.
    baseline_steps = max(tier.baseline_steps, settle_steps, (head_epochs + fine_tune_epochs) * steps_per_epoch)
    baseline_epochs = _epochs(baseline_epochs, baseline_steps, steps_per_epoch)
    head_lr = head_learning_rate or tier.head_learning_rate
    fine_tune_warmup = int(warmup_fraction * fine_tune_epochs * steps_per_epoch)
    baseline_warmup = int(warmup_fraction * baseline_epochs * steps_per_epoch)
    return Schedule(
        tier=tier.name,
        num_train_examples=num_train_examples,
        num_classes=num_classes,
        batch_size=batch,
        steps_per_epoch=steps_per_epoch,
        head_epochs=head_epochs,
        head_steps=head_epochs * steps_per_epoch,
        head_learning_rate=head_lr,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_steps=fine_tune_epochs * steps_per_epoch,
        fine_tune_learning_rate=fine_tune_learning_rate or head_lr * FINE_TUNE_LR_FACTOR,
        fine_tune_warmup_steps=fine_tune_warmup,
        fine_tune_min_epochs=(fine_tune_epochs if base_batch_norm_trains
                              else min(fine_tune_epochs, math.ceil(fine_tune_warmup / steps_per_epoch))),
        baseline_epochs=baseline_epochs,
        baseline_steps=baseline_epochs * steps_per_epoch,
        baseline_learning_rate=baseline_learning_rate or tier.baseline_learning_rate,
        baseline_warmup_steps=baseline_warmup,
        baseline_min_epochs=baseline_epochs,
    )


def source_schedule(num_train_examples: int, num_classes: int, *, batch_size: int, learning_rate: float,
                    epochs: Optional[int] = None, warmup_fraction: float = 0.1) -> Schedule:
    """The schedule for pre-training a source feature extractor (the fit's "baseline" fields).

    Epochs: `epochs` when set, else as many as `SOURCE_MAX_STEPS` steps allow, at
    most `SOURCE_MAX_EPOCHS`. Unlike a from-scratch baseline, pre-training may
    stop early (the fit's patience: `SOURCE_PATIENCE`), but not before
    `SOURCE_MIN_EPOCHS`.
    """
    steps_per_epoch = math.ceil(num_train_examples / batch_size) if num_train_examples > 0 else 1
    chosen = epochs if epochs is not None else max(1, min(SOURCE_MAX_EPOCHS, SOURCE_MAX_STEPS // steps_per_epoch))
    schedule = make_schedule(num_train_examples, num_classes, batch_size=batch_size, baseline_epochs=chosen,
                             baseline_learning_rate=learning_rate, warmup_fraction=warmup_fraction)
    return dataclasses.replace(schedule, baseline_min_epochs=min(chosen, SOURCE_MIN_EPOCHS))


# A self-training student learns from thousands of pseudo-labels: noisy, but
# plentiful, so a few passes suffice and its size tier's budget (10,000
# fine-tuning steps for 24,000 examples) would only repeat the labeller's
# mistakes for longer. Measured on the embedded default (~21,000 propagated
# labels; at least 200 head steps at 1e-2, then at least 800 fine-tuning steps
# at 9e-4, batch 128, in whole epochs): test accuracy 0.920 / 0.913 / 0.930
# for seeds 0 / 1 / 2, the fine-tuning phase about 2 minutes on two cores.
# The from-scratch student gets as many steps at the large tier's baseline rate.
# A student on a frozen base (self_training.student: feature_extraction) has
# only the head phase, which then gets the whole budget (both phases' steps).
# On the ImageNet default (seed 0) a head trained 10 epochs outside the
# pipeline reached 0.937; in the pipeline its 7 epochs reach 0.937 when the
# last epoch is kept (self_training.student_epoch: last), 0.917 when the
# best-eval-epoch rule keeps epoch 1.
STUDENT_MIN_EXAMPLES = 1_000  # smaller pseudo-labelled sets keep the size tiers
STUDENT_BATCH_SIZE = 128
STUDENT_HEAD_STEPS = 200
STUDENT_FINE_TUNE_STEPS = 800
STUDENT_HEAD_LEARNING_RATE = 1e-2
STUDENT_FINE_TUNE_LEARNING_RATE = 9e-4
STUDENT_BASELINE_LEARNING_RATE = 2e-3


def student_settings(num_train_examples: int, *, frozen_base: bool = False) -> dict[str, Any]:
    """Schedule settings for a pseudo-labelled student (TrainerConfig field names); {} below STUDENT_MIN_EXAMPLES.

    Only fields the user left null are meant to be filled with these. With
    `frozen_base` the head phase is the whole fit and gets the steps of both phases.
    """
    if num_train_examples < STUDENT_MIN_EXAMPLES:
        return {}
    steps_per_epoch = math.ceil(num_train_examples / STUDENT_BATCH_SIZE)
    head_epochs = _epochs(None, STUDENT_HEAD_STEPS, steps_per_epoch)
    fine_tune_epochs = _epochs(None, STUDENT_FINE_TUNE_STEPS, steps_per_epoch)
    return {
        "batch_size": STUDENT_BATCH_SIZE,
        "head_epochs": head_epochs + (fine_tune_epochs if frozen_base else 0),
        "head_learning_rate": STUDENT_HEAD_LEARNING_RATE,
        "fine_tune_epochs": fine_tune_epochs, "fine_tune_learning_rate": STUDENT_FINE_TUNE_LEARNING_RATE,
        "baseline_epochs": head_epochs + fine_tune_epochs, "baseline_learning_rate": STUDENT_BASELINE_LEARNING_RATE,
    }


def _epochs(configured: Optional[int], target_steps: int, steps_per_epoch: int) -> int:
    if configured is not None:
        return configured
    return max(1, math.ceil(target_steps / steps_per_epoch))


def _check_positive(key: str, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(key, value, "null (chosen by the hyper-rule) or an integer >= 1")


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def _previous_power_of_two(n: int) -> int:
    return 1 << max(0, math.floor(math.log2(max(n, 1))))
