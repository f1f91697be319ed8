"""Multi-task: one shared base, a head per task (components/trainer/multi_task.py), judged per task.

`multi_task` trains a single-task model per head beside the multi-task model;
`multi_task_baseline`, its matched reference, puts the same heads on a
randomly initialised base. Its own checks: `trainer.tasks` is set exactly when
multi_task runs, and then alone. Its own evaluation: `EVALUATE_MULTI_TASK`
compares every head with its single-task model and the multi-head baseline.
"""

from __future__ import annotations

from typing import Any

from tlpipe.components.evaluator.spec import EVALUATE_MULTI_TASK
from tlpipe.components.strategies.plugin import CANDIDATE, REFERENCE, Strategy, TrainArgs
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.multi_task_config import check_tasks

MULTI_TASK = "multi_task"
MULTI_TASK_BASELINE = "multi_task_baseline"


def train_shared_base(args: TrainArgs) -> dict[str, Any]:
    """A single-task model per head, then the multi-task model on the module."""
    from tlpipe.components.trainer.multi_task import train_multi_task

    return train_multi_task(args.config, args.transformed_dir, args.output_dir, strategy=args.strategy,
                            handle=args.handle, work_dir=args.work_dir)


def train_heads_from_scratch(args: TrainArgs) -> dict[str, Any]:
    """The same heads on a randomly initialised base, the baseline's budget."""
    from tlpipe.components.trainer.multi_task import train_multi_task_baseline

    return train_multi_task_baseline(args.config, args.transformed_dir, args.output_dir, strategy=args.strategy,
                                     handle=args.handle, work_dir=args.work_dir)


def check_multi_task_config(config: TrainerConfig) -> None:
    """`trainer.tasks` is set exactly when multi_task runs (and then alone), at least two distinct tasks."""
    check_tasks(config.tasks, config.strategies, MULTI_TASK)


STRATEGIES = (
    Strategy(MULTI_TASK, train_shared_base, CANDIDATE,
             "one shared base, a head per task (trainer.tasks), two-phase fit; a single-task model per head "
             "trains beside it", reference=MULTI_TASK_BASELINE, check_config=check_multi_task_config,
             evaluate=EVALUATE_MULTI_TASK),
    Strategy(MULTI_TASK_BASELINE, train_heads_from_scratch, REFERENCE,
             "the same heads on a randomly initialised base, the baseline's budget"),
)
