"""`tlpipe export`: an edge file of a model already trained, checked on a test split; clear errors on bad input.

Data: the conftest's tiny brightness classes through the real ingest and transform executors. Model: a
linear classifier whose weights read the mean brightness (set by hand, no training), exported as the
trainer would, inside a train step's folder (`<step>/model/`).
"""

import os

import numpy as np
import pytest
import yaml

from tlpipe.pipeline.cli import main

from .conftest import CLASSES, IMAGE_SIZE, tiny_settings

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def transformed(tiny_data, tmp_path_factory) -> str:
    from tlpipe.components.ingest.executor import run_ingest
    from tlpipe.components.transform.executor import run_transform
    from tlpipe.pipeline.config import load_config

    folder = tmp_path_factory.mktemp("export_data")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_settings(tiny_data, str(folder / "module"), folder / "root")))
    config = load_config(str(path))
    run_ingest(config.ingest, config.beam, str(folder / "ingest"))
    run_transform(config.transform, config.beam, str(folder / "ingest"), str(folder / "transform"),
                  image_size=(IMAGE_SIZE, IMAGE_SIZE), channels=1)
    return str(folder / "transform")


@pytest.fixture(scope="module")
def train_step(tmp_path_factory) -> str:
    """A train step's folder whose model/ tells dark (~40), grey (~120) and light (~200) images apart."""
    import keras

    from tlpipe.models.serving import export_for_serving

    pixels = IMAGE_SIZE * IMAGE_SIZE
    model = keras.Sequential([keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax", name="classifier")])
    slope = 50.0  # logits 0, a(x - 0.31), 2a(x - 0.47) of the mean brightness x in [0, 1]
    weights = np.tile(np.array([0.0, slope, 2 * slope]) / pixels, (pixels, 1))
    model.layers[-1].set_weights([weights.astype("float32"), np.array([0.0, -0.31 * slope, -0.94 * slope], "float32")])
    step = tmp_path_factory.mktemp("train-feature_extraction")
    export_for_serving(model, str(step / "model"), label_names=CLASSES, modality="image",
                       image_size=[IMAGE_SIZE, IMAGE_SIZE], channels=1)
    return str(step)


def test_export_writes_a_checked_int8_file(train_step, transformed, tmp_path, capsys):
    from tlpipe.components.evaluator.edge_check import read_split
    from tlpipe.models.edge import EdgeModel, read_edge_metadata

    output = tmp_path / "classifier.tflite"
    assert main(["-q", "export", "--model", train_step, "--format", "tflite_int8", "-o", str(output),
                 "--examples", transformed]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {output} (tflite_int8" in printed and "test accuracy 1.0000 (SavedModel 1.0000)" in printed
    assert read_edge_metadata(str(output))["label_names"] == CLASSES
    images, labels = read_split(transformed, "test", [IMAGE_SIZE, IMAGE_SIZE, 1])
    assert np.array_equal(EdgeModel(str(output)).probabilities(images).argmax(axis=1), labels)
    assert os.listdir(tmp_path) == ["classifier.tflite"]  # nothing else left beside it


def test_export_without_a_check_needs_only_the_model(train_step, tmp_path, capsys):
    output = tmp_path / "float16.tflite"
    assert main(["export", "--model", os.path.join(train_step, "model"), "--format", "tflite_float16",
                 "-o", str(output)]) == 0
    assert "not checked (no --examples)" in capsys.readouterr().out and output.stat().st_size > 0


@pytest.mark.parametrize("arguments, message", [
    (["--format", "tflite_int8"], "config key '--calibration': received None; allowed: a transformed dataset folder"),
    (["--format", "tflite", "--max-drop", "2"], "config key 'edge_max_drop': received 2.0"),
])
def test_export_refuses_bad_input_in_one_line(train_step, tmp_path, capsys, arguments, message):
    assert main(["export", "--model", train_step, "-o", str(tmp_path / "m.tflite"), *arguments]) == 1
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_export_refuses_a_folder_that_is_no_model(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path), "--format", "tflite", "-o", str(tmp_path / "m.tflite")]) == 1
    error = capsys.readouterr().err
    assert f"config key '--model': received '{tmp_path}'" in error and "a tlpipe serving export" in error
