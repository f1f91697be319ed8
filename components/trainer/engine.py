"""The training engine every strategy shares: load, schedule, build, fit, export, record.

Why a module of its own: the strategies (transfer and baseline in
executor.py, self-training, domain adaptation, multi-task) differ only in how
they build and fit their model. Each describes that as a `Recipe`, an object
with `build` and `fit`; `train_and_export` does the rest the same way for
all: it loads the transform artifact (or takes given data), picks the
hyper-rule's schedule, seeds the process, builds and fits the model under the
configured distribution strategy, exports it for serving, and writes
config.json and summary.json (written last: its presence means the run
completed). A strategy module imports what it needs from here, never a
sibling's private names.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar, Optional, Protocol

import keras

from tlpipe.components.config_schema import to_dict, validate_tree
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.data import TransformedData, check_augmentation, default_augmentation, load_transformed
from tlpipe.components.trainer.determinism import make_deterministic
from tlpipe.components.trainer.distribution import make_strategy
from tlpipe.components.trainer.spec import MODEL_DIR
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.hyperrule import Schedule, make_schedule
from tlpipe.models.plumbing.layout import CHECKPOINT_DIR, SUMMARY_FILE
from tlpipe.models.plumbing.progress import log
from tlpipe.models.serving import export_for_serving

CONFIG_FILE = "config.json"


class Recipe(Protocol):
    """How one strategy builds and fits its model; `kind` ("transfer", "baseline", ...) goes into the records."""

    kind: ClassVar[str]

    def build(self, data: TransformedData) -> keras.Model:
        """The untrained model for `data`'s classes and input shape."""
        ...

    def fit(self, model: keras.Model, data: TransformedData, schedule: Schedule) -> dict[str, Any]:
        """Train `model` in place; return its history (models/fit.py's format: `best`, `phases`, `total_steps`)."""
        ...


def checkpoint_dir_for(work_dir: Optional[str]) -> Optional[str]:
    """Where a fit keeps its checkpoints: under the step's work folder when it has one, else the fit's default."""
    return os.path.join(work_dir, CHECKPOINT_DIR) if work_dir else None


def augmentation_for(config: TrainerConfig, data: TransformedData) -> keras.Sequential | None:
    """The configured augmentation for `data`'s modality (None when `trainer.augment` is off)."""
    check_augmentation(config.augment, data.modality)
    return default_augmentation(config.seed) if config.augment else None


def schedule_for(config: TrainerConfig, num_train: int, num_classes: int) -> Schedule:
    """The hyper-rule's schedule for this data, with every value the config sets taking precedence."""
    return make_schedule(
        num_train, num_classes,
        batch_size=config.batch_size,
        head_epochs=config.head_epochs, head_learning_rate=config.head_learning_rate,
        fine_tune_epochs=config.fine_tune_epochs, fine_tune_learning_rate=config.fine_tune_learning_rate,
        warmup_fraction=config.warmup_fraction,
        baseline_epochs=config.baseline.epochs, baseline_learning_rate=config.baseline.learning_rate,
        base_batch_norm_trains=config.base_training == "training",
    )


def train_and_export(
    config: TrainerConfig, transformed_dir: str, output_dir: str, recipe: Recipe, *, strategy: str, handle: str,
    data: Optional[TransformedData] = None, extra: Optional[dict[str, Any]] = None,
    export_options: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Train `recipe`'s model on the transform artifact in `transformed_dir` (or on `data`: e.g. labels plus
    pseudo-labels), export it into `output_dir` (with `export_options`, e.g. a multi-task model's task label
    names) and record settings and summary (with `extra`'s entries); returns the summary."""
    validate_tree(config, "trainer")
    started = time.monotonic()
    data = data or load_transformed(transformed_dir)
    schedule = schedule_for(config, data.num_train, data.num_classes)
    log(f"trainer [{strategy}]: {data.num_train} train / {data.num_eval} eval examples, {data.num_classes} classes; "
        f"schedule tier {schedule.tier}, batch {schedule.batch_size}, {schedule.steps_per_epoch} steps per epoch")
    os.makedirs(output_dir, exist_ok=True)
    effective = {
        "kind": recipe.kind, "strategy": strategy, "handle": handle, "trainer": to_dict(config),
        "schedule": schedule.to_dict(), "data": {"transformed_dir": os.path.abspath(transformed_dir), **data.describe()},
    }
    write_json(os.path.join(output_dir, CONFIG_FILE), effective)

    make_deterministic(config.seed)  # same seeds, same model in any fresh process
    distribution = make_strategy(config.distribution)
    log(f"trainer [{strategy}]: {type(distribution).__name__} with {distribution.num_replicas_in_sync} replica(s)")
    built = time.monotonic()
    with distribution.scope():
        model = recipe.build(data)
        trained = time.monotonic()
        history = recipe.fit(model, data, schedule)
    exported = time.monotonic()
    model_dir = export_for_serving(
        model, os.path.join(output_dir, MODEL_DIR), label_names=data.label_names, modality=data.modality,
        image_size=data.image_shape[:2] if data.image_shape else None,
        channels=data.image_shape[2] if data.image_shape else None,
        config=effective, history=history, resize_method=data.resize_method, text_lowercase=data.text_lowercase,
        **(export_options or {}),
    )
    finished = time.monotonic()
    best = history["best"]
    summary = {
        "kind": recipe.kind,
        "strategy": strategy,
        "handle": handle,
        "model_dir": model_dir,
        "eval_accuracy": best["val_accuracy"],
        "eval_loss": best["val_loss"],
        "best": best,
        "total_steps": history["total_steps"],
        "epochs_run": {phase: info["epochs_run"] for phase, info in history["phases"].items()},
        "stopped_early": {phase: info["stopped_early"] for phase, info in history["phases"].items()},
        "num_train": data.num_train,
        "num_eval": data.num_eval,
        **(extra or {}),
        "baseline_architecture": getattr(model, "baseline_architecture", None),
        "distribution": {"strategy": type(distribution).__name__, "replicas": distribution.num_replicas_in_sync},
        "timings": {
            "load_s": round(built - started, 3),
            "build_s": round(trained - built, 3),
            "train_s": round(exported - trained, 3),
            "export_s": round(finished - exported, 3),
            "total_s": round(finished - started, 3),
            "phases_s": {phase: round(info["seconds"], 3) for phase, info in history["phases"].items()},
        },
    }
    write_json(os.path.join(output_dir, SUMMARY_FILE), summary)
    log(f"trainer [{strategy}]: eval accuracy {best['val_accuracy']:.4f} (phase {best['phase']}, epoch "
        f"{best['epoch']}, step {best['step']}) after {history['total_steps']} steps; model at {model_dir}")
    return summary
