"""A tiny end-to-end pipeline: MNIST-format files and a hub module made here, a config over them."""

import numpy as np
import pytest
import yaml

from tlpipe.pipeline.config import load_config

IMAGE_SIZE = 12
CLASSES = ["dark", "grey", "light"]


def _write_idx(folder, prefix: str, per_class: int, seed: int) -> None:
    """Tiny MNIST-format files: class k is noise around brightness 40 + 80k, easy for both models."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.uint8), per_class)
    noise = rng.integers(-20, 21, size=(len(labels), IMAGE_SIZE, IMAGE_SIZE))
    images = (40 + 80 * labels[:, None, None] + noise).astype(np.uint8)
    header = np.array([0x0803, len(labels), IMAGE_SIZE, IMAGE_SIZE], ">u4").tobytes()
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([0x0801, len(labels)], ">u4").tobytes()
                                                         + labels.tobytes())


def _tiny_hub_module(path: str, *, blind: bool = False) -> str:
    """A small conv feature extractor published as a TF-Hub module (what `trainer.handle` points at).

    A `blind` module outputs zeros whatever the image: transfer from it cannot work.
    """
    import keras

    from tlpipe.models.publish import export_hub_module

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1))
    initializer = "zeros" if blind else "glorot_uniform"
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer=initializer,
                            use_bias=not blind)(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return export_hub_module(keras.Model(inputs, outputs, name="tiny"), path)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_idx")
    _write_idx(folder, "train", per_class=20, seed=1)
    _write_idx(folder, "t10k", per_class=6, seed=2)
    return folder


@pytest.fixture(scope="session")
def tiny_module(tmp_path_factory):
    return _tiny_hub_module(str(tmp_path_factory.mktemp("tiny_module") / "module"))


@pytest.fixture(scope="session")
def blind_module(tmp_path_factory):
    return _tiny_hub_module(str(tmp_path_factory.mktemp("blind_module") / "module"), blind=True)


@pytest.fixture
def make_tiny_config(tiny_data, tiny_module, tmp_path):
    """Config of a tiny pipeline under `tmp_path/<name>`; keyword sections are merged over the settings."""

    def make(name: str = "tiny", **sections):
        settings = {
            "pipeline": {"name": "tiny", "root": str(tmp_path / name / "root"), "enable_caching": False},
            "ingest": {"source": f"idx:{tiny_data}",
                       "splits": {"train": "train[:75%]", "eval": "train[75%:]", "test": "test"},
                       "label_names": CLASSES, "classes": [], "shots": {"train": 5, "eval": 2}},
            "trainer": {"handle": tiny_module, "strategies": ["feature_extraction"],
                        "batch_size": 8, "head_epochs": 20, "head_learning_rate": 0.05,
                        "baseline": {"architecture": "small_cnn", "cnn_filters": [4], "epochs": 20}},
            "evaluator": {"compare_with_production": False},
        }
        for section, values in sections.items():
            settings[section] = {**settings.get(section, {}), **values}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(settings))
        return load_config(str(path))

    return make


@pytest.fixture
def tiny_config(make_tiny_config):
    return make_tiny_config()
