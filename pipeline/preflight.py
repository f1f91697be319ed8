"""Checks before any work: can the run write where it must, and is its data there?

A run that trains for an hour and then cannot write its serving folder has
wasted the hour. So before the first step, `preflight` checks, in a moment and
without reading any data:

- the pipeline root, the folders the runner keeps under it (records, work,
  kfp's and in-process runs: a file in their place is named), the serving folder and (when the source feature extractor
  is still to be published) the module folder can be written: a probe file is
  created and removed in the folder, or, for a folder that does not exist yet,
  in its nearest existing parent (a file in the way is reported as such);
- a `trainer.handle` that is a local path is a SavedModel folder, and not a
  model tlpipe exported for serving (a classifier, not a feature vector);
- the data source exists: the folder (idx, image_folder), the file (csv), a
  file matching the glob (tfrecord), the TFDS data_dir when one is set, and
  for `{SPAN}` sources at least one span.

Each failure is a ConfigError naming the config key, the path and the reason,
raised before anything is written.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import uuid
from typing import Optional, Sequence

from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.spans import resolve_span
from tlpipe.models.plumbing.errors import ConfigError, DataError
from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE, SERVING_METADATA_FILE
from tlpipe.pipeline.config import PipelineConfig

_PROBE_PREFIX = ".tlpipe-preflight-"


def preflight(config: PipelineConfig, *, root: str, serving_dir: str, module_dir: str,
              run_folders: Sequence[str] = (), source_uri: str = "", publish_module: bool = False,
              transfer: bool = True) -> None:
    """Check the run's folders and data sources (see the module docstring); ConfigError on the first problem.

    The folders are the runner's absolute paths (`run_folders`: those it keeps under
    the root, checked as `pipeline.root`); `source_uri` a run-time override of
    `ingest.source`; `publish_module` when the source module must still be pre-trained
    and published (its folder written, its source data read); `transfer` when the
    transfer pipeline runs (its serving folder written, its data read).
    """
    require_writable(root, "pipeline.root")
    for folder in run_folders:
        require_writable(folder, "pipeline.root")
    if publish_module:
        require_writable(module_dir, "source.module_dir")
        require_source(config.source.ingest, "source.ingest.source")
    if transfer:
        require_writable(serving_dir, "pusher.serving_dir")
        if config.trainer.handle:
            require_module(config.trainer.handle, "trainer.handle")
        ingest = config.ingest
        if source_uri and source_uri != ingest.source:
            ingest = dataclasses.replace(ingest, source=source_uri)
        require_source(ingest, "ingest.source")


def require_writable(folder: str, key: str) -> None:
    """ConfigError naming `key` unless a file can be created in `folder` (or its nearest existing parent)."""
    folder = os.path.abspath(folder)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "it is a file" if existing == folder else f"{existing!r} on its path is a file"
        raise ConfigError(key, folder, f"a folder this user can write; {what}, not a folder")
    probe = os.path.join(existing, f"{_PROBE_PREFIX}{uuid.uuid4().hex[:8]}")
    try:
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as error:
        where = "" if existing == folder else f" (it does not exist yet; its nearest existing parent is {existing!r})"
        raise ConfigError(key, folder, f"a folder this user can write; writing there failed{where}: "
                                       f"{error.strerror}") from None


def require_module(handle: str, key: str) -> None:
    """ConfigError naming `key` unless a local-path handle is a feature-vector SavedModel (URLs are not fetched)."""
    if "://" in handle:
        return
    folder = os.path.abspath(os.path.expanduser(handle))
    allowed = "a TF-Hub handle (https://...), or a folder holding a feature-vector module (a SavedModel)"
    if not os.path.isdir(folder):
        raise ConfigError(key, handle, f"{allowed}; {folder!r} " + ("is a file" if os.path.exists(folder)
                                                                      else "does not exist"))
    if not any(os.path.isfile(os.path.join(folder, name)) for name in (SAVED_MODEL_FILE, SAVED_MODEL_FILE + "txt")):
        raise ConfigError(key, handle, f"{allowed}; {folder!r} has no {SAVED_MODEL_FILE} (a SavedModel folder "
                                       "holds it beside variables/)")
    if os.path.isfile(os.path.join(folder, SERVING_METADATA_FILE)):
        raise ConfigError(key, handle, f"{allowed}; {folder!r} is a classifier tlpipe exported for serving "
                                       f"({SERVING_METADATA_FILE}), not a feature vector: give the module it was "
                                       f"trained on (its {SERVING_METADATA_FILE} names it under config.handle)")


def require_source(ingest: IngestConfig, key: str) -> None:
    """ConfigError naming `key` unless the data behind `ingest.source` is there (not read, only found)."""
    scheme, location = ingest.scheme, ingest.location
    if scheme == "tfds":
        if ingest.data_dir and not os.path.isdir(ingest.data_dir):
            raise ConfigError(key.rsplit(".", 1)[0] + ".data_dir", ingest.data_dir,
                              "an existing folder holding the prepared TFDS dataset (tlpipe does not download)")
        return
    try:
        location = resolve_span(location, ingest.span).location
    except DataError as error:
        raise ConfigError(key, ingest.source, f"a source whose data exists: {error}") from None
    problem: Optional[str] = None
    if scheme in ("idx", "image_folder") and not os.path.isdir(location):
        problem = "is not a folder" if os.path.exists(location) else "does not exist"
    elif scheme == "csv" and not os.path.isfile(location):
        problem = "is not a file" if os.path.exists(location) else "does not exist"
    elif scheme == "tfrecord" and not (os.path.isdir(location) or glob.glob(location)):
        problem = "matches no file"
    if problem:
        raise ConfigError(key, ingest.source, f"a {scheme} source whose data exists: {location!r} {problem}")
