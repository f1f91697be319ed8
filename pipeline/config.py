"""The one configuration of a tlpipe pipeline: defaults < YAML file < `--set` overrides.

The defaults *are* the embedded default of `tlpipe run`: Fashion-MNIST from
Debian's `dataset-fashion-mnist`, a feature extractor pre-trained on five
classes (the source task) and transferred to the five others with ten labels
per class (the target task). The final config is written into every run's
output folder (`save_config`) so a run can be reproduced from it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal, Optional, Sequence

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.trainer.config import SourceConfig, TrainerConfig
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.config_schema import from_dict, merge, to_dict
from tlpipe.models.errors import ConfigError
from tlpipe.pipeline.kubeflow_config import KubeflowConfig

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_LABELS = [
    "T-shirt", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
SOURCE_CLASSES = FASHION_MNIST_LABELS[:5]
TARGET_CLASSES = FASHION_MNIST_LABELS[5:]
CONFIG_FILE_NAME = "config.yaml"


def _target_ingest() -> IngestConfig:
    return IngestConfig(
        source=f"idx:{FASHION_MNIST_DIR}",
        splits={"train": "train[:80%]", "eval": "train[80%:]", "test": "test"},
        label_names=list(FASHION_MNIST_LABELS),
        classes=list(TARGET_CLASSES),
        shots={"train": 10, "eval": 10},
    )


def _source_ingest() -> IngestConfig:
    return IngestConfig(
        source=f"idx:{FASHION_MNIST_DIR}",
        splits={"train": "train[:90%]", "eval": "train[90%:]"},
        label_names=list(FASHION_MNIST_LABELS),
        classes=list(SOURCE_CLASSES),
    )


def _source() -> SourceConfig:
    return SourceConfig(ingest=_source_ingest())


def _target_trainer() -> TrainerConfig:
    # The source classes (tops, trousers, dresses) and the target classes
    # (footwear, bags, shirts) look different enough that the base's batch-norm
    # statistics must adapt: measured on this default, fine-tuning with the
    # statistics frozen reached 0.75 test accuracy, with them training (and the
    # hyper-rule's settling budget) 0.82-0.84, against 0.82 for the baseline.
    return TrainerConfig(strategies=["feature_extraction", "fine_tune_all"], base_training="training")


@dataclasses.dataclass
class RunConfig:
    """Where a pipeline's artifacts go and how it is executed locally."""

    name: str = "fashion-mnist-transfer"
    root: str = "tlpipe_runs"
    mode: Literal["kfp_local", "in_process"] = "kfp_local"
    enable_caching: bool = True

    def validate(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ConfigError("name", self.name, "letters, digits, '-' and '_'")


@dataclasses.dataclass
class PipelineConfig:
    """Everything one pipeline run needs; each section belongs to one component."""

    pipeline: RunConfig = dataclasses.field(default_factory=RunConfig)
    beam: BeamConfig = dataclasses.field(default_factory=BeamConfig)
    source: SourceConfig = dataclasses.field(default_factory=_source)
    ingest: IngestConfig = dataclasses.field(default_factory=_target_ingest)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=_target_trainer)
    evaluator: EvaluatorConfig = dataclasses.field(default_factory=EvaluatorConfig)
    pusher: PusherConfig = dataclasses.field(default_factory=PusherConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    def validate(self) -> None:
        if self.trainer.handle and self.trainer.preset:
            raise ConfigError(
                "trainer.preset", self.trainer.preset,
                f"null when trainer.handle is set (received handle {self.trainer.handle!r}); set one of them",
            )

    @property
    def uses_source_module(self) -> bool:
        """True when the pipeline pre-trains and publishes its own feature extractor."""
        return not self.trainer.handle and not self.trainer.preset


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into (['a', 'b', 'c'], value parsed as YAML)."""
    import yaml

    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError("--set", override, "KEY=VALUE with a dotted key, e.g. trainer.head_epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(key, raw, f"a YAML value ({error.problem})") from None
    return key.split("."), value


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    for part in reversed(path):
        value = {part: value}
    return value


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Defaults, then the YAML file at `path`, then each `KEY=VALUE` override, validated."""
    import yaml

    data = to_dict(PipelineConfig())
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError("--config", path, "the path of an existing YAML file")
        with open(path, encoding="utf-8") as handle:
            try:
                file_data = yaml.safe_load(handle) or {}
            except yaml.YAMLError as error:
                raise ConfigError("--config", path, f"valid YAML ({error})") from None
        if not isinstance(file_data, dict):
            raise ConfigError("--config", path, "a YAML mapping of sections (pipeline, ingest, trainer, ...)")
        data = merge(data, file_data)
    for override in overrides:
        key_path, value = parse_override(override)
        data = merge(data, _nest(key_path, value))
    return from_dict(PipelineConfig, data)


def config_to_yaml(config: Any) -> str:
    """The config (or a section) as YAML text."""
    import yaml

    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save_config(config: Any, folder: str) -> str:
    """Write the config as `config.yaml` into `folder`; returns the file path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CONFIG_FILE_NAME)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(config_to_yaml(config))
    return path


def config_to_json(config: PipelineConfig) -> str:
    """Compact JSON of the whole config: how it travels into pipeline steps."""
    import json

    return json.dumps(to_dict(config), sort_keys=True)


def config_from_json(text: str) -> PipelineConfig:
    """Inverse of `config_to_json`, validated again."""
    import json

    return from_dict(PipelineConfig, json.loads(text))
