"""`image_folder:DIR`: one sub-folder of image files per class.

Class names are the sorted sub-folder names; every image file below a class
folder (at any depth) is an example whose id is its path relative to DIR.
Files are stored as they are: a file that is not a decodable image is carried
through, and transform sets it aside with the reason. A selected class whose
folder holds no image file at all is an ingest error; so is an image file this
user cannot read (listed before any work).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import apache_beam as beam

from tlpipe.components.ingest.config import ALL_SPLIT, IngestConfig
from tlpipe.components.ingest.labels import LabelSet, select_classes
from tlpipe.components.ingest.records import SourceRecord
from tlpipe.components.ingest.sources import Source, file_fingerprint, read_file_bytes, require_path, require_readable
from tlpipe.models.plumbing.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


def _image_files(folder: str) -> tuple[list[str], int]:
    """Image files below `folder` (sorted, hidden entries skipped) and the count of other files."""
    images: list[str] = []
    others = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                images.append(os.path.join(dirpath, name))
            else:
                others += 1
    return images, others


class ImageFolderSource(Source):
    """Reads `DIR/<class>/**/<image file>`."""

    modality = "image"

    def __init__(self, config: IngestConfig, location: str):
        require_path(location, "image_folder", "folder")
        if config.label_names:
            raise ConfigError(
                "label_names", config.label_names,
                "an empty list for image_folder sources: class names are the sub-folder names "
                "(use 'classes' to pick and order them)",
            )
        self.root = os.path.abspath(location)
        class_names = sorted(
            d for d in os.listdir(self.root) if not d.startswith(".") and os.path.isdir(os.path.join(self.root, d))
        )
        if not class_names:
            raise DataError(f"empty dataset: image folder {location!r} has no class sub-folders; expected DIR/<class>/<image files>")
        self._label_set = LabelSet.from_names(class_names)
        self.files: dict[str, list[str]] = {}
        for name in select_classes(self._label_set, config.classes).names:
            images, others = _image_files(os.path.join(self.root, name))
            if not images:
                raise DataError(
                    f"class folder {os.path.join(self.root, name)!r} has no image files "
                    f"({others} other files); allowed extensions: {', '.join(IMAGE_EXTENSIONS)}"
                )
            self.files[name] = images
        require_readable((path for paths in self.files.values() for path in paths), f"image folder {location!r}")

    def splits(self) -> tuple[str, ...]:
        return (ALL_SPLIT,)

    def label_set(self) -> Optional[LabelSet]:
        return self._label_set

    def fingerprint(self) -> str:
        return file_fingerprint((path for paths in self.files.values() for path in paths), self.root)

    def read(self, root: Any, split: str) -> Any:
        records = [
            SourceRecord(os.path.relpath(path, self.root).replace(os.sep, "/"), split, name, path)
            for name, paths in self.files.items()
            for path in paths
        ]
        return root | f"List {split} images" >> beam.Create(records)

    def load(self, payload: Any) -> bytes:
        return read_file_bytes(payload)
