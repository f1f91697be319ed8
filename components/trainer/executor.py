"""trainer executor: a transform artifact in, a trained and exported classifier out.

`train_transfer` trains the hub module + head with one strategy (two-phase
fit); `train_baseline` trains the same head on a randomly initialised network
with the baseline's own budget, on the same labels. Both write into
`output_dir`:

  model/          SavedModel for TFMA and serving (`export_for_serving`), with
                  tlpipe.json (label names, config, history)
  history.json    per-epoch history (phase, epoch, step, losses, accuracies, lr)
  checkpoints/    what a restarted run resumes from (same output_dir)
  logs/<phase>/   TensorBoard scalars
  config.json     the effective settings: trainer config, schedule chosen, data
  summary.json    strategy, eval accuracy, steps, timings; written last, so its
                  presence means the run completed

Checkpoints and logs are written as training goes (a restart needs them); the
model folder is written atomically and every JSON file is replaced atomically.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

import keras
import numpy as np

from tlpipe.models.artifacts import write_json
from tlpipe.models.progress import log
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.data import (
    TransformedData, check_augmentation, default_augmentation, load_transformed,
)
from tlpipe.components.trainer.determinism import make_deterministic
from tlpipe.components.trainer.distribution import make_strategy
from tlpipe.models.builders import build_baseline_model, build_transfer_model
from tlpipe.components.trainer.spec import MODEL_DIR, SUMMARY_FILE
from tlpipe.components.trainer.strategies import BASELINE
from tlpipe.models.fit import TRANSFER_FITS, fit_baseline, two_phase_fit
from tlpipe.models.layout import CHECKPOINT_DIR
from tlpipe.models.hyperrule import Schedule, make_schedule
from tlpipe.models.serving import export_for_serving
from tlpipe.components.config_schema import to_dict, validate_tree
from tlpipe.models.errors import ConfigError

CONFIG_FILE = "config.json"


def train_transfer(config: TrainerConfig, transformed_dir: str, output_dir: str, *,
                   strategy: str, handle: str, work_dir: Optional[str] = None) -> dict[str, Any]:
    """Train the transferred model with `strategy` on `handle` (hub handle, folder or preset); returns the summary.

    Checkpoints go to `<work_dir>/checkpoints` when given (a folder a rerun of the same work finds again),
    else into `output_dir`.
    """
    return _train_transfer(config, transformed_dir, output_dir, strategy=strategy, handle=handle, work_dir=work_dir)


def _train_transfer(config: TrainerConfig, transformed_dir: str, output_dir: str, *, strategy: str, handle: str,
                    work_dir: Optional[str] = None, name: Optional[str] = None,
                    data: Optional[TransformedData] = None, extra: Optional[dict[str, Any]] = None,
                    keep_last_epoch: bool = False, train_features: Optional[np.ndarray] = None) -> dict[str, Any]:
    """`train_transfer`, reusable: `name` labels the model when it differs from its fit `strategy`
    (self-training's students), `data` replaces the transform artifact's, `extra` joins the summary,
    `keep_last_epoch` and `train_features` are `two_phase_fit`'s."""
    if strategy not in TRANSFER_FITS:
        raise ConfigError("strategy", strategy, TRANSFER_FITS)
    name = name or strategy

    def build(data: TransformedData) -> keras.Model:
        return build_transfer_model(
            handle, data.num_classes, dropout=config.head.dropout, hidden_units=config.head.hidden_units,
            input_shape=data.image_shape, training_policy=config.base_training, name=f"transfer_{strategy}",
        )

    def fit(model: keras.Model, data: TransformedData, schedule: Schedule) -> dict[str, Any]:
        top_n, pattern = (None, config.fine_tune_pattern) if config.fine_tune_pattern else (config.fine_tune_top_n, None)
        return two_phase_fit(
            model, data.train, data.eval, strategy=strategy, schedule=schedule, output_dir=output_dir,
            top_n=top_n, pattern=pattern, augment=_augmentation(config, data),
            cache_frozen_features=config.cache_frozen_features, regularization=config.regularization.to_regularization(),
            early_stopping_patience=config.early_stopping_patience, seed=config.seed,
            log_prefix=f"trainer [{name}] ", checkpoint_dir=_checkpoint_dir(work_dir), keep_last_epoch=keep_last_epoch,
            train_features=train_features,
        )

    return _train(config, transformed_dir, output_dir, kind="transfer", strategy=name, handle=handle,
                  build=build, fit=fit, data=data, extra=extra)


def train_baseline(config: TrainerConfig, transformed_dir: str, output_dir: str, *, handle: str,
                   strategy: str = BASELINE, work_dir: Optional[str] = None) -> dict[str, Any]:
    """Train the from-scratch baseline of `handle`'s transfer model; returns the summary."""
    return _train_baseline(config, transformed_dir, output_dir, handle=handle, strategy=strategy, work_dir=work_dir)


def _train_baseline(config: TrainerConfig, transformed_dir: str, output_dir: str, *, handle: str,
                    strategy: str = BASELINE, work_dir: Optional[str] = None,
                    data: Optional[TransformedData] = None, extra: Optional[dict[str, Any]] = None,
                    keep_last_epoch: bool = False) -> dict[str, Any]:
    """`train_baseline`, reusable: `data` replaces the transform artifact's, `extra` joins the summary,
    `keep_last_epoch` is `fit_baseline`'s."""

    def build(data: TransformedData) -> keras.Model:
        return build_baseline_model(
            handle, data.num_classes, architecture=config.baseline.architecture,
            cnn_filters=config.baseline.cnn_filters, dropout=config.head.dropout,
            hidden_units=config.head.hidden_units, input_shape=data.image_shape, name="baseline",
            resize_to=config.baseline.input_size,
        )

    def fit(model: keras.Model, data: TransformedData, schedule: Schedule) -> dict[str, Any]:
        return fit_baseline(
            model, data.train, data.eval, schedule=schedule, output_dir=output_dir,
            augment=_augmentation(config, data), early_stopping_patience=config.early_stopping_patience,
            seed=config.seed, log_prefix=f"trainer [{strategy}] ", checkpoint_dir=_checkpoint_dir(work_dir),
            keep_last_epoch=keep_last_epoch,
        )

    return _train(config, transformed_dir, output_dir, kind="baseline", strategy=strategy, handle=handle,
                  build=build, fit=fit, data=data, extra=extra)


def _checkpoint_dir(work_dir: Optional[str]) -> Optional[str]:
    return os.path.join(work_dir, CHECKPOINT_DIR) if work_dir else None


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


def _augmentation(config: TrainerConfig, data: TransformedData) -> keras.Sequential | None:
    check_augmentation(config.augment, data.modality)
    return default_augmentation(config.seed) if config.augment else None


def _train(
    config: TrainerConfig, transformed_dir: str, output_dir: str, *, kind: str, strategy: str, handle: str,
    build: Callable[[TransformedData], keras.Model],
    fit: Callable[[keras.Model, TransformedData, Schedule], dict[str, Any]],
    data: Optional[TransformedData] = None, extra: Optional[dict[str, Any]] = None,
    export_options: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Load data (unless `data` is given: e.g. labels plus pseudo-labels), pick the schedule, build, fit,
    export (with `export_options`, e.g. a multi-task model's task label names), and record settings and
    summary (with `extra`'s entries)."""
    validate_tree(config, "trainer")
    started = time.monotonic()
    data = data or load_transformed(transformed_dir)
    schedule = schedule_for(config, data.num_train, data.num_classes)
    log(f"trainer [{strategy}]: {data.num_train} train / {data.num_eval} eval examples, {data.num_classes} classes; "
        f"schedule tier {schedule.tier}, batch {schedule.batch_size}, {schedule.steps_per_epoch} steps per epoch")
    os.makedirs(output_dir, exist_ok=True)
    effective = {
        "kind": kind, "strategy": strategy, "handle": handle, "trainer": to_dict(config),
        "schedule": schedule.to_dict(), "data": {"transformed_dir": os.path.abspath(transformed_dir), **data.describe()},
    }
    write_json(os.path.join(output_dir, CONFIG_FILE), effective)

    make_deterministic(config.seed)  # same seeds, same model in any fresh process
    distribution = make_strategy(config.distribution)
    log(f"trainer [{strategy}]: {type(distribution).__name__} with {distribution.num_replicas_in_sync} replica(s)")
    built = time.monotonic()
    with distribution.scope():
        model = build(data)
        trained = time.monotonic()
        history = fit(model, data, schedule)
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
        "kind": kind,
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
