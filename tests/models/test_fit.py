"""The two-phase fit and the baseline fit on tiny hub modules (see conftest.py)."""

from __future__ import annotations

import glob
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.builders import build_baseline_model, build_transfer_model
from tlpipe.models import shuffle
from tlpipe.models.fit import UNFREEZE_ALL, Unfreeze, fit_baseline, two_phase_fit
from tlpipe.models.hub_layer import variable_path
from tlpipe.models.hyperrule import make_schedule
from tlpipe.models.plumbing.errors import ConfigError, ModelError

pytestmark = pytest.mark.quick

SCHEDULE = make_schedule(24, 3, batch_size=8, head_epochs=2, fine_tune_epochs=2, head_learning_rate=0.1,
                         fine_tune_learning_rate=0.01, warmup_fraction=0.0, baseline_epochs=2)


@pytest.fixture(scope="module")
def learnable(tiny_images):
    """The tiny images with their class in the colour: every epoch of training fits them better."""
    images, labels = tiny_images
    return 0.5 * images + 0.5 * np.eye(3, dtype="float32")[labels][:, None, None, :], labels


@pytest.fixture(scope="module")
def datasets(learnable):
    images, labels = learnable
    return (tf.data.Dataset.from_tensor_slices((images, labels)),
            tf.data.Dataset.from_tensor_slices((images[::2], labels[::2])))


def transfer_model(handle: str, *, seed: int = 0, dropout: float = 0.0, **kwargs) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_transfer_model(handle, 3, dropout=dropout, **kwargs)


def module_values(model: keras.Model) -> dict[str, np.ndarray]:
    """The hub module's own variables (what its restored functions compute with), by path."""
    return {variable_path(v): v.numpy() for v in model.get_layer("feature_extractor").module.variables}


def changed(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> set[str]:
    return {path for path in before if not np.array_equal(before[path], after[path])}


def head_values(model: keras.Model) -> list[np.ndarray]:
    return [w.numpy() for w in model.get_layer("classifier").weights]


class _ModuleSnapshots(keras.callbacks.Callback):
    """The module's variables after every epoch, as training left them (before any best-weights restore)."""

    def __init__(self, model: keras.Model):
        super().__init__()
        self.transfer_model = model
        self.values: list[dict[str, np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(module_values(self.transfer_model))


def test_feature_extraction_trains_the_head_and_leaves_the_module_bit_identical(keras_hub_module, datasets, tmp_path):
    model = transfer_model(keras_hub_module)
    module_before, head_before = module_values(model), head_values(model)
    snapshots = _ModuleSnapshots(model)
    history = two_phase_fit(model, *datasets, unfreeze=None, schedule=SCHEDULE,
                            output_dir=str(tmp_path), callbacks=[snapshots])

    assert len(snapshots.values) == 2
    for values in [*snapshots.values, module_values(model)]:
        assert changed(module_before, values) == set()
    assert not any(np.array_equal(a, b) for a, b in zip(head_before, head_values(model)))
    assert [(e["phase"], e["epoch"], e["step"]) for e in history["entries"]] == [("head", 1, 3), ("head", 2, 6)]
    assert set(history["entries"][0]) == {"phase", "epoch", "step", "loss", "accuracy", "val_loss",
                                          "val_accuracy", "learning_rate", "seconds"}
    assert history["entries"][0]["learning_rate"] == pytest.approx(0.1)
    assert history["phases"]["head"]["cached_features"] is True
    assert history["complete"] and history["total_steps"] == 6
    with open(tmp_path / "history.json") as handle:
        assert json.load(handle) == json.loads(json.dumps(history))


def test_tensorboard_scalars_are_written_per_phase_against_steps(keras_hub_module, datasets, tmp_path):
    two_phase_fit(transfer_model(keras_hub_module), *datasets, unfreeze=UNFREEZE_ALL, schedule=SCHEDULE,
                  output_dir=str(tmp_path))
    scalars = {}
    for phase in ("head", "fine_tune"):
        for path in glob.glob(str(tmp_path / "logs" / phase / "events.out.tfevents.*")):
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    assert value.metadata.plugin_data.plugin_name == "scalars"
                    scalars.setdefault((phase, value.tag), []).append(event.step)
    assert scalars[("head", "val_accuracy")] == [3, 6]
    assert scalars[("fine_tune", "learning_rate")] == [9, 12]
    assert {tag for _, tag in scalars} == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}


def test_fine_tune_all_changes_the_module_but_not_its_batch_norm_statistics(keras_hub_module, datasets, tmp_path):
    model = transfer_model(keras_hub_module)
    before = module_values(model)
    snapshots = _ModuleSnapshots(model)
    history = two_phase_fit(model, *datasets, unfreeze=UNFREEZE_ALL, schedule=SCHEDULE, output_dir=str(tmp_path),
                            callbacks=[snapshots])

    assert changed(before, snapshots.values[1]) == set()  # end of the head phase
    moved = changed(before, snapshots.values[-1])
    statistics = {path for path in before if "moving_" in path}
    assert statistics and not moved & statistics  # inference-mode policy: batch norm left alone
    assert {"conv1/kernel", "conv2/kernel"} <= moved
    assert [e["phase"] for e in history["entries"]] == ["head", "head", "fine_tune", "fine_tune"]
    assert [e["step"] for e in history["entries"]] == [3, 6, 9, 12]
    assert all(e["learning_rate"] < 0.01 for e in history["entries"][2:])  # cosine decay from 0.01
    module = model.get_layer("feature_extractor").module
    assert len(history["phases"]["fine_tune"]["trainable_base_variables"]) == len(module.trainable_variables)


def test_training_policy_updates_batch_norm_statistics_while_fine_tuning(keras_hub_module, datasets, tmp_path):
    """The control for the test above: with the 'training' policy the statistics do move."""
    model = transfer_model(keras_hub_module, training_policy="training")
    before = module_values(model)
    snapshots = _ModuleSnapshots(model)
    two_phase_fit(model, *datasets, unfreeze=UNFREEZE_ALL, schedule=SCHEDULE, output_dir=str(tmp_path),
                  callbacks=[snapshots])
    assert changed(before, snapshots.values[1]) == set()  # a frozen base runs in inference mode
    assert any("moving_" in path for path in changed(before, snapshots.values[-1]))


@pytest.mark.parametrize("selection", [{"top_n": 1}, {"pattern": "^conv1/"}])
def test_fine_tune_top_touches_only_the_selected_variables(keras_hub_module, datasets, tmp_path, selection):
    model = transfer_model(keras_hub_module)
    layer = model.get_layer("feature_extractor")
    expected = set(layer.set_trainable(True, **selection))
    layer.set_trainable(False)
    before = module_values(model)
    snapshots = _ModuleSnapshots(model)
    history = two_phase_fit(model, *datasets, unfreeze=Unfreeze(**selection), schedule=SCHEDULE,
                            output_dir=str(tmp_path), callbacks=[snapshots])

    assert expected and len(expected) < len(before)
    assert changed(before, snapshots.values[-1]) == expected
    assert set(history["phases"]["fine_tune"]["trainable_base_variables"]) == expected


@pytest.mark.parametrize("window", [False, True])
def test_cached_head_phase_reaches_the_same_head_as_the_uncached_one(keras_hub_module, datasets, tmp_path,
                                                                     monkeypatch, window):
    if window:  # the shuffle holds 5 of the 24 examples: raw and cached data still see the same order
        image, label = datasets[0].element_spec
        monkeypatch.setattr(shuffle, "SHUFFLE_BUFFER_BYTES",
                            5 * (image.shape.num_elements() * image.dtype.size + label.dtype.size))
        assert shuffle.shuffle_buffer_size(24, datasets[0].element_spec) == 5
    results = []
    for cache in (True, False):
        model = transfer_model(keras_hub_module, dropout=0.3, hidden_units=[6])
        history = two_phase_fit(model, *datasets, unfreeze=None, schedule=SCHEDULE, seed=7,
                                output_dir=str(tmp_path / str(cache)), cache_frozen_features=cache)
        assert history["phases"]["head"]["cached_features"] is cache
        head = [w.numpy() for name in ("head_dense_1", "classifier") for w in model.get_layer(name).weights]
        results.append((head, [e["val_loss"] for e in history["entries"]]))
    (cached_head, cached_losses), (plain_head, plain_losses) = results
    for cached, plain in zip(cached_head, plain_head):
        np.testing.assert_allclose(cached, plain, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cached_losses, plain_losses, rtol=1e-4)


def test_augmentation_disables_the_feature_cache(keras_hub_module, datasets, tmp_path):
    calls = []

    def augment(images):
        calls.append(1)
        return tf.image.flip_left_right(images)

    history = two_phase_fit(transfer_model(keras_hub_module), *datasets, unfreeze=None,
                            schedule=SCHEDULE, output_dir=str(tmp_path), augment=augment)
    assert history["phases"]["head"]["cached_features"] is False
    assert calls  # traced into the training input pipeline


class _CountEpochs(keras.callbacks.Callback):
    """Counts the epochs trained; with `crash_after`, simulates a run killed after that many."""

    def __init__(self, crash_after: int | None = None):
        super().__init__()
        self.epochs = 0
        self.crash_after = crash_after

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        if self.epochs == self.crash_after:
            raise RuntimeError("killed")


def test_a_restarted_run_resumes_from_its_checkpoints(keras_hub_module, datasets, tmp_path):
    schedule = make_schedule(24, 3, batch_size=8, head_epochs=2, fine_tune_epochs=3, warmup_fraction=0.0)
    kwargs = dict(unfreeze=UNFREEZE_ALL, schedule=schedule, output_dir=str(tmp_path), early_stopping_patience=10)
    with pytest.raises(RuntimeError, match="killed"):
        # killed after the first fine-tuning epoch (tlpipe's callback checkpointed it before this one runs)
        two_phase_fit(transfer_model(keras_hub_module), *datasets, callbacks=[_CountEpochs(crash_after=3)], **kwargs)
    with open(tmp_path / "checkpoints" / "state.json") as handle:
        state = json.load(handle)
    assert (state["phase_index"], state["epoch"], state["step"]) == (1, 1, 9)

    counter = _CountEpochs()
    model = transfer_model(keras_hub_module, seed=123)  # different initial weights: resume must restore them
    history = two_phase_fit(model, *datasets, callbacks=[counter], **kwargs)

    assert counter.epochs == 2  # only the two fine-tuning epochs left
    assert [(e["phase"], e["epoch"]) for e in history["entries"]] == [
        ("head", 1), ("head", 2), ("fine_tune", 1), ("fine_tune", 2), ("fine_tune", 3)]
    assert [e["step"] for e in history["entries"]] == [3, 6, 9, 12, 15]
    # the optimizer state came back too: the cosine schedule continued instead of restarting
    rates = [e["learning_rate"] for e in history["entries"][2:]]
    assert rates[0] > rates[1] > rates[2] == pytest.approx(0.0, abs=1e-12)

    # a completed run is not trained again: its best weights come back
    again = transfer_model(keras_hub_module, seed=5)
    counter = _CountEpochs()
    assert two_phase_fit(again, *datasets, callbacks=[counter], **kwargs)["entries"] == history["entries"]
    assert counter.epochs == 0
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(keras_hub_module, datasets, tmp_path, dropout):
    schedule = make_schedule(24, 3, batch_size=8, head_epochs=2, fine_tune_epochs=3, warmup_fraction=0.0)
    kwargs = dict(unfreeze=UNFREEZE_ALL, schedule=schedule, early_stopping_patience=10)
    whole = two_phase_fit(transfer_model(keras_hub_module, dropout=dropout), *datasets,
                          output_dir=str(tmp_path / "whole"), **kwargs)
    with pytest.raises(RuntimeError, match="killed"):
        two_phase_fit(transfer_model(keras_hub_module, dropout=dropout), *datasets,
                      callbacks=[_CountEpochs(crash_after=4)], output_dir=str(tmp_path / "resumed"), **kwargs)
    restarted = transfer_model(keras_hub_module, dropout=dropout, seed=7)  # other initial weights: restored
    keras.utils.set_random_seed(0)  # a rerun of the same work seeds its process as the first run did
    resumed = two_phase_fit(restarted, *datasets, output_dir=str(tmp_path / "resumed"), **kwargs)
    metrics = ("loss", "accuracy", "val_loss", "val_accuracy")
    assert [[e[m] for m in metrics] for e in resumed["entries"]] == [[e[m] for m in metrics] for e in whole["entries"]]


def test_a_cached_head_phase_checkpoints_the_head_alone_and_resumes_exactly(keras_hub_module, datasets, tmp_path):
    schedule = make_schedule(24, 3, batch_size=8, head_epochs=3, fine_tune_epochs=2, warmup_fraction=0.0)
    kwargs = dict(unfreeze=UNFREEZE_ALL, schedule=schedule, early_stopping_patience=10)
    whole_model = transfer_model(keras_hub_module)
    whole = two_phase_fit(whole_model, *datasets, output_dir=str(tmp_path / "whole"), **kwargs)
    assert whole["phases"]["head"]["cached_features"] is True
    with pytest.raises(RuntimeError, match="killed"):
        two_phase_fit(transfer_model(keras_hub_module), *datasets, callbacks=[_CountEpochs(crash_after=2)],
                      output_dir=str(tmp_path / "resumed"), **kwargs)
    checkpoints = tmp_path / "resumed" / "checkpoints"
    state = json.loads((checkpoints / "state.json").read_text())
    assert state["weights"] == "head-epoch-head-0002.weights.h5"
    head_file = checkpoints / state["weights"]
    assert head_file.stat().st_size < (tmp_path / "whole" / "checkpoints" / state_of(tmp_path / "whole")).stat().st_size

    restarted = transfer_model(keras_hub_module, seed=7)  # other head weights: restored from the head-only file
    keras.utils.set_random_seed(0)
    resumed = two_phase_fit(restarted, *datasets, output_dir=str(tmp_path / "resumed"), **kwargs)
    metrics = ("loss", "accuracy", "val_loss", "val_accuracy")
    assert [[e[m] for m in metrics] for e in resumed["entries"]] == [[e[m] for m in metrics] for e in whole["entries"]]
    # the best is saved whole once its phase ended: it brings back the base of that epoch, not just the head
    final = json.loads((checkpoints / "state.json").read_text())
    assert not final["best"]["weights"].startswith("head-")
    for a, b in zip(whole_model.get_weights(), restarted.get_weights()):
        np.testing.assert_array_equal(a, b)


def state_of(run_dir) -> str:
    """The whole-model weight file a finished run's state names."""
    return json.loads((run_dir / "checkpoints" / "state.json").read_text())["weights"]


def test_checkpoints_of_another_run_are_refused(keras_hub_module, datasets, tmp_path):
    two_phase_fit(transfer_model(keras_hub_module), *datasets, unfreeze=None, name="feature_extraction",
                  schedule=SCHEDULE, output_dir=str(tmp_path))
    with pytest.raises(ModelError, match="different training run.*strategy: saved 'feature_extraction'"):
        two_phase_fit(transfer_model(keras_hub_module), *datasets, unfreeze=UNFREEZE_ALL, name="fine_tune_all",
                      schedule=SCHEDULE, output_dir=str(tmp_path))
    with pytest.raises(ModelError, match="different training run.*unfreeze: saved None"):  # same label, other fit
        two_phase_fit(transfer_model(keras_hub_module), *datasets, unfreeze=UNFREEZE_ALL, name="feature_extraction",
                      schedule=SCHEDULE, output_dir=str(tmp_path))


def test_early_stopping_restores_the_best_weights(keras_hub_module, learnable, tmp_path):
    images, labels = learnable
    train = tf.data.Dataset.from_tensor_slices((images, labels))
    # Eval labels contradict the training labels: the better the fit, the worse the eval split looks.
    contradicting = (labels + 1) % 3
    schedule = make_schedule(24, 3, batch_size=8, head_epochs=20, head_learning_rate=0.1)
    model = transfer_model(keras_hub_module)
    history = two_phase_fit(model, train, tf.data.Dataset.from_tensor_slices((images, contradicting)),
                            unfreeze=None, schedule=schedule, output_dir=str(tmp_path),
                            early_stopping_patience=2)

    head, best, last = history["phases"]["head"], history["best"], history["entries"][-1]
    assert head["stopped_early"] and head["epochs_run"] < 20
    # patience: the configured 2 epochs, raised to a fifth of the phase's 20 epochs
    assert best["epoch"] == head["epochs_run"] - 4
    assert best["val_loss"] < last["val_loss"]
    probabilities = model.predict(images, verbose=0)
    restored_loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(contradicting, probabilities)))
    assert restored_loss == pytest.approx(best["val_loss"], rel=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == contradicting) == pytest.approx(best["val_accuracy"])


@pytest.mark.parametrize("fit", ["transfer", "baseline"])
def test_keep_last_epoch_trains_the_whole_budget_and_keeps_the_last_weights(keras_hub_module, learnable, tmp_path,
                                                                             fit):
    images, labels = learnable
    contradicting = (labels + 1) % 3  # as above: every epoch looks worse on the eval split
    data = (tf.data.Dataset.from_tensor_slices((images, labels)),
            tf.data.Dataset.from_tensor_slices((images, contradicting)))
    schedule = make_schedule(24, 3, batch_size=8, head_epochs=8, head_learning_rate=0.1, baseline_epochs=8)
    if fit == "transfer":
        model = transfer_model(keras_hub_module)
        history = two_phase_fit(model, *data, unfreeze=None, schedule=schedule,
                                output_dir=str(tmp_path), early_stopping_patience=1, keep_last_epoch=True)
    else:
        keras.utils.set_random_seed(0)
        model = build_baseline_model(keras_hub_module, 3, architecture="small_cnn", cnn_filters=(4,))
        history = fit_baseline(model, *data, schedule=schedule, output_dir=str(tmp_path), early_stopping_patience=1,
                               keep_last_epoch=True)
    phase = next(iter(history["phases"].values()))
    last = history["entries"][-1]
    assert not phase["stopped_early"] and phase["epochs_run"] == 8
    assert history["best"]["epoch"] == last["epoch"] == 8
    probabilities = model.predict(images, verbose=0)
    kept_loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(contradicting, probabilities)))
    assert kept_loss == pytest.approx(last["val_loss"], rel=1e-4)


def test_fit_baseline_trains_everything_including_batch_norm(keras_hub_module, datasets, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_baseline_model(keras_hub_module, 3, dropout=0.0)
    bn = model.get_layer("feature_extractor").get_layer("bn1")
    weights_before = [w.numpy() for w in model.weights]
    mean_before = bn.moving_mean.numpy()
    history = fit_baseline(model, *datasets, schedule=SCHEDULE, output_dir=str(tmp_path))

    assert history["strategy"] == "baseline"
    assert [(e["phase"], e["step"]) for e in history["entries"]] == [("baseline", 3), ("baseline", 6)]
    assert not np.array_equal(mean_before, bn.moving_mean.numpy())
    assert sum(not np.array_equal(a, b.numpy()) for a, b in zip(weights_before, model.weights)) == len(model.weights)
    assert 0 < history["entries"][0]["learning_rate"] <= SCHEDULE.baseline_learning_rate  # warm-up, then decay


def test_bad_requests_fail_clearly(keras_hub_module, datasets, tmp_path):
    model = transfer_model(keras_hub_module)
    with pytest.raises(ConfigError, match="unfreeze.*'fine_tune_everything'"):
        two_phase_fit(model, *datasets, unfreeze="fine_tune_everything", schedule=SCHEDULE, output_dir=str(tmp_path))
    with pytest.raises(ModelError, match="top_n=99"):
        two_phase_fit(model, *datasets, unfreeze=Unfreeze(top_n=99), schedule=SCHEDULE,
                      output_dir=str(tmp_path / "top"))
    headless = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(ModelError, match="no layer named 'feature_extractor'"):
        two_phase_fit(headless, *datasets, unfreeze=None, schedule=SCHEDULE,
                      output_dir=str(tmp_path / "headless"))
