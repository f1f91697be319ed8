"""Checkpoints that a restarted fit resumes from.

After every epoch the fit loop saves the model's weights, the optimizer's
state (moments and step count, so learning-rate schedules continue where they
were), the random generators' states (dropout masks continue as they would
have) and a small JSON state: which phase, how many epochs of it are done, the
optimizer steps so far, the early-stopping counters, the best epoch and the
history. The state names the files it belongs to and is replaced atomically
after they are written, so a run killed at any moment resumes from the last
complete epoch; files no state refers to are deleted.

The state also records what run it belongs to (strategy, schedule, ...): a
different run in the same folder is refused instead of silently mixing.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Optional, Sequence, Union

import keras
import numpy as np

from tlpipe.models._classifier import head_model
from tlpipe.models.plumbing.artifacts import read_json, write_atomically, write_json
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.plumbing.layout import HISTORY_FILE

STATE_FILE = "state.json"
# Weight files of the head alone (the base frozen and unchanged since it was built).
HEAD_ONLY_PREFIX = "head-"
WEIGHTS_SUFFIX = ".weights.h5"  # Keras' save_weights needs it


Optimizers = Union[keras.optimizers.Optimizer, Sequence[keras.optimizers.Optimizer]]


def _prefixed(optimizer: Optimizers) -> list[tuple[str, keras.optimizers.Optimizer]]:
    """(key prefix, optimizer) pairs: no prefix for a single optimizer (the file format of one), `<i>/` for each
    of a list."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return [("", optimizer)]
    return [(f"{index}/", one) for index, one in enumerate(optimizer)]


@dataclasses.dataclass
class TrainingState:
    """Where a fit stands; everything needed to continue it."""

    fingerprint: dict[str, Any]
    phase_index: int = 0
    epoch: int = 0
    step: int = 0
    wait: int = 0
    stopped_early: bool = False
    weights: Optional[str] = None
    optimizer: Optional[str] = None
    best: Optional[dict[str, Any]] = None
    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    phases: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    done: bool = False
    random_states: Optional[list[list[int]]] = None
    resumed_from: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def random_state_variables(model: keras.Model) -> list[keras.Variable]:
    """The states of the model's seed generators, in a stable order.

    Keras' weight files leave them out; without them a resumed fit would draw
    other dropout masks than an uninterrupted one and end elsewhere.
    """
    return [v for v in model.variables if v.path.rsplit("/", 1)[-1] == "seed_generator_state"]


class CheckpointStore:
    """The checkpoint folder of one fit: weights, optimizer states and the state file."""

    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @property
    def state_path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    def load(self, fingerprint: dict[str, Any]) -> TrainingState:
        """The saved state of this run, or a fresh one; a state of another run is an error."""
        if not os.path.isfile(self.state_path):
            return TrainingState(fingerprint=fingerprint)
        state = TrainingState(**read_json(self.state_path))
        if state.fingerprint != fingerprint:
            differing = sorted(
                key for key in set(state.fingerprint) | set(fingerprint)
                if state.fingerprint.get(key) != fingerprint.get(key)
            )
            details = "; ".join(
                f"{key}: saved {state.fingerprint.get(key)!r}, now {fingerprint.get(key)!r}" for key in differing
            )
            raise ModelError(
                f"{self.directory} holds checkpoints of a different training run ({details}); "
                "use another output folder, or delete that checkpoints folder to start over"
            )
        return state

    def save_epoch(self, state: TrainingState, model: keras.Model, optimizer: Optimizers,
                   phase: str, epoch: int, *, improved: bool, head_only: bool = False) -> None:
        """Save the weights (and, if `improved`, the new best weights) and the optimizer(s) after an epoch.

        `optimizer`: one optimizer, or a list of them (a loop that trains two variable groups at two rates,
        as DANN). `head_only`: save the head's weights alone (the base is frozen and as it was built). Call
        after updating `state` for the epoch; the state file is written last, then unreferenced files are
        removed.
        """
        stem = f"{phase}-{epoch:04d}"
        weights_of, prefix = (head_model(model), HEAD_ONLY_PREFIX) if head_only else (model, "")
        state.weights = self._save_weights(weights_of, f"{prefix}epoch-{stem}")
        if improved:
            state.best["weights"] = self._save_weights(weights_of, f"{prefix}best-{stem}")
        state.random_states = [np.asarray(v.numpy()).tolist() for v in random_state_variables(model)]
        state.optimizer = f"optimizer-{stem}.npz"
        store: dict[str, np.ndarray] = {}
        for prefix, one in _prefixed(optimizer):
            own: dict[str, np.ndarray] = {}
            one.save_own_variables(own)
            store.update({prefix + key: value for key, value in own.items()})
        self._atomic(state.optimizer, lambda path: np.savez(path, **store), suffix=".npz")
        self.write(state)

    def write(self, state: TrainingState) -> None:
        """Replace the state file, then delete weight/optimizer files it no longer names."""
        write_json(self.state_path, dataclasses.asdict(state))
        keep = {STATE_FILE, state.weights, state.optimizer, (state.best or {}).get("weights")}
        for name in os.listdir(self.directory):
            if name not in keep and not name.startswith("."):
                os.remove(os.path.join(self.directory, name))

    def whole(self, model: keras.Model, name: str) -> str:
        """`name` if it holds the whole model; else save `model` (which holds those weights) whole, return its file.

        At the end of a head-only phase: a later phase trains the base, and its
        best must bring back the base of this phase's best, not just the head.
        """
        if not name.startswith(HEAD_ONLY_PREFIX):
            return name
        return self._save_weights(model, name[len(HEAD_ONLY_PREFIX):].removesuffix(WEIGHTS_SUFFIX))

    def restore_weights(self, model: keras.Model, name: str) -> None:
        """Load saved weights into `model` (into its head alone for a head-only file).

        Keras' weight files also carry the state of the optimizer the model was
        compiled with, and loading warns when that optimizer differs (another
        phase, or the head-only model trained the head); the optimizer state
        that matters is restored by `restore_optimizer`, so the warning is noise.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            target = head_model(model) if name.startswith(HEAD_ONLY_PREFIX) else model
            target.load_weights(os.path.join(self.directory, name))

    def restore_random_states(self, model: keras.Model, states: Optional[list[list[int]]]) -> None:
        """Put the random generators (dropout, augmentation) back where the saved epoch left them."""
        variables = random_state_variables(model)
        if states is None or len(states) != len(variables):
            return
        for variable, value in zip(variables, states):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def restore_optimizer(self, optimizer: Optimizers, name: str) -> None:
        """Load a saved optimizer state into `optimizer` (or each of a list), already built for the same
        variables."""
        with np.load(os.path.join(self.directory, name)) as saved:
            store = {key: saved[key] for key in saved.files}
        expected = sum(len(one.variables) for _, one in _prefixed(optimizer))
        if len(store) != expected:
            raise ModelError(
                f"checkpoint {name} in {self.directory} holds {len(store)} optimizer variables but this run's "
                f"optimizer has {expected}: the model changed since it was saved; "
                "delete the checkpoints folder to start over"
            )
        for prefix, one in _prefixed(optimizer):
            one.load_own_variables({key[len(prefix):]: value for key, value in store.items() if key.startswith(prefix)})

    def _save_weights(self, model: keras.Model, stem: str) -> str:
        name = f"{stem}{WEIGHTS_SUFFIX}"
        self._atomic(name, model.save_weights, suffix=WEIGHTS_SUFFIX)
        return name

    def _atomic(self, name: str, save: Any, *, suffix: str) -> None:
        """Write through `save(path)` to a hidden temporary file (keeping the suffix the writer needs), then
        rename it to `name` (`write_atomically`: a full disk keeps the last complete epoch)."""
        tmp = os.path.join(self.directory, f".tmp-{name[:-len(suffix)]}{suffix}")
        write_atomically(os.path.join(self.directory, name), save, tmp)


def write_history(output_dir: str, name: str, state: TrainingState, **extra: Any) -> dict[str, Any]:
    """Write `<output_dir>/history.json` from `state` and return it: the one history format of every training
    loop (the two-phase fit, the baseline's, DANN's), with the loop's `extra` entries after its name."""
    history = {
        "strategy": name,
        **extra,
        "entries": state.entries,
        "best": {key: value for key, value in (state.best or {}).items() if key != "weights"},
        "phases": state.phases,
        "total_steps": state.step,
        "complete": state.done,
        "resumed_from": state.resumed_from,
    }
    write_json(os.path.join(output_dir, HISTORY_FILE), history)
    return history
