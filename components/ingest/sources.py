"""The source interface and `open_source`, which picks the implementation for a scheme.

A source is opened on the driver: it checks that the data is there, lists
what it will read (for the fingerprint and for early, clear errors) and then
contributes the reading steps to the Beam pipeline. Sources are pickled into
Beam workers, so they hold plain data only.
"""

from __future__ import annotations

import abc
import hashlib
import importlib
import os
from typing import Any, Iterable, Optional

from tlpipe.components.beam_errors import in_dofn
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.labels import LabelSet
from tlpipe.models.plumbing.errors import DataError

_IMPLEMENTATIONS = {
    "tfds": ("tlpipe.components.ingest.tfds_source", "TfdsSource"),
    "image_folder": ("tlpipe.components.ingest.image_folder", "ImageFolderSource"),
    "idx": ("tlpipe.components.ingest.idx", "IdxSource"),
    "tfrecord": ("tlpipe.components.ingest.tfrecord_source", "TfRecordSource"),
    "csv": ("tlpipe.components.ingest.csv_source", "CsvSource"),
}

_MAX_LISTED = 5

# What LOCATION should be, per scheme, for "path does not exist" errors.
_EXPECTED = {
    "image_folder": "DIR with one sub-folder of images per class",
    "idx": "DIR holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] (t10k-* for test)",
    "tfrecord": "GLOB of TFRecord files of tf.Examples, or a folder of them",
    "csv": "FILE.csv with a header row",
}


class Source(abc.ABC):
    """A dataset behind `SCHEME:LOCATION`, opened and checked on the driver."""

    #: 'image' (examples store image/encoded) or 'text' (examples store text)
    modality: str

    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The source's own split names."""

    @abc.abstractmethod
    def label_set(self) -> Optional[LabelSet]:
        """The classes, when known before reading; None when they are discovered from the data."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A digest that changes when the source's content (probably) changed."""

    @abc.abstractmethod
    def read(self, root: Any, split: str) -> Any:
        """Beam steps under pipeline `root` yielding the `SourceRecord`s of one split."""

    @abc.abstractmethod
    def load(self, payload: Any) -> bytes:
        """The bytes stored in the example (encoded image or UTF-8 text) for a record's payload."""


def open_source(config: IngestConfig, location: str) -> Source:
    """Open the source `config.scheme` at `location` (spans already resolved)."""
    module_name, class_name = _IMPLEMENTATIONS[config.scheme]
    source_class = getattr(importlib.import_module(module_name), class_name)
    return source_class(config, location)


def require_path(path: str, scheme: str, kind: str = "path") -> None:
    """Raise a DataError naming the path when it does not exist (or is not a folder / file)."""
    checks = {"path": os.path.exists, "folder": os.path.isdir, "file": os.path.isfile}
    if not checks[kind](path):
        what = "does not exist" if not os.path.exists(path) else f"is not a {kind}"
        raise DataError(f"source path {path!r} {what}; {scheme} sources need an existing {kind}: '{scheme}:{_EXPECTED[scheme]}'")


def file_fingerprint(paths: Iterable[str], root: str) -> str:
    """SHA-256 over the sorted (path relative to root, size, mtime) of files."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = os.stat(path)
        digest.update(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def require_readable(paths: Iterable[str], where: str) -> None:
    """DataError listing the files of `paths` this process cannot read (checked on the driver, before any work)."""
    unreadable = [path for path in paths if not os.access(path, os.R_OK)]
    if unreadable:
        listed = ", ".join(repr(path) for path in unreadable[:_MAX_LISTED]) + (", ..." if len(unreadable) > _MAX_LISTED else "")
        raise DataError(f"{len(unreadable)} file(s) in {where} cannot be read by this user: {listed}; "
                        "fix their permissions (chmod a+r) or remove them")


def read_file_bytes(path: str) -> bytes:
    """A file's bytes (called inside Beam); a file that vanished or cannot be read is a DataError naming it."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise in_dofn(DataError(f"file {path!r} was listed by ingest but no longer exists; do not change a source "
                                "while it is ingested")) from None
    except OSError as error:
        raise in_dofn(DataError(f"file {path!r} cannot be read: {error.strerror}; fix its permissions or remove "
                                "it from the source")) from None
