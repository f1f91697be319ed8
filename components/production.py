"""Which model is in production, as a record the evaluator and pusher can compare.

The evaluator compares the candidate with the model now served; the pusher must
only push if that model is still the one served when it pushes (another run may
have pushed meanwhile). Both sides describe production the same way: the highest
version in the serving folder and a fingerprint of its files, so "still the
same" means same version number and same bytes. No TensorFlow needed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Optional

from tlpipe.models.plumbing.layout import EDGE_DIR, SAVED_MODEL_FILE

_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class ProductionModel:
    """The served model: None fields when nothing is in production."""

    version: Optional[int]
    path: Optional[str]
    fingerprint: Optional[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ProductionModel":
        """The record from `to_dict`; None or {} means "nothing was in production"."""
        data = data or {}
        version = data.get("version")
        return cls(
            version=int(version) if version is not None else None,
            path=data.get("path"),
            fingerprint=data.get("fingerprint"),
        )

    def same_model(self, other: "ProductionModel") -> bool:
        """True when both name the same version with the same content (paths may differ)."""
        return self.version == other.version and self.fingerprint == other.fingerprint

    def holds(self, model_dir: str) -> bool:
        """True when the model in production has exactly the files of `model_dir` (a rerun's same model)."""
        return self.fingerprint is not None and fingerprint_dir(model_dir) == self.fingerprint

    def describe(self) -> str:
        """A short phrase for messages: 'version 3 (sha256 1a2b3c4d...)' or 'nothing'."""
        if self.version is None:
            return "nothing (empty serving folder)"
        return f"version {self.version} (sha256 {(self.fingerprint or '')[:12]}...)"


def describe_production(serving_dir: str) -> ProductionModel:
    """The highest pushed version in `serving_dir`, its path and fingerprint."""
    path = latest_pushed_model(serving_dir)
    if path is None:
        return ProductionModel(version=None, path=None, fingerprint=None)
    return ProductionModel(version=int(os.path.basename(path)), path=path, fingerprint=fingerprint_dir(path))


def pushed_versions(serving_dir: str) -> list[int]:
    """Complete versions in `serving_dir` (a folder named by its number holding a SavedModel), ascending.

    Anything else there (a stray file named like a number, an empty or junk
    version folder someone made) is not a version: it is never production and
    never pruned (`strangers` lists it), and a new version is numbered past it.
    """
    return sorted(int(name) for name in _numbered(serving_dir)
                  if os.path.isfile(os.path.join(serving_dir, name, SAVED_MODEL_FILE)))


def strangers(serving_dir: str) -> list[str]:
    """Entries of `serving_dir` named like a version that are not complete versions."""
    complete = {str(version) for version in pushed_versions(serving_dir)}
    return sorted((name for name in _numbered(serving_dir) if name not in complete), key=int)


def next_version(serving_dir: str) -> int:
    """The number of the next version: past every numbered entry, complete or not, so a push never collides."""
    return max((int(name) for name in _numbered(serving_dir)), default=0) + 1


def _numbered(serving_dir: str) -> list[str]:
    if not os.path.isdir(serving_dir):
        return []
    return [name for name in os.listdir(serving_dir) if name.isdigit()]


def latest_pushed_model(serving_dir: str) -> str | None:
    """The folder of the highest pushed version, or None when nothing was pushed yet."""
    versions = pushed_versions(serving_dir)
    return os.path.join(os.path.abspath(serving_dir), str(versions[-1])) if versions else None


def fingerprint_dir(folder: str) -> str:
    """sha256 over every file under `folder`: its relative path, size and contents, in sorted order."""
    digest = hashlib.sha256()
    for relative in _files_under(folder):
        full = os.path.join(folder, relative)
        digest.update(relative.replace(os.sep, "/").encode("utf-8") + b"\0")
        digest.update(str(os.path.getsize(full)).encode("ascii") + b"\0")
        with open(full, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _files_under(folder: str) -> list[str]:
    """The model's files: all of them but a pushed version's edge exports (derived from the SavedModel)."""
    relatives = []
    for root, dirs, files in os.walk(folder):
        if root == folder and EDGE_DIR in dirs:
            dirs.remove(EDGE_DIR)
        dirs.sort()
        for name in files:
            relatives.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(relatives)
