"""Pusher: ship a blessed model into a versioned serving directory.

Layout (TF Serving's): `<serving_dir>/<version>/saved_model.pb ...`, versions
1, 2, 3, ... A push copies the model into a hidden temporary folder inside
`serving_dir` and renames it to the next version number, so a model server
watching the folder never sees a half-copied version (it ignores names that
are not numbers). Every push appends one JSON line to
`<serving_dir>/push_history.jsonl`: version, time, source model and the
blessing that allowed it. The pusher needs no TensorFlow: it checks the
evaluator's blessing record and moves files.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import uuid
from typing import Any

from tlpipe.models.artifacts import read_json
from tlpipe.models.progress import log
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.pusher.production import latest_pushed_model, pushed_versions
from tlpipe.models.errors import ModelError, NotBlessedError

HISTORY_FILE = "push_history.jsonl"
SAVED_MODEL_FILE = "saved_model.pb"


def run_pusher(config: PusherConfig, model_dir: str, blessing_path: str, serving_dir: str) -> dict[str, Any]:
    """Copy `model_dir` to `<serving_dir>/<next version>/` if `blessing_path` blesses it.

    Raises NotBlessedError when the blessing record is missing, says "not
    blessed", or blesses another model; ModelError when `model_dir` is not a
    SavedModel or cannot be copied (nothing is left behind in `serving_dir`).
    Returns the push record that was appended to the history.
    """
    config.validate()
    blessing = _check_blessing(model_dir, blessing_path)
    if not os.path.isfile(os.path.join(model_dir, SAVED_MODEL_FILE)):
        raise ModelError(f"cannot push {model_dir!r}: it is not a SavedModel (no {SAVED_MODEL_FILE} inside)")
    serving_dir = os.path.abspath(serving_dir)
    os.makedirs(serving_dir, exist_ok=True)

    version, version_dir = _copy_as_new_version(model_dir, serving_dir)
    removed = _prune(serving_dir, config.keep_versions)
    record = {
        "version": version,
        "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "serving_model_dir": version_dir,
        "source_model_dir": os.path.abspath(model_dir),
        "blessing": _blessing_summary(blessing, blessing_path),
        "removed_versions": removed,
    }
    _append_history(serving_dir, record)
    log(f"push: {blessing['candidate']!r} is serving version {version} at {version_dir}"
        + (f" (removed old versions {removed})" if removed else ""))
    return record


def read_push_history(serving_dir: str) -> list[dict[str, Any]]:
    """Every push recorded in `serving_dir`, oldest first."""
    path = os.path.join(serving_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _check_blessing(model_dir: str, blessing_path: str) -> dict[str, Any]:
    """The blessing record, if it blesses exactly `model_dir`; NotBlessedError otherwise."""
    if not os.path.isfile(blessing_path):
        raise NotBlessedError(
            f"cannot push {model_dir!r}: no blessing record at {blessing_path!r}; "
            "run the evaluator first (it writes blessing.json into its output folder)"
        )
    blessing = read_json(blessing_path)
    report = blessing.get("report", os.path.dirname(blessing_path))
    if not blessing.get("blessed"):
        raise NotBlessedError(
            f"cannot push {model_dir!r}: the evaluator did not bless it. "
            f"Why: {blessing.get('reason', 'no reason recorded')} See the report: {report}"
        )
    blessed_dir = blessing.get("candidate_model_dir") or ""
    if os.path.realpath(blessed_dir) != os.path.realpath(model_dir):
        raise NotBlessedError(
            f"cannot push {model_dir!r}: the blessing at {blessing_path!r} blesses "
            f"{blessing.get('candidate')!r} ({blessed_dir!r}), a different model; push that one, "
            f"or evaluate this one. See the report: {report}"
        )
    return blessing


def _copy_as_new_version(model_dir: str, serving_dir: str) -> tuple[int, str]:
    """Copy into a hidden temp folder, then rename it to the next free version number."""
    tmp_dir = os.path.join(serving_dir, f".push-tmp-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(model_dir, tmp_dir)
    except (OSError, shutil.Error) as error:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise ModelError(f"cannot push {model_dir!r}: copying it into {serving_dir!r} failed: {error}") from error
    while True:
        versions = pushed_versions(serving_dir)
        version = versions[-1] + 1 if versions else 1
        version_dir = os.path.join(serving_dir, str(version))
        try:
            os.mkdir(version_dir)  # claims the number; a concurrent pusher gets FileExistsError
        except FileExistsError:
            continue
        os.replace(tmp_dir, version_dir)  # replaces the empty claimed folder in one step
        return version, version_dir


def _prune(serving_dir: str, keep_versions: int) -> list[int]:
    """Delete all but the newest `keep_versions` versions (0 keeps all); returns what was removed."""
    versions = pushed_versions(serving_dir)
    if keep_versions == 0 or len(versions) <= keep_versions:
        return []
    removed = versions[:-keep_versions]
    for version in removed:
        # Rename first so a model server stops seeing the version at once, then delete.
        doomed = os.path.join(serving_dir, f".removing-{version}-{uuid.uuid4().hex[:8]}")
        os.rename(os.path.join(serving_dir, str(version)), doomed)
        shutil.rmtree(doomed)
    return removed


def _blessing_summary(blessing: dict[str, Any], blessing_path: str) -> dict[str, Any]:
    """What the history keeps of the blessing: which model, why, its numbers, where to read more."""
    candidate = blessing.get("candidates", {}).get(blessing.get("candidate"), {})
    return {
        "path": os.path.abspath(blessing_path),
        "candidate": blessing.get("candidate"),
        "reason": blessing.get("reason"),
        "accuracy": candidate.get("accuracy"),
        "report": blessing.get("report"),
    }


def _append_history(serving_dir: str, record: dict[str, Any]) -> None:
    """Append one line in a single write, flushed to disk."""
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(os.path.join(serving_dir, HISTORY_FILE), "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
