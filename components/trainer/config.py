"""The trainer component's spec: which base, which head, which strategies, which schedule.

Fields left null are chosen by the hyper-rule (`tlpipe.models.hyperrule`) from
the number of training examples.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.trainer.domain_config import DomainConfig
from tlpipe.components.trainer.multi_task_config import TaskConfig
from tlpipe.components.trainer.self_training_config import SelfTrainingConfig
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.models.regularization import Regularization



@dataclasses.dataclass
class HeadConfig:
    """The new classification head put on the feature vector."""

    dropout: float = 0.2
    hidden_units: list[int] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout", self.dropout, "a number in [0, 1)")
        if any(units < 1 for units in self.hidden_units):
            raise ConfigError("hidden_units", self.hidden_units, "a list of integers >= 1")


@dataclasses.dataclass
class RegularizationConfig:
    """A penalty added to the loss while fine-tuning (`tlpipe.models.regularizers`).

    `l2_sp`: alpha/2 * ||w - w0||^2 on the base towards its pre-trained
    values and beta/2 * ||w||^2 on the head's kernels (also in the head
    phase); `bss`: eta * the k smallest squared singular values of each
    batch's features (while the base trains). Applies to every transfer strategy.
    """

    kind: Literal["none", "l2_sp", "bss"] = "none"
    alpha: float = 0.1
    beta: float = 0.01
    eta: float = 0.001
    k: int = 1

    def validate(self) -> None:
        self.to_regularization().validate()

    def to_regularization(self) -> Regularization:
        return Regularization(kind=self.kind, alpha=self.alpha, beta=self.beta, eta=self.eta, k=self.k)


@dataclasses.dataclass
class BaselineConfig:
    """The from-scratch model the transfer models must beat.

    `architecture` 'same' re-initialises the base's own architecture when it is
    known; 'small_cnn' uses a configured small CNN. `self_training` also trains
    `baseline_self_training` (a from-scratch teacher pseudo-labels the
    unlabelled images for a from-scratch student) when the `self_training`
    strategy is not listed; with it, that matched reference always trains. `input_size` [height, width] has the small
    CNN see the images resized to that size inside the model (null: the
    transformed size): a network trained from scratch on 28x28 images does
    better at 28x28 than on the same images upsampled for a pre-trained module.
    """

    architecture: Literal["same", "small_cnn"] = "same"
    cnn_filters: list[int] = dataclasses.field(default_factory=lambda: [32, 64, 128])
    input_size: Optional[list[int]] = None
    learning_rate: Optional[float] = None
    epochs: Optional[int] = None
    self_training: bool = False

    def validate(self) -> None:
        if not self.cnn_filters or min(self.cnn_filters) < 1:
            raise ConfigError("cnn_filters", self.cnn_filters, "a non-empty list of integers >= 1")
        _check_optional_positive(self, ("epochs",), integer=True)
        _check_optional_positive(self, ("learning_rate",), integer=False)
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 8):
            raise ConfigError("input_size", self.input_size, "null or [height, width], both >= 8")


def _check_optional_positive(section: object, names: tuple[str, ...], *, integer: bool) -> None:
    """Fields left null are the hyper-rule's choice; set ones must be > 0 (integers >= 1)."""
    for name in names:
        value = getattr(section, name)
        if value is not None and value <= 0:
            raise ConfigError(name, value, "null (the hyper-rule decides) or " +
                              ("an integer >= 1" if integer else "a number > 0"))


@dataclasses.dataclass
class TrainerConfig:
    """Transfer models (one per strategy) and the baseline, trained on the same labels.

    `fine_tune_pattern`, when set, chooses the variables `fine_tune_top` unfreezes
    (a regular expression over the module's variable paths) instead of the top
    `fine_tune_top_n` blocks. `base_training` is the hub layer's training policy
    ('inference' keeps batch norm and dropout of the base in inference mode while
    fine-tuning). `cache_frozen_features` computes the frozen base's outputs once
    for the head phase (ignored when `augment` is on). `candidates` (presets,
    module folders or hub handles) instead of `handle`/`preset`: a rank step
    scores each on the labelled target examples and the trainers build on the
    one with the best `select` score (see `tlpipe rank`). `strategies` names
    registered candidates (components/strategies/); `plugins` names modules
    imported first, in every process, which register strategies of their own
    (docs/architecture.md, "Recipe: add a strategy"). `tasks` are the heads
    of strategy `multi_task` (see multi_task_config.py).
    """

    handle: str = ""
    preset: Optional[str] = None
    candidates: list[str] = dataclasses.field(default_factory=list)
    select: str = "logme"
    strategies: list[str] = dataclasses.field(default_factory=lambda: ["feature_extraction", "fine_tune_all"])
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    baseline: BaselineConfig = dataclasses.field(default_factory=BaselineConfig)
    regularization: RegularizationConfig = dataclasses.field(default_factory=RegularizationConfig)
    domain: DomainConfig = dataclasses.field(default_factory=DomainConfig)  # domain-adaptation strategies
    self_training: SelfTrainingConfig = dataclasses.field(default_factory=SelfTrainingConfig)
    tasks: list[TaskConfig] = dataclasses.field(default_factory=list)  # the heads of `multi_task`
    plugins: list[str] = dataclasses.field(default_factory=list)  # modules that register strategies of their own
    batch_size: Optional[int] = None
    head_epochs: Optional[int] = None
    head_learning_rate: Optional[float] = None
    fine_tune_epochs: Optional[int] = None
    fine_tune_learning_rate: Optional[float] = None
    warmup_fraction: float = 0.1
    fine_tune_top_n: int = 1
    fine_tune_pattern: Optional[str] = None
    base_training: Literal["inference", "training"] = "inference"
    early_stopping_patience: int = 5
    augment: bool = False
    cache_frozen_features: bool = True
    seed: int = 0
    distribution: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"

    def validate(self) -> None:
        """The section's own values; `strategies` and what each strategy needs of the section are checked by the
        strategy registry (components/strategies/registry.py: `check_trainer`), which knows the strategies."""
        if self.candidates:
            from tlpipe.models.transferability import SCORES

            if self.handle or self.preset:
                raise ConfigError("candidates", self.candidates,
                                  "an empty list when trainer.handle or trainer.preset names the module")
            if len(set(self.candidates)) != len(self.candidates):
                raise ConfigError("candidates", self.candidates, "each candidate at most once")
            if self.select not in SCORES:
                raise ConfigError("select", self.select, SCORES)
        if self.preset is not None:
            from tlpipe.models.presets import PRESETS

            if self.preset not in PRESETS:
                raise ConfigError("preset", self.preset, "null or one of " + ", ".join(sorted(PRESETS)))
        _check_optional_positive(self, ("batch_size", "head_epochs", "fine_tune_epochs"), integer=True)
        _check_optional_positive(self, ("head_learning_rate", "fine_tune_learning_rate"), integer=False)
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError("warmup_fraction", self.warmup_fraction, "a number in [0, 1)")
        if self.fine_tune_top_n < 1:
            raise ConfigError("fine_tune_top_n", self.fine_tune_top_n, "an integer >= 1")
        if self.early_stopping_patience < 1:
            raise ConfigError("early_stopping_patience", self.early_stopping_patience, "an integer >= 1")


@dataclasses.dataclass
class SourceConfig:
    """Pre-training of a feature extractor on a source task, published as a TF-Hub module.

    Used when `trainer.handle` and `trainer.preset` are both empty: the pipeline
    then publishes this module once under `<root>/<module_dir>` and later runs
    reuse it. The network is `build_small_cnn(conv_filters, convs_per_block)`;
    `epochs` null lets the hyper-rule decide (`source_schedule`: a step cap,
    stopping once the source eval accuracy stops improving). `seed` makes the
    published module bit-identical across processes.
    """

    ingest: IngestConfig = dataclasses.field(default_factory=IngestConfig)
    image_size: list[int] = dataclasses.field(default_factory=lambda: [28, 28])
    channels: int = 1
    conv_filters: list[int] = dataclasses.field(default_factory=lambda: [32, 64, 128])
    convs_per_block: int = 1
    epochs: Optional[int] = None
    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 2e-3
    augment: bool = True  # flips and shifts while pre-training: more general features transfer better
    module_dir: str = "modules/fashion-source"

    def validate(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ConfigError("image_size", self.image_size, "[height, width], both >= 8")
        if self.channels not in (1, 3):
            raise ConfigError("channels", self.channels, [1, 3])
        if not self.conv_filters or min(self.conv_filters) < 1:
            raise ConfigError("conv_filters", self.conv_filters, "a non-empty list of integers >= 1")
        if self.convs_per_block < 1:
            raise ConfigError("convs_per_block", self.convs_per_block, "an integer >= 1")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError("epochs", self.epochs, "null (the hyper-rule decides) or an integer >= 1")
