"""The `trainer.self_training` section: how a teacher's pseudo-labels join the labelled set."""

from __future__ import annotations

import dataclasses

from tlpipe.models.errors import ConfigError


@dataclasses.dataclass
class SelfTrainingConfig:
    """Pseudo-labelling of the `unlabeled` split (needs `ingest.unlabeled: true`).

    The teacher labels every unlabelled example; those whose top probability is
    at least `threshold` are candidates, and per class at most `max_per_class`
    of them (the most confident) join the labelled training set, so that no
    class floods the student. `rounds` students are trained in turn, each the
    next one's teacher. The eval split (early stopping) and the test split are
    never pseudo-labelled.
    """

    threshold: float = 0.9
    max_per_class: int = 100
    rounds: int = 1

    def validate(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError("threshold", self.threshold, "a number in (0, 1): the teacher's minimum confidence")
        if self.max_per_class < 1:
            raise ConfigError("max_per_class", self.max_per_class, "an integer >= 1")
        if self.rounds < 1:
            raise ConfigError("rounds", self.rounds, "an integer >= 1")
