"""What a strategy plugin is: one `Strategy` entry, its train function, and the one args object it gets.

Why a typed entry instead of "module:function" strings: "go to definition"
follows `Strategy.train` to the code that trains, and a type checker checks
every plugin against `TrainFunction`. An entry declares everything the rest of
the pipeline needs to know about its strategy, so nothing outside its plugin
file names it:

- `train`: the function the train step calls with a `TrainArgs`;
- `role`: a candidate (a user may list it in `trainer.strategies`) or a
  reference (trained so that a candidate has something to be judged against);
- `reference` (a candidate's): the matched reference, the model that saw the same data without
  the pre-trained module (components/evaluator/pairing.py), trained whenever
  this strategy is;
- `teacher` (or `configured_teacher`, read from the trainer section): the
  strategy whose trained model this one builds on, trained first;
- `requires_splits`, `source_domain`: the inputs beyond the labelled target
  data (the unlabelled pool; the labelled source domain's transform artifact);
- `check_config`: its own checks of the trainer section, run at config load
  whether or not it is listed (e.g. `trainer.tasks` is set exactly when
  `multi_task` runs);
- `also_runs_when`: a reference the trainer section can ask for on its own;
- `evaluate`: the evaluate step that judges a run training it, when the
  standard one does not (multi_task's per-task evaluation).

A plugin module must import cheaply: the CLI reads the registry to check a
config without TensorFlow (about 7 s to import), so its train functions import
their implementation when called.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Optional, Protocol

from tlpipe.components.spec import ComponentSpec
from tlpipe.components.trainer.config import TrainerConfig

CANDIDATE = "candidate"
REFERENCE = "reference"
Role = Literal["candidate", "reference"]
UNLABELED = "unlabeled"  # the split of unlabelled target images (ingest.unlabeled: true)


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """Everything one train step gives its strategy (TFX's FnArgs for the trainer).

    `output_dir` is a temporary folder that becomes the step's output once the train function returns;
    `work_dir` keeps what a rerun of the same work resumes from (checkpoints), None without one;
    `teacher_model_dir` is the teacher's exported SavedModel, for a strategy with a teacher;
    `source_transformed_dir` the labelled source domain's transform artifact, for a `source_domain` strategy.
    """

    config: TrainerConfig
    transformed_dir: str
    output_dir: str
    strategy: str
    handle: str
    work_dir: Optional[str] = None
    teacher_model_dir: Optional[str] = None
    source_transformed_dir: Optional[str] = None

    def teacher(self) -> str:
        """The teacher's exported model; a strategy with a teacher calls this (the graph always gives one)."""
        if not self.teacher_model_dir:
            raise ValueError(f"strategy {self.strategy!r} needs its teacher's model; the train step got none")
        return self.teacher_model_dir

    def source_domain(self) -> str:
        """The labelled source domain's transform artifact, for a `source_domain` strategy."""
        if not self.source_transformed_dir:
            raise ValueError(f"strategy {self.strategy!r} needs the source domain's transform artifact; "
                             "the train step got none")
        return self.source_transformed_dir


class TrainFunction(Protocol):
    """A strategy's training: train and export into `args.output_dir`; return the summary (summary.json)."""

    def __call__(self, args: TrainArgs) -> dict[str, Any]: ...


ConfigCheck = Callable[[TrainerConfig], None]
ConfigTeacher = Callable[[TrainerConfig], str]
ConfigSwitch = Callable[[TrainerConfig], bool]


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One strategy: how it trains and what it needs (see the module docstring for each field)."""

    name: str
    train: TrainFunction
    role: Role
    description: str
    reference: Optional[str] = None  # a candidate's matched reference
    requires_splits: tuple[str, ...] = ()
    teacher: Optional[str] = None
    configured_teacher: Optional[ConfigTeacher] = None
    source_domain: bool = False
    extra_data: str = ""  # what it learns from beyond the labels, in words (for the gain decomposition)
    check_config: Optional[ConfigCheck] = None
    also_runs_when: Optional[ConfigSwitch] = None
    evaluate: Optional[ComponentSpec] = None

    def __post_init__(self) -> None:
        if self.role == CANDIDATE and not self.reference:
            raise ValueError(f"strategy {self.name!r}: a candidate names its matched reference; Received: "
                             f"reference={self.reference!r}")

    def teacher_for(self, config: TrainerConfig) -> Optional[str]:
        """The strategy whose model teaches this one under `config`."""
        return self.configured_teacher(config) if self.configured_teacher else self.teacher
