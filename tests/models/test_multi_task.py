"""Multi-task classifiers: one shared hub base, a head per task; weighted losses, phases, export."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, ModelError
from tlpipe.models.fit import UNFREEZE_ALL, two_phase_fit
from tlpipe.models.hub_layer import variable_path
from tlpipe.models.hyperrule import make_schedule
from tlpipe.models.multi_task import (
    MultiTaskClassifier, TaskHead, build_multi_task_baseline_model, build_multi_task_transfer_model,
)
from tlpipe.models.serving import export_for_serving, load_serving_metadata, task_output_key

pytestmark = pytest.mark.quick

SCHEDULE = make_schedule(24, 3, batch_size=8, head_epochs=2, fine_tune_epochs=2, head_learning_rate=0.1,
                         fine_tune_learning_rate=0.01, warmup_fraction=0.0, baseline_epochs=2)
HEADS = (TaskHead("fine", 3, loss_weight=1.0, dropout=0.0), TaskHead("coarse", 2, loss_weight=0.5, dropout=0.0,
                                                                       hidden_units=(4,)))
NAMES = {"fine": ["cat", "dog", "bird"], "coarse": ["mammal", "bird"]}


@pytest.fixture(scope="module")
def multi_data(tiny_images):
    """Tiny images with the fine class in the colour; coarse = fine class 2 or not."""
    images, labels = tiny_images
    images = 0.5 * images + 0.5 * np.eye(3, dtype="float32")[labels][:, None, None, :]
    targets = {"fine": labels, "coarse": (labels == 2).astype("int64")}
    return tf.data.Dataset.from_tensor_slices((images, targets)), images, targets


def model_of(handle: str, heads=HEADS, seed: int = 0) -> MultiTaskClassifier:
    keras.utils.set_random_seed(seed)
    return build_multi_task_transfer_model(handle, heads)


def module_values(model: keras.Model) -> dict[str, np.ndarray]:
    return {variable_path(v): v.numpy() for v in model.base.module.variables}


def head_values(model: MultiTaskClassifier, task: str) -> list[np.ndarray]:
    return [w.numpy() for layer in model.head_layers(task) for w in layer.weights]


def test_the_model_has_one_head_per_task_on_one_base_and_round_trips_its_config(keras_hub_module, tiny_images):
    model = model_of(keras_hub_module)
    outputs = model(tiny_images[0][:4])

    assert set(outputs) == {"fine", "coarse"}
    assert outputs["fine"].shape == (4, 3) and outputs["coarse"].shape == (4, 2)
    assert [layer.name for layer in model.head_layers("coarse")] == ["coarse_dense_1", "coarse_classifier"]
    config = model.get_config()
    assert [head["name"] for head in config["heads"]] == ["fine", "coarse"]
    rebuilt = MultiTaskClassifier.from_config(config)
    assert rebuilt.task_names == ("fine", "coarse") and rebuilt.heads == model.heads


def test_per_task_losses_carry_their_weights_to_their_own_heads(keras_hub_module, multi_data):
    model = model_of(keras_hub_module)
    model.base.trainable = False
    model.compile(optimizer="sgd", **model.compile_objective())
    _, images, targets = multi_data
    logs = model.evaluate(images, targets, verbose=0, return_dict=True)

    assert logs["loss"] == pytest.approx(logs["fine_loss"] + 0.5 * logs["coarse_loss"], rel=1e-4)
    assert logs["accuracy"] == pytest.approx((logs["fine_accuracy"] + 0.5 * logs["coarse_accuracy"]) / 1.5, rel=1e-5)
    # A loss on one task only moves that task's head (and never the frozen base).
    only_coarse = build_multi_task_transfer_model(keras_hub_module, (
        TaskHead("fine", 3, loss_weight=1e-9, dropout=0.0), TaskHead("coarse", 2, dropout=0.0)))
    only_coarse.base.trainable = False
    only_coarse.compile(optimizer=keras.optimizers.SGD(1.0), **only_coarse.compile_objective())
    fine_before, coarse_before = head_values(only_coarse, "fine"), head_values(only_coarse, "coarse")
    only_coarse.fit(images, targets, batch_size=24, epochs=1, verbose=0)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(fine_before, head_values(only_coarse, "fine")))
    assert not all(np.array_equal(a, b) for a, b in zip(coarse_before, head_values(only_coarse, "coarse")))


def test_two_phase_fit_keeps_the_base_frozen_for_all_heads_then_fine_tunes_it(keras_hub_module, multi_data, tmp_path):
    model = model_of(keras_hub_module)
    data = multi_data[0]
    module_before = module_values(model)
    heads_before = {task: head_values(model, task) for task in model.task_names}
    snapshots = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(module_values(model))

    history = two_phase_fit(model, data, data.take(12), unfreeze=UNFREEZE_ALL, schedule=SCHEDULE,
                            output_dir=str(tmp_path), callbacks=[Snapshot()])

    head_phase = [entry for entry in history["entries"] if entry["phase"] == "head"]
    assert len(head_phase) == 2
    for values in snapshots[:2]:  # the head phase: the shared base is bit-identical after every epoch
        assert all(np.array_equal(module_before[path], values[path]) for path in module_before)
    assert any(not np.array_equal(module_before[path], snapshots[-1][path]) for path in module_before)
    for task in model.task_names:
        assert not all(np.array_equal(a, b) for a, b in zip(heads_before[task], head_values(model, task)))
    for entry in history["entries"]:  # per-task histories; the tracked accuracy is their weighted mean
        tasks = entry["tasks"]
        assert set(tasks) == {"fine", "coarse"}
        assert set(tasks["fine"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        weighted = (tasks["fine"]["val_accuracy"] + 0.5 * tasks["coarse"]["val_accuracy"]) / 1.5
        assert entry["val_accuracy"] == pytest.approx(weighted, abs=1e-6)
    assert history["phases"]["head"]["cached_features"] is False
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert on_disk["entries"][0]["tasks"]["coarse"]["val_loss"] == history["entries"][0]["tasks"]["coarse"]["val_loss"]


def test_the_baseline_puts_the_same_heads_on_a_random_base(keras_hub_module):
    keras.utils.set_random_seed(0)
    model = build_multi_task_baseline_model(keras_hub_module, HEADS, architecture="small_cnn", cnn_filters=[4])
    assert model.task_names == ("fine", "coarse") and model.baseline_architecture == "small_cnn"
    assert model.base.name == "feature_extractor"
    resized = build_multi_task_baseline_model(keras_hub_module, HEADS, architecture="small_cnn", cnn_filters=[4],
                                              resize_to=(8, 8))
    assert tuple(resized.base.get_layer("small_cnn").inputs[0].shape) == (None, 8, 8, 3)
    assert resized.baseline_reason.endswith("on the images resized to [8, 8]")


def _example(pixels: np.ndarray) -> bytes:
    feature = {
        fmt.IMAGE_RAW_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[pixels.tobytes()])),
        fmt.IMAGE_SHAPE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=list(pixels.shape))),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_the_export_answers_both_signatures_with_every_task_s_outputs(keras_hub_module, tmp_path):
    import io

    from PIL import Image

    model = model_of(keras_hub_module)
    path = export_for_serving(model, str(tmp_path / "model"), label_names=NAMES["fine"], modality="image",
                              image_size=(16, 16), channels=3, task_label_names=NAMES)
    pixels = np.random.default_rng(1).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    pngs = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    loaded = tf.saved_model.load(path)
    expected = model(pixels.astype("float32") / 255.0)
    answers = [loaded.signatures["serving_default"](examples=tf.constant([_example(p) for p in pixels])),
               loaded.signatures["serving_image_bytes"](images=tf.constant(pngs))]
    for outputs in answers:
        assert set(outputs) == {task_output_key(task, key) for task in NAMES
                                for key in ("probabilities", "class_ids", "class_names")}
        for task, names in NAMES.items():
            np.testing.assert_allclose(outputs[task_output_key(task, "probabilities")], expected[task], atol=1e-5)
            ids = outputs[task_output_key(task, "class_ids")].numpy()
            assert [n.decode() for n in outputs[task_output_key(task, "class_names")].numpy()] == [names[i] for i in ids]
    metadata = load_serving_metadata(path)
    assert metadata["tasks"] == {task: {"label_names": names} for task, names in NAMES.items()}
    assert metadata["label_names"] == NAMES["fine"]


def test_the_export_needs_names_for_every_task(keras_hub_module, tmp_path):
    model = model_of(keras_hub_module)
    with pytest.raises(ConfigError, match="task_label_names"):
        export_for_serving(model, str(tmp_path / "a"), label_names=NAMES["fine"], modality="image",
                           image_size=(16, 16), channels=3, task_label_names={"fine": NAMES["fine"]})
    with pytest.raises(ModelError, match="'coarse' outputs 2 classes but 3"):
        export_for_serving(model, str(tmp_path / "b"), label_names=NAMES["fine"], modality="image",
                           image_size=(16, 16), channels=3,
                           task_label_names={"fine": NAMES["fine"], "coarse": ["a", "b", "c"]})


def test_bad_heads_are_model_errors(keras_hub_module):
    with pytest.raises(ModelError, match="distinct"):
        model_of(keras_hub_module, heads=(TaskHead("a", 2), TaskHead("a", 3)))
    with pytest.raises(ModelError, match="loss_weight"):
        model_of(keras_hub_module, heads=(TaskHead("a", 2, loss_weight=0.0),))


def test_a_multi_task_export_converts_to_litert_with_an_output_per_task(keras_hub_module, tmp_path):
    from tlpipe.models.edge import EdgeModel, export_edge, read_edge_metadata

    model = model_of(keras_hub_module)
    path = export_for_serving(model, str(tmp_path / "model"), label_names=NAMES["fine"], modality="image",
                              image_size=(16, 16), channels=3, task_label_names=NAMES)
    exported = export_edge(path, "tflite", str(tmp_path / "model.tflite"))
    pixels = np.random.default_rng(2).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    outputs = EdgeModel(exported["file"]).predict(pixels)
    expected = model(pixels.astype("float32") / 255.0)
    for task in NAMES:
        np.testing.assert_allclose(outputs[task_output_key(task, "probabilities")], expected[task], atol=1e-5)
    assert read_edge_metadata(exported["file"])["tasks"] == {task: {"label_names": names} for task, names in NAMES.items()}
