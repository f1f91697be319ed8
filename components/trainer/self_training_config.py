"""The `trainer.self_training` section: who labels the unlabelled examples, and which labels join the student's set."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from tlpipe.components.trainer.transfer_fits import FEATURE_EXTRACTION, FINE_TUNE_ALL, FINE_TUNE_TOP
from tlpipe.models.plumbing.errors import ConfigError

TEACHER = "teacher"
PROPAGATION = "propagation"
LABELERS = (TEACHER, PROPAGATION)

# Per labeler, (threshold, max_per_class) when the config leaves them null.
# The teacher's own probabilities are over-confident, so only its most sure
# predictions, few per class, are taken. Propagated scores are spread over the
# classes; on the embedded default (seed 0) 21,011 of 23,959 unlabelled
# images reach 0.5, and taking all of them (not the most confident few, which
# sit next to the labelled examples and teach the student nothing new) is what
# lifted the student from 0.788 (500 per class, an experiment outside the
# pipeline) to 0.920.
LABELER_DEFAULTS = {TEACHER: (0.9, 100), PROPAGATION: (0.5, 100_000)}

# The strategies whose model may teach (its features build the graph, or its predictions label), and how the
# transferred student may be fitted. A strong pre-trained module (ImageNet) teaches well frozen, and its
# frozen student is cheap; a weak one (a small home-made source) needs fine-tuning for both.
TEACHERS = (FINE_TUNE_ALL, FINE_TUNE_TOP, FEATURE_EXTRACTION)
STUDENT_FITS = (FINE_TUNE_ALL, FINE_TUNE_TOP, FEATURE_EXTRACTION)
# Which epoch of the student is kept: the best on the labelled eval split, or the last of its fixed budget.
BEST_EPOCH, LAST_EPOCH = "best", "last"
STUDENT_EPOCHS = (BEST_EPOCH, LAST_EPOCH)


@dataclasses.dataclass
class SelfTrainingConfig:
    """Pseudo-labelling of the `unlabeled` split (needs `ingest.unlabeled: true`).

    `labeler` "propagation" (the default) spreads the labelled examples' labels
    over a nearest-neighbour graph of all training images (the teacher's
    features beside the images' `raw_components` principal components);
    "teacher" takes the teacher's own predictions. Those whose top score is at
    least `threshold` are candidates, and per class at most `max_per_class` of
    them (the highest scores) join the labelled training set, so that no class
    floods the student (null: the labeler's default, `LABELER_DEFAULTS`).
    `rounds` students are trained in turn, each the next one's teacher. The
    eval split (early stopping) and the test split are never pseudo-labelled
    and never part of the graph. `teacher` is the strategy whose model teaches
    the first round (it trains first, in its own step); `student` is how the
    transferred student is fitted (`feature_extraction`: a head on the frozen
    module, its features computed once). `student_epoch` "best" keeps the
    student's epoch with the best eval accuracy (early stopping as for any
    fit); "last" trains its whole budget and keeps the last epoch, since ten
    eval labels per class cannot rank epochs of a student of thousands of
    pseudo-labels (the from-scratch student of `baseline_self_training` follows
    the same rule).
    """

    labeler: Literal["teacher", "propagation"] = PROPAGATION
    threshold: Optional[float] = None
    max_per_class: Optional[int] = None
    rounds: int = 1
    neighbors: int = 10
    alpha: float = 0.99
    raw_components: int = 100  # 0: the graph sees the teacher's features only
    teacher: Literal["fine_tune_all", "fine_tune_top", "feature_extraction"] = "fine_tune_all"
    student: Literal["fine_tune_all", "fine_tune_top", "feature_extraction"] = "fine_tune_all"
    student_epoch: Literal["best", "last"] = BEST_EPOCH

    def validate(self) -> None:
        if self.labeler not in LABELERS:
            raise ConfigError("labeler", self.labeler, " or ".join(LABELERS))
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError("threshold", self.threshold,
                              "null (the labeler's default) or a number in (0, 1): the minimum top score")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ConfigError("max_per_class", self.max_per_class, "null (the labeler's default) or an integer >= 1")
        if self.rounds < 1:
            raise ConfigError("rounds", self.rounds, "an integer >= 1")
        if self.neighbors < 1:
            raise ConfigError("neighbors", self.neighbors, "an integer >= 1")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError("alpha", self.alpha, "a number in (0, 1): how far labels spread (0.99 in the paper)")
        if self.teacher not in TEACHERS:
            raise ConfigError("teacher", self.teacher, TEACHERS)
        if self.student not in STUDENT_FITS:
            raise ConfigError("student", self.student, STUDENT_FITS)
        if self.student_epoch not in STUDENT_EPOCHS:
            raise ConfigError("student_epoch", self.student_epoch, STUDENT_EPOCHS)
        if self.raw_components < 0:
            raise ConfigError("raw_components", self.raw_components, "an integer >= 0 (0: no raw-input view)")

    def selection(self) -> tuple[float, int]:
        """(threshold, max_per_class) with the labeler's defaults filled in."""
        threshold, max_per_class = LABELER_DEFAULTS[self.labeler]
        return (threshold if self.threshold is None else self.threshold,
                max_per_class if self.max_per_class is None else self.max_per_class)
