"""What tlpipe records about a hub module it publishes, and reading it back.

A published module carries `assets.extra/tlpipe_module.json` (the SavedModel
convention for files that tools add beside a model and that the graph never
reads): the input size, the input dtype, the output size and, for Keras models,
the architecture config. Modules from elsewhere (tfhub.dev, Kaggle) have no
such file; readers then get None and fall back to what the module's call
signature tells.
"""

from __future__ import annotations

import os
from typing import Any

from tlpipe.models.plumbing.artifacts import read_json, write_json

METADATA_DIR = "assets.extra"
METADATA_FILE = "tlpipe_module.json"
FORMAT_VERSION = 1


def metadata_path(module_dir: str) -> str:
    """Where the metadata file lives inside a module folder."""
    return os.path.join(module_dir, METADATA_DIR, METADATA_FILE)


def write_module_metadata(module_dir: str, metadata: dict[str, Any]) -> None:
    """Store `metadata` (JSON-serialisable) in the module folder."""
    os.makedirs(os.path.join(module_dir, METADATA_DIR), exist_ok=True)
    write_json(metadata_path(module_dir), {"format_version": FORMAT_VERSION, **metadata})


def read_module_metadata(module_dir: str) -> dict[str, Any] | None:
    """The metadata of a module published by tlpipe, or None for other modules."""
    path = metadata_path(module_dir)
    if not os.path.isfile(path):
        return None
    return read_json(path)
