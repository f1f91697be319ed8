"""The two-phase transfer fit, and the baseline fit, with one training loop.

Transfer (`two_phase_fit`):
1. "head": the base (`feature_extractor` layer) is frozen and only the head
   trains, at the head learning rate. A frozen base computes the same outputs
   every epoch, so when nothing augments the inputs its outputs are computed
   once and later epochs train a head-only model (sharing the head's layers)
   on them, instead of running the base forward every step.
2. "fine_tune" (when `unfreeze` is given, an `Unfreeze`): the base is
   unfrozen, all of it or its top N blocks or the variables matching a
   pattern (`HubFeatureVector.set_trainable`), the model is re-compiled with a
   fresh optimizer at the much lower fine-tuning learning rate, warmed up
   linearly and decayed along a cosine, and trained end to end. Batch norm in
   the base stays in inference mode unless the layer's training policy says
   otherwise.

Baseline (`fit_baseline`): one "baseline" phase, everything trainable, its own
learning rate with warm-up and cosine decay, and early stopping that may not
stop before the batch-norm statistics had time to settle.

The model says how it trains (models/task.py): its losses and metrics, what
each history entry adds, whether its head may train on cached features. A
`MultiTaskClassifier` (models/multi_task.py) brings the tasks' weighted
losses, an "accuracy" that is the weighted mean of the task accuracies, a
`tasks` entry per epoch with every task's loss and accuracy on train and
eval, and no feature cache (its head phase runs the frozen base every step).

Every phase stops early on the eval split's accuracy (ties broken by the eval
loss) after `early_stopping_patience` epochs without improvement (at least a
fifth of the phase's epochs), and the run
ends with the best weights it saw (the fine-tune phase must beat the head
phase's best to count). Checkpoints after each epoch let a restarted call with
the same `output_dir` continue where the last one stopped (`_checkpoints`).
TensorBoard scalars (x axis: optimizer steps over all phases) go to
`<output_dir>/logs/<phase>`, the history to
`<output_dir>/history.json`, progress lines to stderr.

Data: `train_data` and `eval_data` are *unbatched* tf.data.Datasets of
(inputs, label) pairs with integer labels; the fit shuffles (with `seed`;
all examples, or a window of `SHUFFLE_BUFFER_BYTES` of them over larger
sets, which should then come in no particular order: models/shuffle.py),
batches with the schedule's batch size
and prefetches. Models, optimizers and
datasets are created where the caller runs, so calling the fit inside a
`tf.distribute` strategy scope distributes it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tlpipe.models.plumbing.progress import Bar, log
from tlpipe.models._checkpoints import CheckpointStore, TrainingState, write_history
from tlpipe.models._classifier import (
    base_layer, caches_features, compile_objective, feature_model, head_model, history_extras,
)
from tlpipe.models._tensorboard import ScalarLog
from tlpipe.models.hyperrule import Schedule
from tlpipe.models.regularization import Regularization
from tlpipe.models.regularizers import PENALTY_METRIC, PretrainedReference, RegularizedModel
from tlpipe.models.shuffle import SHUFFLE_BUFFER_BYTES, shuffle_buffer_size
from tlpipe.models.plumbing.layout import CHECKPOINT_DIR, LOG_DIR
from tlpipe.models.plumbing.errors import ConfigError, DataError, ModelError

HEAD = "head"
FINE_TUNE = "fine_tune"
BASELINE = "baseline"

PATIENCE_FRACTION = 0.2
_SCALARS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")

Augment = Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class Unfreeze:
    """What of the base trains in the fine-tune phase: all of it (neither field set), its top `top_n`
    blocks, or the variables whose path matches the regular expression `pattern` (the last two need a
    HubFeatureVector base). The trainer maps its strategies onto this; the fit knows no strategy names."""

    top_n: Optional[int] = None
    pattern: Optional[str] = None


UNFREEZE_ALL = Unfreeze()


@dataclasses.dataclass(frozen=True)
class _Phase:
    """One fit of the model: what trains, how long, at which learning rate."""

    name: str
    epochs: int
    min_epochs: int
    learning_rate: float
    warmup_steps: int
    cosine_decay: bool
    prepare: Callable[[], list[str]]  # sets what trains; returns the names of the base's variables that train
    cache_features: bool = False


def two_phase_fit(
    model: keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    *,
    unfreeze: Optional[Unfreeze],
    schedule: Schedule,
    output_dir: str,
    name: str = "transfer",
    augment: Optional[Augment] = None,
    cache_frozen_features: bool = True,
    early_stopping_patience: int = 5,
    seed: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint_dir: Optional[str] = None,
    log_prefix: str = "",
    regularization: Optional[Regularization] = None,
    keep_last_epoch: bool = False,
    train_features: Optional[np.ndarray] = None,
) -> dict[str, Any]:
    """Train a transfer model: the head on the frozen base, then, when `unfreeze` is given, the part of the
    base it names with the head at the fine-tuning rate (`unfreeze=None`: the head phase only).

    `name` labels the fit in its history and checkpoints (the trainer passes
    its strategy's name). `augment` maps a batch of inputs to augmented
    inputs during training (it disables the feature cache). `callbacks` run
    after tlpipe's own at the end of every epoch. Checkpoints go to
    `checkpoint_dir` (default `<output_dir>/checkpoints`). Returns the history (also in
    `<output_dir>/history.json`): per-epoch entries {phase, epoch, step, loss,
    accuracy, val_loss, val_accuracy, learning_rate, seconds}, the best epoch,
    and per-phase summaries. `regularization` (L2-SP or BSS) adds its penalty
    to the loss of the phases it can influence; their entries then also carry
    `penalty` (the loss includes it). `keep_last_epoch` trains every planned
    epoch and keeps the last weights instead of the best eval epoch's (no early
    stopping): for a student of thousands of pseudo-labels, whose few labelled
    eval examples cannot rank epochs that differ by one image.
    `train_features`, the frozen base's outputs for `train_data` in its order,
    spare the cached head phase from running the base over the training data
    when the caller computed them already (self-training's frozen teacher).
    """
    if unfreeze is not None and not isinstance(unfreeze, Unfreeze):
        raise ConfigError("unfreeze", unfreeze, "None (the head phase only) or an Unfreeze")
    base = base_layer(model)
    phases = [_Phase(
        name=HEAD, epochs=schedule.head_epochs, min_epochs=1, learning_rate=schedule.head_learning_rate,
        warmup_steps=0, cosine_decay=False, prepare=lambda: _set_base_trainable(base, False),
        cache_features=cache_frozen_features and augment is None and caches_features(model),
    )]
    if unfreeze is not None:
        selection = {"top_n": unfreeze.top_n, "pattern": unfreeze.pattern}
        phases.append(_Phase(
            name=FINE_TUNE, epochs=schedule.fine_tune_epochs, min_epochs=schedule.fine_tune_min_epochs,
            learning_rate=schedule.fine_tune_learning_rate, warmup_steps=schedule.fine_tune_warmup_steps,
            cosine_decay=True, prepare=lambda: _set_base_trainable(base, True, **selection),
        ))
    fingerprint = {
        "kind": "transfer", "strategy": name, "schedule": schedule.to_dict(),
        "unfreeze": dataclasses.asdict(unfreeze) if unfreeze else None,
        "augment": augment is not None, "seed": seed, **({"keep_last_epoch": True} if keep_last_epoch else {}),
    }
    if regularization is not None and regularization.active:
        regularization.validate()
        fingerprint["regularization"] = regularization.to_dict()
    return _TrainingRun(
        model, phases, train_data, eval_data, name=name, schedule=schedule, output_dir=output_dir,
        augment=augment, patience=early_stopping_patience, seed=seed, callbacks=callbacks, log_prefix=log_prefix,
        checkpoint_dir=checkpoint_dir, regularization=regularization, keep_last_epoch=keep_last_epoch,
        train_features=train_features,
    ).run(fingerprint)


def fit_baseline(
    model: keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    *,
    schedule: Schedule,
    output_dir: str,
    augment: Optional[Augment] = None,
    early_stopping_patience: int = 5,
    seed: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint_dir: Optional[str] = None,
    log_prefix: str = "",
    keep_last_epoch: bool = False,
) -> dict[str, Any]:
    """Train a from-scratch model end to end with the schedule's baseline budget; same history as `two_phase_fit`
    (`keep_last_epoch` as there)."""

    def make_all_trainable() -> list[str]:
        model.trainable = True
        return [variable.path for variable in base_layer(model).trainable_variables]

    phase = _Phase(
        name=BASELINE, epochs=schedule.baseline_epochs, min_epochs=schedule.baseline_min_epochs,
        learning_rate=schedule.baseline_learning_rate, warmup_steps=schedule.baseline_warmup_steps,
        cosine_decay=True, prepare=make_all_trainable,
    )
    fingerprint = {"kind": "baseline", "schedule": schedule.to_dict(), "augment": augment is not None, "seed": seed,
                   **({"keep_last_epoch": True} if keep_last_epoch else {})}
    return _TrainingRun(
        model, [phase], train_data, eval_data, name=BASELINE, schedule=schedule, output_dir=output_dir,
        augment=augment, patience=early_stopping_patience, seed=seed, callbacks=callbacks, log_prefix=log_prefix,
        checkpoint_dir=checkpoint_dir, keep_last_epoch=keep_last_epoch,
    ).run(fingerprint)


def _set_base_trainable(base: keras.layers.Layer, trainable: bool, *, top_n: Optional[int] = None,
                        pattern: Optional[str] = None) -> list[str]:
    """Freeze or unfreeze the base; returns the names of its variables that now train."""
    if hasattr(base, "set_trainable"):
        return base.set_trainable(trainable, top_n=top_n, pattern=pattern)
    if top_n is not None or pattern is not None:
        raise ModelError(
            f"unfreezing part of the base (top_n={top_n!r}, pattern={pattern!r}) needs a HubFeatureVector base; "
            f"the '{base.name}' layer is a {type(base).__name__}: unfreeze all of it"
        )
    base.trainable = trainable
    return [variable.path for variable in base.trainable_variables]


class _TrainingRun:
    """Runs the phases of one fit in order, resuming from the checkpoints in `output_dir`."""

    def __init__(self, model: keras.Model, phases: list[_Phase], train_data: tf.data.Dataset,
                 eval_data: tf.data.Dataset, *, name: str, schedule: Schedule, output_dir: str,
                 augment: Optional[Augment],
                 patience: int, seed: int, callbacks: Sequence[keras.callbacks.Callback], log_prefix: str,
                 checkpoint_dir: Optional[str] = None, regularization: Optional[Regularization] = None,
                 keep_last_epoch: bool = False, train_features: Optional[np.ndarray] = None):
        if patience < 1:
            raise ConfigError("early_stopping_patience", patience, "an integer >= 1")
        self.model = model
        self.phases = phases
        self.train_data = train_data
        self.eval_data = eval_data
        self.name = name  # the fit's label in its history ("strategy") and checkpoints
        self.schedule = schedule
        self.output_dir = output_dir
        self.augment = augment
        self.patience = patience
        self.keep_last_epoch = keep_last_epoch
        self.train_features = train_features
        # Sized on the decoded inputs, and the same for cached features: both see the same order.
        self.shuffle_buffer = shuffle_buffer_size(schedule.num_train_examples, train_data.element_spec)
        self.seed = seed
        self.callbacks = list(callbacks)
        self.log_prefix = log_prefix
        self.store = CheckpointStore(checkpoint_dir or os.path.join(output_dir, CHECKPOINT_DIR))
        self.regularization = regularization if regularization is not None and regularization.active else None
        # The base's weights before any phase trains them: what L2-SP pulls towards (also after a resume).
        self.reference = PretrainedReference(model) if self.regularization is not None else None

    def patience_for(self, phase: _Phase) -> int:
        """Epochs without improvement before `phase` stops: the configured patience, but at least
        `PATIENCE_FRACTION` of the phase, so that long phases of short epochs (few labels) are not cut off
        by noise on a tiny eval split while their batch-norm statistics are still settling."""
        return max(self.patience, math.ceil(PATIENCE_FRACTION * phase.epochs))

    def run(self, fingerprint: dict[str, Any]) -> dict[str, Any]:
        state = self.store.load(fingerprint)
        if state.done:
            log(f"{self.log_prefix}training already complete in {self.store.directory}; restoring its best weights")
        elif state.entries:
            # A kill after the last phase but before `done` was written leaves nothing to train.
            phase = self.phases[state.phase_index].name if state.phase_index < len(self.phases) else "end"
            log(f"{self.log_prefix}resuming from {self.store.directory}: phase {phase}, "
                f"{state.epoch} epoch(s) done, step {state.step}")
            state.resumed_from.append({"phase": phase, "epoch": state.epoch, "step": state.step})
        if self.shuffle_buffer < self.schedule.num_train_examples:
            log(f"{self.log_prefix}{self.schedule.num_train_examples} training examples exceed the shuffle buffer "
                f"({SHUFFLE_BUFFER_BYTES / 2**30:.2f} GiB): each epoch shuffles them within a window of "
                f"{self.shuffle_buffer} as they are read")
        restore_latest = state.weights is not None
        for index, phase in enumerate(self.phases):
            if index < state.phase_index:
                continue
            self._run_phase(phase, state, restore_latest)
            restore_latest = False
            state.best["weights"] = self.store.whole(self.model, state.best["weights"])
            state.phase_index, state.epoch, state.wait, state.stopped_early = index + 1, 0, 0, False
            state.weights, state.optimizer = state.best["weights"], None
            self.store.write(state)
        if restore_latest:  # the run was already complete: hand back its best model
            self.store.restore_weights(self.model, state.best["weights"])
        state.done = True
        self.store.write(state)
        return self.write_history(state)

    def _run_phase(self, phase: _Phase, state: TrainingState, restore_latest: bool) -> None:
        trainable = phase.prepare()
        summary = state.phases.setdefault(phase.name, {
            "epochs_planned": phase.epochs, "epochs_run": 0, "stopped_early": False, "seconds": 0.0,
        })
        summary["trainable_base_variables"] = trainable
        summary["cached_features"] = phase.cache_features
        started = time.monotonic()
        if phase.cache_features:
            fit_model = head_model(self.model)
            train, evaluation = self._cached_datasets(state.epoch)
        else:
            fit_model = self.model
            train, evaluation = self._datasets(state.epoch)
        if self.regularization is not None and self.regularization.applies(base_trains=bool(trainable)):
            fit_model = RegularizedModel(self.model, self.regularization, self.reference,
                                         features_cached=phase.cache_features)
            summary["regularization"] = self.regularization.to_dict()
        log(f"{self.log_prefix}phase {phase.name}: {len(fit_model.trainable_variables)} trainable variables, "
            f"{phase.epochs} epoch(s) of {self.schedule.steps_per_epoch} step(s), learning rate {phase.learning_rate:g}"
            + (", frozen base's features computed once" if phase.cache_features else ""))
        optimizer = keras.optimizers.Adam(learning_rate=self._learning_rate(phase))
        # No XLA: hub modules may hold ops XLA cannot compile (strings, TF1 graphs).
        fit_model.compile(optimizer=optimizer, **compile_objective(self.model), jit_compile=False)
        optimizer.build(fit_model.trainable_variables)
        if restore_latest:
            self.store.restore_weights(self.model, state.weights)
            if state.optimizer is not None:
                self.store.restore_optimizer(optimizer, state.optimizer)
            self.store.restore_random_states(self.model, state.random_states)
        if state.epoch < phase.epochs and not state.stopped_early:
            tensorboard = ScalarLog(os.path.join(self.output_dir, LOG_DIR, phase.name))
            try:
                fit_model.fit(
                    train, validation_data=evaluation, initial_epoch=state.epoch, epochs=phase.epochs,
                    steps_per_epoch=self.schedule.steps_per_epoch,
                    callbacks=[_EpochTracker(self, phase, state, optimizer, tensorboard), *self.callbacks],
                    shuffle=False, verbose=0,  # the datasets shuffle themselves, with the seed
                )
            finally:
                tensorboard.close()
        summary["seconds"] += time.monotonic() - started
        if state.best is None:
            raise ModelError(f"phase {phase.name} ended without a single evaluated epoch")
        self.store.restore_weights(self.model, state.best["weights"])

    def _learning_rate(self, phase: _Phase) -> float | keras.optimizers.schedules.LearningRateSchedule:
        if not phase.cosine_decay:
            return phase.learning_rate
        total = phase.epochs * self.schedule.steps_per_epoch
        warmup = min(phase.warmup_steps, total - 1)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else phase.learning_rate,
            decay_steps=max(1, total - warmup),
            warmup_target=phase.learning_rate if warmup else None,
            warmup_steps=warmup,
        )

    def _batched(self, train: tf.data.Dataset, evaluation: tf.data.Dataset, augment: Optional[Augment],
                 start_epoch: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """Shuffle (same order for raw and cached data: same seed, same size), batch, augment, prefetch.

        The training data is one stream over all epochs (Keras keeps its iterator when `steps_per_epoch`
        is given), so epoch e always sees the e-th shuffle of the seed: a fit resumed at `start_epoch`
        skips the batches of the epochs already done and sees the same batches as an uninterrupted one.
        """
        batch = self.schedule.batch_size
        train = train.shuffle(self.shuffle_buffer, seed=self.seed, reshuffle_each_iteration=True)
        train = train.batch(batch).repeat()
        if start_epoch:
            train = train.skip(start_epoch * self.schedule.steps_per_epoch)
        if augment is not None:
            train = train.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        return train.prefetch(tf.data.AUTOTUNE), evaluation.batch(batch).prefetch(tf.data.AUTOTUNE)

    def _datasets(self, start_epoch: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        return self._batched(self.train_data, self.eval_data, self.augment, start_epoch)

    def _cached_datasets(self, start_epoch: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """The frozen base's outputs for train and eval, computed once (or given for train), as (features,
        label) datasets."""
        extractor = feature_model(self.model)
        cached = []
        for name, data, given in (("train", self.train_data, self.train_features), ("eval", self.eval_data, None)):
            label_batches = list(data.map(lambda x, y: y).batch(4096).as_numpy_iterator())
            if not label_batches:
                raise DataError(f"the {name} data is empty: no examples to train or evaluate on")
            labels = np.concatenate(label_batches)
            if given is not None and len(given) != len(labels):
                raise ModelError(f"{len(given)} precomputed train features for {len(labels)} training examples")
            features = given if given is not None else extractor.predict(
                data.map(lambda x, y: x).batch(self.schedule.batch_size), verbose=0)
            cached.append(tf.data.Dataset.from_tensor_slices((features, labels)))
        return self._batched(cached[0], cached[1], None, start_epoch)

    def write_history(self, state: TrainingState) -> dict[str, Any]:
        """Write `<output_dir>/history.json` from `state` and return its content."""
        return write_history(self.output_dir, self.name, state, schedule=self.schedule.to_dict())


class _EpochTracker(keras.callbacks.Callback):
    """Per epoch: history entry, early stopping, checkpoint, TensorBoard scalars, history file, progress line."""

    def __init__(self, run: _TrainingRun, phase: _Phase, state: TrainingState,
                 optimizer: keras.optimizers.Optimizer, tensorboard: ScalarLog):
        super().__init__()
        self.run = run
        self.phase = phase
        self.state = state
        self.optimizer = optimizer
        self.tensorboard = tensorboard
        self._steps = 0
        self._started = 0.0
        self._epoch = 0
        self.bar = Bar(f"{run.log_prefix}{phase.name}".strip(), phase.epochs, run.schedule.steps_per_epoch)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._steps = 0
        self._started = time.monotonic()
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self._steps += 1
        if self.bar.due():
            accuracy = (logs or {}).get("accuracy")
            self.bar.update(self._epoch, self._steps, self.state.step + self._steps,
                            None if accuracy is None else float(accuracy))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs if logs is not None else {}
        if "val_accuracy" not in logs:
            raise DataError("the eval data produced no batches: early stopping and checkpoints need an eval split")
        state, phase = self.state, self.phase
        learning_rate = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        state.step += self._steps
        state.epoch = epoch + 1
        entry = {
            "phase": phase.name, "epoch": state.epoch, "step": state.step,
            **{key: float(logs[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")},
            "learning_rate": learning_rate, "seconds": round(time.monotonic() - self._started, 3),
        }
        if PENALTY_METRIC in logs:
            entry[PENALTY_METRIC] = float(logs[PENALTY_METRIC])
        entry.update(history_extras(self.run.model, logs))
        state.entries.append(entry)
        improved = self.run.keep_last_epoch or state.best is None or (entry["val_accuracy"], -entry["val_loss"]) > (
            state.best["val_accuracy"], -state.best["val_loss"])
        if improved:
            state.best = {key: entry[key] for key in ("phase", "epoch", "step", "val_accuracy", "val_loss")}
            state.wait = 0
        else:
            state.wait += 1
        summary = state.phases[phase.name]
        summary["epochs_run"] = state.epoch
        if state.wait >= self.run.patience_for(phase) and state.epoch >= phase.min_epochs and state.epoch < phase.epochs:
            state.stopped_early = summary["stopped_early"] = True
            self.model.stop_training = True
        self.run.store.save_epoch(state, self.run.model, self.optimizer, phase.name, state.epoch, improved=improved,
                                  head_only=phase.cache_features)
        scalars = {key: entry[key] for key in _SCALARS}
        for task, values in entry.get("tasks", {}).items():
            scalars.update({f"{task}/{key}": value for key, value in values.items()})
        self.tensorboard.write(state.step, scalars)
        self.run.write_history(state)
        log(f"{self.run.log_prefix}{phase.name} epoch {state.epoch}/{phase.epochs} step {state.step}: "
            f"loss {entry['loss']:.4f} accuracy {entry['accuracy']:.4f} val_loss {entry['val_loss']:.4f} "
            f"val_accuracy {entry['val_accuracy']:.4f} lr {learning_rate:.3g}"
            + "".join(f" {task} val_accuracy {values['val_accuracy']:.4f}"
                      for task, values in entry.get("tasks", {}).items())
            + (" (best)" if improved else "") + (", stopping early" if state.stopped_early else ""))
        if state.stopped_early or state.epoch >= phase.epochs:
            self.bar.finish(state.epoch, state.step, entry["accuracy"], entry["val_accuracy"],
                            "stopped early" if state.stopped_early else "")
        else:
            self.bar.epoch_end(state.epoch, state.step, entry["accuracy"], entry["val_accuracy"])
