"""Self-training and its matched reference: both learn from the unlabelled pool (components/trainer/self_training.py).

`self_training` pseudo-labels the `unlabeled` split with a transferred teacher
(`trainer.self_training.teacher`, fine_tune_all by default) and trains a
transferred student; `baseline_self_training` does the same from scratch,
with the baseline as teacher. It trains whenever self_training does, or on
its own with `trainer.baseline.self_training: true`.
"""

from __future__ import annotations

from typing import Any

from tlpipe.components.strategies.plugin import CANDIDATE, REFERENCE, UNLABELED, Strategy, TrainArgs
from tlpipe.components.strategies.transfer import BASELINE
from tlpipe.components.trainer.config import TrainerConfig

SELF_TRAINING = "self_training"
BASELINE_SELF_TRAINING = "baseline_self_training"
_UNLABELLED_IMAGES = "the pseudo-labelled unlabelled images"


def train_transferred_student(args: TrainArgs) -> dict[str, Any]:
    """Pseudo-label the pool with the teacher; train a transferred student on labels + pseudo-labels."""
    from tlpipe.components.trainer.self_training import train_self_training

    return train_self_training(args.config, args.transformed_dir, args.output_dir, handle=args.handle,
                               teacher_model_dir=args.teacher(), work_dir=args.work_dir, strategy=args.strategy)


def train_scratch_student(args: TrainArgs) -> dict[str, Any]:
    """The from-scratch counterpart: the baseline labels the pool, a from-scratch student learns from it."""
    from tlpipe.components.trainer.self_training import train_baseline_self_training

    return train_baseline_self_training(args.config, args.transformed_dir, args.output_dir, handle=args.handle,
                                        teacher_model_dir=args.teacher(), work_dir=args.work_dir,
                                        strategy=args.strategy)


def configured_teacher(config: TrainerConfig) -> str:
    """`trainer.self_training.teacher`: the transfer fit whose model labels the pool."""
    return config.self_training.teacher


def baseline_asks_for_it(config: TrainerConfig) -> bool:
    """`trainer.baseline.self_training`: the from-scratch self-training reference even without self_training."""
    return config.baseline.self_training


STRATEGIES = (
    Strategy(SELF_TRAINING, train_transferred_student, CANDIDATE,
             "labels spread from the few labels over the unlabelled images (the teacher model's features); "
             "a student learns from all",
             reference=BASELINE_SELF_TRAINING, requires_splits=(UNLABELED,), configured_teacher=configured_teacher,
             extra_data=_UNLABELLED_IMAGES),
    Strategy(BASELINE_SELF_TRAINING, train_scratch_student, REFERENCE,
             "the from-scratch baseline with the same unlabelled images: self_training's matched reference",
             requires_splits=(UNLABELED,), teacher=BASELINE,
             extra_data=_UNLABELLED_IMAGES, also_runs_when=baseline_asks_for_it),
)
