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


def tiny_settings(data_dir, module: str, root) -> dict:
    """The tiny pipeline's config sections (no caching) over `data_dir` and `module`, artifacts under `root`."""
    return {
        "pipeline": {"name": "tiny", "root": str(root), "enable_caching": False},
        "ingest": {"source": f"idx:{data_dir}",
                   "splits": {"train": "train[:75%]", "eval": "train[75%:]", "test": "test"},
                   "label_names": CLASSES, "classes": [], "shots": {"train": 5, "eval": 2}},
        "trainer": {"handle": module, "strategies": ["feature_extraction"],
                    "batch_size": 8, "head_epochs": 20, "head_learning_rate": 0.05,
                    "baseline": {"architecture": "small_cnn", "cnn_filters": [4], "epochs": 20}},
        "evaluator": {"compare_with_production": False},
    }


@pytest.fixture
def make_tiny_config(tiny_data, tiny_module, tmp_path):
    """Config of a tiny pipeline under `tmp_path/<name>`; keyword sections are merged over the settings."""

    def make(name: str = "tiny", **sections):
        settings = tiny_settings(tiny_data, tiny_module, tmp_path / name / "root")
        for section, values in sections.items():
            settings[section] = {**settings.get(section, {}), **values}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(settings))
        return load_config(str(path))

    return make


@pytest.fixture
def tiny_config(make_tiny_config):
    return make_tiny_config()


def run_cli(*args: str, env_drop: tuple = ("TF_CPP_MIN_LOG_LEVEL",)):
    """`tlpipe ARGS` in a child process whose output is not a terminal; returns the CompletedProcess."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return subprocess.run([sys.executable, "-m", "tlpipe.pipeline.cli", *args], capture_output=True, text=True,
                          env=env, timeout=900)


@pytest.fixture(scope="session")
def tlpipe_process():
    """`run_cli`: the `tlpipe` command in a child process."""
    return run_cli


@pytest.fixture(scope="session")
def two_cli_runs(tiny_data, tiny_module, tmp_path_factory):
    """Two `tlpipe run`s of the tiny pipeline through kfp.local with caching, in child processes:
    the first runs every step, the second (`-v`) takes ingest, transform and the trainers from the cache.
    Returns (config path, root, first CompletedProcess, second CompletedProcess)."""
    folder = tmp_path_factory.mktemp("two_cli_runs")
    settings = tiny_settings(tiny_data, tiny_module, folder / "root")
    settings["pipeline"].update(enable_caching=True, mode="kfp_local")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(settings))
    first = run_cli("run", "--config", str(path))
    second = run_cli("-v", "run", "--config", str(path))
    return path, folder / "root", first, second


def write_image_folder(folder, classes: dict[str, int], size: int = 8, seed: int = 0) -> None:
    """PNG images, one sub-folder per class; class k is noise around its own colour (easy to tell apart)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(classes.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        colour = np.array([60 + 120 * (k % 2), 60 + 60 * (k % 3), 200 - 120 * (k % 2)])
        for i in range(count):
            noise = rng.integers(-30, 31, size=(size, size, 3))
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{name}-{i:03d}.png")


@pytest.fixture(scope="session")
def image_folder_writer():
    """`write_image_folder`: makes an image folder source."""
    return write_image_folder


@pytest.fixture(scope="session")
def preset_hub_cache(tmp_path_factory):
    """A TFHUB_CACHE_DIR in which `preset(name)` puts a tiny two-block RGB module (32x32) under the preset's
    handle, so that `trainer.preset: NAME` resolves offline through tensorflow_hub's own cache."""
    import hashlib
    import shutil

    import keras

    from tlpipe.models.presets import PRESETS
    from tlpipe.models.publish import export_hub_module

    cache = tmp_path_factory.mktemp("tfhub_cache")
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block1_conv")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block2_conv")(x)
    module = export_hub_module(keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)),
                               str(tmp_path_factory.mktemp("rgb_module") / "module"))

    def preset(name: str) -> str:
        cached = cache / hashlib.sha1(PRESETS[name].handle.encode("utf8")).hexdigest()
        if not cached.exists():
            shutil.copytree(module, cached)
        return str(cache)

    return preset


def training_state(root, strategy: str) -> dict:
    """The checkpoint state of `strategy`'s train step under `root`/work ({} before the first epoch)."""
    import glob
    import json
    import os

    from tlpipe.models.plumbing.artifacts import read_json

    for path in glob.glob(os.path.join(str(root), "work", f"train-{strategy}-*", "checkpoints", "state.json")):
        try:
            return read_json(path)
        except (OSError, json.JSONDecodeError):
            return {}
    return {}


def training_history(result, strategy: str) -> list[dict]:
    """The per-epoch numbers of `strategy`'s history in a run's result (without timings)."""
    import os

    from tlpipe.models.plumbing.artifacts import read_json

    entries = read_json(os.path.join(result.artifacts[strategy], "history.json"))["entries"]
    return [{key: entry[key] for key in ("phase", "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy")}
            for entry in entries]
