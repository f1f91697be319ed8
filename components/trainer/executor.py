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
Each is a `Recipe` (how to build and fit) run by the shared engine
(`engine.train_and_export`); self-training's students reuse both recipes with
pseudo-labelled data.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Optional

import keras
import numpy as np

from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.data import TransformedData
from tlpipe.components.trainer.engine import augmentation_for, checkpoint_dir_for, train_and_export
from tlpipe.components.trainer.transfer_fits import FEATURE_EXTRACTION, FINE_TUNE_ALL, TRANSFER_FITS
from tlpipe.models.builders import build_baseline_model, build_transfer_model
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.models.fit import UNFREEZE_ALL, Unfreeze, fit_baseline, two_phase_fit
from tlpipe.models.hyperrule import Schedule


def unfreeze_for(strategy: str, config: TrainerConfig) -> Optional[Unfreeze]:
    """What of the base the transfer fit `strategy` trains after the head phase (None: nothing, it stays frozen)."""
    if strategy not in TRANSFER_FITS:
        raise ConfigError("strategy", strategy, TRANSFER_FITS)
    if strategy == FEATURE_EXTRACTION:
        return None
    if strategy == FINE_TUNE_ALL:
        return UNFREEZE_ALL
    if config.fine_tune_pattern:
        return Unfreeze(pattern=config.fine_tune_pattern)
    return Unfreeze(top_n=config.fine_tune_top_n)


def configured_transfer_model(config: TrainerConfig, handle: str, data: TransformedData, *, name: str) -> keras.Model:
    """`handle`'s module with the configured head (`trainer.head`) and base training policy, for `data`."""
    return build_transfer_model(
        handle, data.num_classes, dropout=config.head.dropout, hidden_units=config.head.hidden_units,
        input_shape=data.image_shape, training_policy=config.base_training, name=name,
    )


@dataclasses.dataclass(frozen=True)
class RecipeSettings:
    """What every recipe of this module is given: the trainer section, the module, where the fit writes
    (`output_dir`; checkpoints under `work_dir` when given), the model's name in logs and records, and
    whether the fit keeps its last epoch instead of its best (`keep_last_epoch`)."""

    config: TrainerConfig
    handle: str
    output_dir: str
    name: str
    work_dir: Optional[str] = None
    keep_last_epoch: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransferRecipe(RecipeSettings):
    """The hub module + a new head, fit in two phases with the fit `strategy` (`unfreeze_for`)."""

    kind: ClassVar[str] = "transfer"
    strategy: str
    train_features: Optional[np.ndarray] = None

    def build(self, data: TransformedData) -> keras.Model:
        return configured_transfer_model(self.config, self.handle, data, name=f"transfer_{self.strategy}")

    def fit(self, model: keras.Model, data: TransformedData, schedule: Schedule) -> dict[str, Any]:
        config = self.config
        return two_phase_fit(
            model, data.train, data.eval, unfreeze=unfreeze_for(self.strategy, config), name=self.strategy,
            schedule=schedule, output_dir=self.output_dir, augment=augmentation_for(config, data),
            cache_frozen_features=config.cache_frozen_features, regularization=config.regularization.to_regularization(),
            early_stopping_patience=config.early_stopping_patience, seed=config.seed,
            log_prefix=f"trainer [{self.name}] ", checkpoint_dir=checkpoint_dir_for(self.work_dir),
            keep_last_epoch=self.keep_last_epoch, train_features=self.train_features,
        )


@dataclasses.dataclass(frozen=True)
class BaselineRecipe(RecipeSettings):
    """The same head on a randomly initialised network (`trainer.baseline`), its own budget."""

    kind: ClassVar[str] = "baseline"

    def build(self, data: TransformedData) -> keras.Model:
        config = self.config
        return build_baseline_model(
            self.handle, data.num_classes, architecture=config.baseline.architecture,
            cnn_filters=config.baseline.cnn_filters, dropout=config.head.dropout,
            hidden_units=config.head.hidden_units, input_shape=data.image_shape, name="baseline",
            resize_to=config.baseline.input_size,
        )

    def fit(self, model: keras.Model, data: TransformedData, schedule: Schedule) -> dict[str, Any]:
        config = self.config
        return fit_baseline(
            model, data.train, data.eval, schedule=schedule, output_dir=self.output_dir,
            augment=augmentation_for(config, data), early_stopping_patience=config.early_stopping_patience,
            seed=config.seed, log_prefix=f"trainer [{self.name}] ", checkpoint_dir=checkpoint_dir_for(self.work_dir),
            keep_last_epoch=self.keep_last_epoch,
        )


def train_transfer(config: TrainerConfig, transformed_dir: str, output_dir: str, *, strategy: str, handle: str,
                   work_dir: Optional[str] = None, name: Optional[str] = None,
                   data: Optional[TransformedData] = None, extra: Optional[dict[str, Any]] = None,
                   keep_last_epoch: bool = False, train_features: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Train the transferred model with fit `strategy` on `handle` (hub handle, folder or preset); returns the summary.

    Checkpoints go to `<work_dir>/checkpoints` when given (a folder a rerun of the same work finds again),
    else into `output_dir`. For self-training's students: `name` labels the model when it differs from its fit
    `strategy`, `data` replaces the transform artifact's, `extra` joins the summary, `keep_last_epoch` and
    `train_features` are `two_phase_fit`'s.
    """
    unfreeze_for(strategy, config)  # an unknown strategy or a missing setting fails before any work
    name = name or strategy
    recipe = TransferRecipe(config, handle, output_dir, name, work_dir, keep_last_epoch, strategy=strategy,
                            train_features=train_features)
    return train_and_export(config, transformed_dir, output_dir, recipe, strategy=name, handle=handle,
                            data=data, extra=extra)


def train_baseline(config: TrainerConfig, transformed_dir: str, output_dir: str, *, handle: str,
                   strategy: str, work_dir: Optional[str] = None,
                   data: Optional[TransformedData] = None, extra: Optional[dict[str, Any]] = None,
                   keep_last_epoch: bool = False) -> dict[str, Any]:
    """Train the from-scratch baseline of `handle`'s transfer model; returns the summary. `data`, `extra` and
    `keep_last_epoch` as for `train_transfer` (self-training's from-scratch student)."""
    recipe = BaselineRecipe(config, handle, output_dir, strategy, work_dir, keep_last_epoch)
    return train_and_export(config, transformed_dir, output_dir, recipe, strategy=strategy, handle=handle,
                            data=data, extra=extra)
