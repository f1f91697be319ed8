"""The strategy registry: every way tlpipe trains a model on the target task.

One entry per strategy names how it trains (its executor function) and what it
needs (splits of the transformed data, another strategy's model as teacher).
The config validates `trainer.strategies` against it, the pipeline graph makes
one train step per entry it runs, and the evaluator reads the roles: each
candidate is judged against its matched `reference`, the model that saw the
same data without the pre-trained module (components/evaluator/pairing.py),
which trains whenever its candidate does. A new strategy is one entry here
plus its executor function.

Executor functions are called as
`function(config, transformed_dir, output_dir, *, strategy, handle, work_dir, **teachers)`
where `teachers` maps `teacher_model_dir` to the teacher's trained-model folder
for strategies that have one.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Literal, Mapping, Optional

CANDIDATE = "candidate"
REFERENCE = "reference"
BASELINE = "baseline"

SELF_TRAINING = "self_training"
BASELINE_SELF_TRAINING = "baseline_self_training"
UNLABELED = "unlabeled"

_EXECUTOR = "tlpipe.components.trainer.executor"
_SELF_TRAINING = "tlpipe.components.trainer.self_training"
_DOMAIN = "tlpipe.components.trainer.domain_adaptation"
_MULTI_TASK = "tlpipe.components.trainer.multi_task"
SOURCE_ONLY = "source_only"
DOMAIN_ADAPTATION = "domain_adaptation"
BN_ADAPT = "bn_adapt"
MULTI_TASK = "multi_task"
MULTI_TASK_BASELINE = "multi_task_baseline"
_UNLABELLED_IMAGES = "the pseudo-labelled unlabelled images"


@dataclasses.dataclass(frozen=True)
class Strategy:
    """How one strategy trains and what it needs."""

    name: str
    train: str
    role: Literal["candidate", "reference"]
    description: str
    requires_splits: tuple[str, ...] = ()
    teacher: Optional[str] = None
    reference: str = "baseline"  # the matched reference: the model that saw the same data without the module
    source_domain: bool = False
    extra_data: str = ""  # what data it learns from beyond the labels, in words (for the gain decomposition)


_REGISTRY: dict[str, Strategy] = {
    strategy.name: strategy for strategy in (
        Strategy("feature_extraction", f"{_EXECUTOR}:train_transfer", CANDIDATE,
                 "frozen base, new head (frozen features computed once)"),
        Strategy("fine_tune_top", f"{_EXECUTOR}:train_transfer", CANDIDATE,
                 "head on the frozen base, then the top blocks (or a variable pattern) at a lower rate"),
        Strategy("fine_tune_all", f"{_EXECUTOR}:train_transfer", CANDIDATE,
                 "head on the frozen base, then the whole base at a lower rate"),
        Strategy(BASELINE, f"{_EXECUTOR}:train_baseline", REFERENCE,
                 "the same head on a randomly initialised network, its own tuned budget"),
        Strategy(SELF_TRAINING, f"{_SELF_TRAINING}:train_self_training", CANDIDATE,
                 "labels spread from the few labels over the unlabelled images (the teacher model's features); a student learns from all",
                 requires_splits=(UNLABELED,), teacher="fine_tune_all",  # or trainer.self_training.teacher
                 reference=BASELINE_SELF_TRAINING, extra_data=_UNLABELLED_IMAGES),
        Strategy(BASELINE_SELF_TRAINING, f"{_SELF_TRAINING}:train_baseline_self_training", REFERENCE,
                 "the from-scratch baseline with the same unlabelled images: self_training's matched reference",
                 requires_splits=(UNLABELED,), teacher=BASELINE, extra_data=_UNLABELLED_IMAGES),
        Strategy(DOMAIN_ADAPTATION, f"{_DOMAIN}:train_domain_strategy", CANDIDATE,
                 "DANN: labelled source domain, unlabelled target domain, a gradient-reversed domain discriminator",
                 reference=SOURCE_ONLY, source_domain=True),
        Strategy(BN_ADAPT, f"{_DOMAIN}:train_domain_strategy", CANDIDATE,
                 "AdaBN: the source-only model with its batch-norm statistics re-estimated on target images",
                 reference=SOURCE_ONLY, source_domain=True, teacher=SOURCE_ONLY),
        Strategy(SOURCE_ONLY, f"{_DOMAIN}:train_domain_strategy", REFERENCE,
                 "trained on the source domain's labels, no adaptation: what domain adaptation must beat",
                 reference=SOURCE_ONLY, source_domain=True),
        Strategy(MULTI_TASK, f"{_MULTI_TASK}:train_multi_task", CANDIDATE,
                 "one shared base, a head per task (trainer.tasks), two-phase fit; a single-task model per head "
                 "trains beside it", reference=MULTI_TASK_BASELINE),
        Strategy(MULTI_TASK_BASELINE, f"{_MULTI_TASK}:train_multi_task_baseline", REFERENCE,
                 "the same heads on a randomly initialised base, the baseline's budget",
                 reference=MULTI_TASK_BASELINE),
    )
}

def needs_source_domain(names: list[str]) -> bool:
    """Whether any of these strategies trains on the labelled source domain (`source.ingest`)."""
    return any(get_strategy(name).source_domain for name in names)


def required_splits(names: list[str]) -> dict[str, tuple[str, ...]]:
    """Strategy -> the splits it needs, for the strategies that need any."""
    return {name: get_strategy(name).requires_splits for name in names if get_strategy(name).requires_splits}


# Strategies a user may list in `trainer.strategies` (the baseline always runs).
CANDIDATE_STRATEGIES = tuple(name for name, strategy in _REGISTRY.items() if strategy.role == CANDIDATE)


def get_strategy(name: str) -> Strategy:
    """The registry entry of `name`; a KeyError names the known strategies."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(_REGISTRY)}") from None


def teacher_of(name: str, teachers: Mapping[str, str]) -> Optional[str]:
    """The strategy whose model teaches `name`: the configured one in `teachers`, else the registry's."""
    return teachers.get(name, get_strategy(name).teacher)


def strategies_to_run(candidates: list[str], references: tuple[str, ...] = (),
                      teachers: Mapping[str, str] = MappingProxyType({})) -> list[str]:
    """The train steps of a run: each teacher before its students, then the candidates' references
    (the from-scratch baseline, or source_only for domain adaptation) and `references`. `teachers`
    overrides the registry's teacher of a strategy (`trainer.self_training.teacher`)."""
    compared_with = list(dict.fromkeys(get_strategy(name).reference for name in candidates))
    ordered: list[str] = []
    for name in [*candidates, *compared_with, *references]:
        teacher = teacher_of(name, teachers)
        if teacher and teacher not in ordered:
            ordered.append(teacher)
        if name not in ordered:
            ordered.append(name)
    return ordered
