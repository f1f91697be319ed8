"""The transfer fits and the from-scratch baseline they are judged against.

`feature_extraction`, `fine_tune_top` and `fine_tune_all` are one two-phase
fit each (components/trainer/executor.py): a head on the frozen module, then
what of the base the fit unfreezes. `baseline` is the same head on a randomly
initialised network with its own budget: the matched reference of all three.
"""

from __future__ import annotations

from typing import Any

from tlpipe.components.strategies.plugin import CANDIDATE, REFERENCE, Strategy, TrainArgs

FEATURE_EXTRACTION = "feature_extraction"
FINE_TUNE_TOP = "fine_tune_top"
FINE_TUNE_ALL = "fine_tune_all"
BASELINE = "baseline"


def train_transfer_fit(args: TrainArgs) -> dict[str, Any]:
    """The two-phase fit named by `args.strategy` on `args.handle`'s module."""
    from tlpipe.components.trainer.executor import train_transfer

    return train_transfer(args.config, args.transformed_dir, args.output_dir, strategy=args.strategy,
                          handle=args.handle, work_dir=args.work_dir)


def train_from_scratch(args: TrainArgs) -> dict[str, Any]:
    """The same head on a randomly initialised network, the baseline's budget."""
    from tlpipe.components.trainer.executor import train_baseline

    return train_baseline(args.config, args.transformed_dir, args.output_dir, strategy=args.strategy,
                          handle=args.handle, work_dir=args.work_dir)


STRATEGIES = (
    Strategy(FEATURE_EXTRACTION, train_transfer_fit, CANDIDATE,
             "frozen base, new head (frozen features computed once)", reference=BASELINE),
    Strategy(FINE_TUNE_TOP, train_transfer_fit, CANDIDATE,
             "head on the frozen base, then the top blocks (or a variable pattern) at a lower rate",
             reference=BASELINE),
    Strategy(FINE_TUNE_ALL, train_transfer_fit, CANDIDATE,
             "head on the frozen base, then the whole base at a lower rate", reference=BASELINE),
    Strategy(BASELINE, train_from_scratch, REFERENCE,
             "the same head on a randomly initialised network, its own tuned budget"),
)
