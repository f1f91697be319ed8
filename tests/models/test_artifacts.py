"""Artifact writes are atomic, and a full disk is one clear error that leaves no temporary file behind."""

import errno
import json
import os

import keras
import numpy as np
import pytest

from tlpipe.models.plumbing import artifacts
from tlpipe.models._checkpoints import CheckpointStore, TrainingState
from tlpipe.models.plumbing.errors import NoSpaceError, TlpipeError

pytestmark = pytest.mark.quick


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_write_json_on_a_full_disk_names_the_folder_and_leaves_nothing(tmp_path, monkeypatch):
    artifacts.write_json(str(tmp_path / "state.json"), {"epoch": 1})
    monkeypatch.setattr(json, "dump", _full_disk)
    with pytest.raises(NoSpaceError, match=rf"no space left on device writing {tmp_path}: free space there"):
        artifacts.write_json(str(tmp_path / "state.json"), {"epoch": 2})
    assert os.listdir(tmp_path) == ["state.json"]  # the last complete file, no .tmp-* beside it
    assert artifacts.read_json(str(tmp_path / "state.json")) == {"epoch": 1}
    assert isinstance(NoSpaceError(str(tmp_path)), TlpipeError)  # the CLI prints it as one line


def test_an_artifact_folder_on_a_full_disk_is_not_left_half_written(tmp_path):
    with pytest.raises(NoSpaceError, match="no space left on device"):
        with artifacts.atomic_output_dir(str(tmp_path / "model")) as folder:
            (open(os.path.join(folder, "part"), "w")).close()
            _full_disk()
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_on_a_full_disk_keeps_the_last_complete_epoch(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    store = CheckpointStore(str(tmp_path))
    state = TrainingState(fingerprint={"run": 1}, epoch=1, best={"val_accuracy": 0.5})
    store.save_epoch(state, model, optimizer, "head", 1, improved=True)
    saved = sorted(os.listdir(tmp_path))

    def h5py_full(path, *args, **kwargs):  # h5py says it in words, without an errno
        open(path, "w").close()
        raise OSError("Unable to synchronously create file (file write failed: No space left on device)")

    monkeypatch.setattr(model, "save_weights", h5py_full)
    state.epoch = 2
    with pytest.raises(NoSpaceError, match=f"writing {tmp_path}"):
        store.save_epoch(state, model, optimizer, "head", 2, improved=True)
    assert sorted(os.listdir(tmp_path)) == saved  # no .tmp-* file, the epoch-1 files and state untouched
    assert store.load({"run": 1}).weights == "epoch-head-0001.weights.h5"
    assert np.isfinite(model.get_weights()[0]).all()
