"""The on-disk contract between components: tf.Example feature keys and file layout.

Ingest writes *raw* examples, transform writes *transformed* examples; the
trainer, the exported serving signature and the evaluator (TFMA) read the
transformed ones. Only constants and path helpers live here, so the module is
cheap to import.

Raw example (ingest output)
    image/encoded   bytes   the image file's bytes (PNG, JPEG, ...); arrays
                            from IDX / TFDS are PNG-encoded
    text            bytes   UTF-8 text, for text sources (instead of an image)
    label           int64   class index in 0..K-1 after relabelling
    label/name      bytes   the class name
    id              bytes   a stable id of the example in its source
    task/<t>/label, task/<t>/label/name   int64, bytes: the label of further
                            task <t> (`ingest.label_tasks`), when configured
    (examples of the `unlabeled` split carry no label and no label/name)

Transformed example (transform output, what models consume)
    image/raw       bytes   uint8 pixels, row-major H x W x C; a stored value v
                            means v / 255 (models scale to [0, 1])
    image/shape     int64   [H, W, C]
    text            bytes   normalised UTF-8 text
    label, label/name, id   as above (and the task/<t>/label features)

Artifact layout: `<artifact_dir>/<split>/part-NNNNN-of-MMMMM.tfrecord`
(uncompressed TFRecord files), plus `<artifact_dir>/metadata.json`.
"""

from __future__ import annotations

import glob
import os

IMAGE_ENCODED_KEY = "image/encoded"
IMAGE_RAW_KEY = "image/raw"
IMAGE_SHAPE_KEY = "image/shape"
TEXT_KEY = "text"
LABEL_KEY = "label"
LABEL_NAME_KEY = "label/name"
ID_KEY = "id"
# The label of the main classes: a multi-task head (`trainer.tasks`) that names it reads LABEL_KEY.
MAIN_LABEL = "label"


def task_label_key(task: str) -> str:
    """The int64 feature holding further label task `task` (`ingest.label_tasks`)."""
    return f"task/{task}/label"


def task_label_name_key(task: str) -> str:
    """The bytes feature holding the class name of label task `task`."""
    return f"task/{task}/label/name"


def label_key_of(label: str) -> str:
    """The feature of a label: LABEL_KEY for MAIN_LABEL, else the label task's feature."""
    return LABEL_KEY if label == MAIN_LABEL else task_label_key(label)

SPLITS = ("train", "eval", "test")
# The target's training examples that k-shot sampling left out, written without labels
# (`ingest.unlabeled`) for semi-supervised strategies; never used for early stopping or tests.
UNLABELED_SPLIT = "unlabeled"
# The labelled split whose unsampled remainder becomes UNLABELED_SPLIT.
UNLABELED_SOURCE_SPLIT = "train"
MODALITIES = ("image", "text")
METADATA_FILE = "metadata.json"
SHARD_SUFFIX = ".tfrecord"


def split_dir(artifact_dir: str, split: str) -> str:
    """The folder holding one split's shards."""
    return os.path.join(artifact_dir, split)


def shard_prefix(artifact_dir: str, split: str) -> str:
    """Prefix Beam's WriteToTFRecord uses for a split (shards get `-NNNNN-of-MMMMM.tfrecord`)."""
    return os.path.join(split_dir(artifact_dir, split), "part")


def split_files(artifact_dir: str, split: str) -> list[str]:
    """Sorted shard files of one split; empty when the split was not written."""
    return sorted(glob.glob(os.path.join(split_dir(artifact_dir, split), "*" + SHARD_SUFFIX)))


def read_metadata(artifact_dir: str, *, expected: str) -> dict:
    """`metadata.json` of an ingest or transform artifact, checked for what every reader relies on.

    `expected` says what the folder should be (e.g. "an ingest artifact"); a
    missing folder or file, an unknown modality, or label names that are not a
    list of at least two names (consistent with `num_classes`) are DataErrors.
    """
    from tlpipe.models.plumbing.artifacts import read_json
    from tlpipe.models.plumbing.errors import DataError

    if not os.path.isdir(artifact_dir):
        raise DataError(f"{artifact_dir!r} does not exist; expected {expected}")
    path = os.path.join(artifact_dir, METADATA_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{artifact_dir!r} has no {METADATA_FILE}; expected {expected}")
    metadata = read_json(path)
    modality = metadata.get("modality")
    if modality not in MODALITIES:
        raise DataError(f"{path}: 'modality' is {modality!r}; allowed: one of {', '.join(MODALITIES)}")
    names = metadata.get("label_names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"{path}: 'label_names' is {names!r}; expected a list of at least two class names")
    num_classes = metadata.get("num_classes", len(names))
    if num_classes != len(names):
        raise DataError(f"{path}: 'num_classes' is {num_classes!r} but 'label_names' has {len(names)} names")
    return metadata
