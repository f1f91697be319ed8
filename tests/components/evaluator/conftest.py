"""Tiny synthetic image task and real exported Keras models for the evaluator tests.

Images are 8x8x1; class c shows a bright vertical stripe in columns 2c and 2c+1
over dark noise, so a linear model can see the class. The test split has 6, 7
and 7 examples of the three classes: the accuracies below are then rounded
*down* in TFMA's float32 (0.65 -> 0.64999998), so the threshold boundaries are
tested where rounding bites.

Models (Flatten -> Dense softmax, exported with the real `export_for_serving`):
- `trained`: fitted on a separate training sample; should be (near) perfect;
- `partial`: weights set by hand to read the stripes, but class 2 is read as
  class 1 -> exactly 13/20 = 0.65 accuracy;
- `constant`: always answers class 0 -> exactly 6/20 = 0.30 accuracy.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tlpipe.models.plumbing import example_format as fmt

LABEL_NAMES = ["left", "middle", "right"]
NUM_CLASSES = len(LABEL_NAMES)
SIZE = 8
TEST_COUNTS = (6, 7, 7)


def make_images(counts: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 8, 8, 1] and int labels [N], `counts[c]` images of class c, shuffled."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(NUM_CLASSES), counts))
    images = rng.integers(0, 60, size=(len(labels), SIZE, SIZE, 1)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, :, 2 * label:2 * label + 2, 0] = rng.integers(190, 256, size=(SIZE, 2))
    return images, labels


def serialize(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """Transformed tf.Examples as the transform component writes them."""
    import tensorflow as tf

    def feature(values, kind):
        if kind == "bytes":
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    records = []
    for i, (image, label) in enumerate(zip(images, labels)):
        example = tf.train.Example(features=tf.train.Features(feature={
            fmt.IMAGE_RAW_KEY: feature([image.tobytes()], "bytes"),
            fmt.IMAGE_SHAPE_KEY: feature(list(image.shape), "int64"),
            fmt.LABEL_KEY: feature([int(label)], "int64"),
            fmt.LABEL_NAME_KEY: feature([LABEL_NAMES[label].encode()], "bytes"),
            fmt.ID_KEY: feature([f"synthetic-{i}".encode()], "bytes"),
        }))
        records.append(example.SerializeToString())
    return records


def write_dataset(root: str, splits: dict[str, list[bytes]], counts: dict[str, dict[str, int]] | None = None) -> str:
    """A transformed-dataset artifact: one shard per split plus metadata.json (with ingest's `counts` if given)."""
    import tensorflow as tf

    for split, records in splits.items():
        os.makedirs(fmt.split_dir(root, split), exist_ok=True)
        with tf.io.TFRecordWriter(fmt.shard_prefix(root, split) + "-00000-of-00001" + fmt.SHARD_SUFFIX) as writer:
            for record in records:
                writer.write(record)
    with open(os.path.join(root, fmt.METADATA_FILE), "w", encoding="utf-8") as handle:
        json.dump({"label_names": LABEL_NAMES, "num_classes": NUM_CLASSES, "modality": "image",
                   **({"counts": counts} if counts else {})}, handle)
    return root


def _linear_model(weights: np.ndarray | None = None, bias: np.ndarray | None = None):
    import keras

    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES, activation="softmax", name="classifier"),
    ])
    if weights is not None:
        model.layers[-1].set_weights([weights.astype("float32"), bias.astype("float32")])
    return model


def _stripe_weights(read_as: list[int]) -> np.ndarray:
    """Dense weights that add the stripe of class c to the score of class read_as[c]."""
    weights = np.zeros((SIZE, SIZE, NUM_CLASSES))
    for stripe, target in enumerate(read_as):
        weights[:, 2 * stripe:2 * stripe + 2, target] += 1.0 if stripe == target else 2.0
    return weights.reshape(SIZE * SIZE, NUM_CLASSES)


@pytest.fixture(scope="session")
def dataset_writer():
    """`write_dataset`, for tests that need a dataset of their own."""
    return write_dataset


@pytest.fixture(scope="session")
def test_split() -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    images, labels = make_images(TEST_COUNTS, seed=1)
    return images, labels, serialize(images, labels)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory, test_split) -> str:
    test_counts = {name: int((test_split[1] == c).sum()) for c, name in enumerate(LABEL_NAMES)}
    return write_dataset(str(tmp_path_factory.mktemp("transformed")), {"test": test_split[2]},
                         counts={"train": dict.fromkeys(LABEL_NAMES, 10), "test": test_counts})


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, str]:
    import keras

    from tlpipe.models.serving import export_for_serving

    keras.utils.set_random_seed(0)
    trained = _linear_model()
    trained.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    images, labels = make_images((12, 12, 12), seed=2)
    trained.fit(images.astype("float32") / 255.0, labels, epochs=20, batch_size=12, verbose=0)
    models = {
        "trained": trained,
        "partial": _linear_model(_stripe_weights([0, 1, 1]), np.zeros(NUM_CLASSES)),
        "constant": _linear_model(np.zeros((SIZE * SIZE, NUM_CLASSES)), np.array([5.0, 1.0, 0.0])),
    }
    root = tmp_path_factory.mktemp("models")
    return {
        name: export_for_serving(model, str(root / name / "model"), label_names=LABEL_NAMES, modality="image",
                                 image_size=[SIZE, SIZE], channels=1)
        for name, model in models.items()
    }


@pytest.fixture(scope="session")
def predictions(model_dirs, test_split) -> dict[str, np.ndarray]:
    """Each model's probabilities on the test split, straight from its serving signature."""
    import tensorflow as tf

    serialized = tf.constant(test_split[2])
    return {
        name: tf.saved_model.load(path).signatures["serving_default"](examples=serialized)["probabilities"].numpy()
        for name, path in model_dirs.items()
    }


def interval(value: float, half: float = 0.1) -> dict:
    """A metric with its interval, as `read_tfma_output` returns it."""
    return {"value": value, "lower": value - half, "upper": value + half}


def tfma_run(accuracies: dict[str, float], reference: str, failures: dict[str, list[str]]) -> dict:
    """A TFMA run's parsed output as `read_tfma_output` returns it: every model's accuracy, each one's
    difference to `reference` (interval +-0.05) and the threshold `failures` (model -> kinds)."""
    from tlpipe.components.evaluator.tfma_analysis import ACCURACY

    return {
        "models": {name: {"overall": {ACCURACY: interval(acc)}} for name, acc in accuracies.items()},
        "diffs": {name: {ACCURACY: interval(acc - accuracies[reference], 0.05)}
                  for name, acc in accuracies.items() if name != reference},
        "failures": {name: [{"metric": ACCURACY, "kind": kind, "measured": 0.0} for kind in kinds]
                     for name, kinds in failures.items()},
    }
