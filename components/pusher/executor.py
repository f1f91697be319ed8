"""Pusher: ship a blessed model into a versioned serving directory, compare-and-push.

Layout (TF Serving's): `<serving_dir>/<version>/saved_model.pb ...`, versions
1, 2, 3, ... TF Serving serves the highest version, so the push must never put
a model on top that was judged against an older production model. The push is
one decision under an exclusive lock (`fcntl.flock` on `<serving_dir>/.push.lock`):

1. describe production now (highest version and a fingerprint of its files);
2. if it is not the model the evaluator compared the candidate with (the
   blessing's "production" record, absent = an empty serving folder), refuse:
   another run pushed meanwhile, and this blessing says nothing about beating it;
3. otherwise copy the model into a hidden temporary folder inside `serving_dir`
   and rename it to the next version number, so a model server watching the
   folder never sees a half-copied version (it ignores names that are not numbers).

Edge exports (`pusher.formats` beyond `saved_model`) are not converted here:
the evaluator converted and checked them (components/evaluator/edge_check.py)
and its blessing lists each file with its sha256. The pusher copies exactly
those files, after checking that the formats are the ones asked for and the
bytes the ones checked, into `<version>/edge/` inside the same temporary
folder, so the SavedModel and its edge files appear in one rename. A version's
fingerprint is its SavedModel's (`components/production.py` leaves `edge/` out).

If the model now on top already has the candidate's exact files (the same
blessing's push was interrupted after its rename, or another run pushed the
identical model), nothing is copied and the push is recorded as that version,
so rerunning a killed push gives the same result as an uninterrupted one. The
lock also lets the pusher clear what a killed pusher left behind (hidden
temporary folders, a half-written history line) before it starts.

Every decision, pushed or refused, appends one JSON line to
`<serving_dir>/push_history.jsonl`. When the blessing's thresholds say the
evaluator did not compare with production (`compare_with_production: false`),
the production check is skipped: that blessing does not depend on production.
The pusher needs no TensorFlow: it checks the evaluator's blessing record and
moves files. The lock needs a file system with working `flock` (local disks;
not every network mount).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import uuid
from typing import Any, Iterator

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.models.plumbing.progress import log, note
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.production import (
    ProductionModel, describe_production, fingerprint_dir, latest_pushed_model, next_version, pushed_versions,
    strangers,
)
from tlpipe.models.plumbing.layout import EDGE_DIR, EDGE_RECORD_FILE, SAVED_MODEL_FILE
from tlpipe.models.plumbing.errors import ModelError, NotBlessedError

HISTORY_FILE = "push_history.jsonl"
LOCK_FILE = ".push.lock"
PRODUCTION_KEY = "production"
_TMP_PREFIX = ".push-tmp-"
_REMOVING_PREFIX = ".removing-"

__all__ = ["HISTORY_FILE", "LOCK_FILE", "latest_pushed_model", "pushed_versions", "read_push_history",
           "run_pusher"]


def run_pusher(config: PusherConfig, model_dir: str, blessing_path: str, serving_dir: str) -> dict[str, Any]:
    """Push `model_dir` as the next version of `serving_dir` if `blessing_path` blesses it and
    production is still the model the evaluator compared it with.

    Raises NotBlessedError when the blessing record is missing, says "not
    blessed", or blesses another model; ModelError when `model_dir` is not a
    SavedModel or cannot be copied (nothing is left behind in `serving_dir`).
    Returns the decision appended to the history: `pushed` True with the
    version, or False with `refused` and the `reason` (production moved on meanwhile).
    """
    config.validate()
    blessing = _check_blessing(model_dir, blessing_path)
    edge_files = _checked_edge_files(config, blessing, blessing_path)
    if not os.path.isfile(os.path.join(model_dir, SAVED_MODEL_FILE)):
        raise ModelError(f"cannot push {model_dir!r}: it is not a SavedModel (no {SAVED_MODEL_FILE} inside)")
    serving_dir = os.path.abspath(serving_dir)
    compared_with = ProductionModel.from_dict(blessing.get(PRODUCTION_KEY))
    check_production = blessing.get("thresholds", {}).get("compare_with_production", True) is not False
    try:
        candidate_fingerprint = fingerprint_dir(model_dir)
    except OSError as error:
        raise ModelError(f"cannot push {model_dir!r}: a file of it cannot be read ({error})") from None
    summary = _blessing_summary(blessing, blessing_path)

    with _serving_lock(serving_dir):
        _clear_leftovers(serving_dir)
        production = describe_production(serving_dir)
        record: dict[str, Any] = {
            "decided_at": _now(),
            "source_model_dir": os.path.abspath(model_dir),
            "fingerprint": candidate_fingerprint,
            "blessing": summary,
            "production_compared": compared_with.to_dict(),
            "production_found": production.to_dict(),
        }
        if production.version is not None and production.fingerprint == candidate_fingerprint:
            return _record_already_serving(serving_dir, production, record, blessing)
        if check_production and not production.same_model(compared_with):
            reason = (
                f"refused: production moved on since the evaluation. The evaluator compared "
                f"{blessing.get('candidate')!r} with {compared_with.describe()}, but {serving_dir} now serves "
                f"{production.describe()}. Pushing would put a model on top that was never compared with it; "
                f"run the pipeline again to evaluate it against the new production model."
            )
            record.update(pushed=False, refused=True, reason=reason)
            _append_history(serving_dir, record)
            log(f"push: {reason}")
            return record
        stray = strangers(serving_dir)
        if stray:
            note(f"push: ignoring {', '.join(stray)} in {serving_dir}: named like versions but not complete "
                f"versions (no {SAVED_MODEL_FILE}); remove them if nothing else needs them")
        version, version_dir = _copy_as_new_version(model_dir, serving_dir, edge_files)
        record.update(pushed=True, version=version, serving_model_dir=version_dir, pushed_at=record["decided_at"],
                      edge_formats=config.edge_formats,
                      removed_versions=_prune(serving_dir, config.keep_versions))
        _append_history(serving_dir, record)
    log(f"push: {blessing['candidate']!r} is serving version {version} at {version_dir}"
        + (f" (removed old versions {record['removed_versions']})" if record["removed_versions"] else ""))
    return record


def read_push_history(serving_dir: str) -> list[dict[str, Any]]:
    """Every push decision recorded in `serving_dir`, oldest first (a half-written last line is skipped)."""
    path = os.path.join(serving_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


@contextlib.contextmanager
def _serving_lock(serving_dir: str) -> Iterator[None]:
    """Hold the exclusive push lock of `serving_dir` (created if needed); released on exit or death."""
    try:
        os.makedirs(serving_dir, exist_ok=True)
        handle = open(os.path.join(serving_dir, LOCK_FILE), "a", encoding="utf-8")
    except OSError as error:
        raise ModelError(f"cannot push into {serving_dir!r}: {error.strerror}; "
                         "pusher.serving_dir must be a folder this user can write") from None
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _clear_leftovers(serving_dir: str) -> None:
    """Remove what a killed pusher left: temporary copies, half-deleted versions, a partial history line.

    Only the lock holder creates these, so under the lock any that exist are stale.
    """
    for name in os.listdir(serving_dir):
        if name.startswith((_TMP_PREFIX, _REMOVING_PREFIX)):
            shutil.rmtree(os.path.join(serving_dir, name), ignore_errors=True)
    path = os.path.join(serving_dir, HISTORY_FILE)
    if os.path.isfile(path):
        with open(path, "rb+") as handle:
            text = handle.read()
            if text and not text.endswith(b"\n"):
                handle.truncate(text.rfind(b"\n") + 1)


def _record_already_serving(serving_dir: str, production: ProductionModel, record: dict[str, Any],
                            blessing: dict[str, Any]) -> dict[str, Any]:
    """The top version already holds the candidate's files: record it as the push, copy nothing."""
    earlier = [entry for entry in read_push_history(serving_dir)
               if entry.get("pushed") and entry.get("version") == production.version
               and entry.get("fingerprint") == production.fingerprint]
    if earlier:
        log(f"push: {blessing['candidate']!r} is already serving as version {production.version}")
        return earlier[-1]
    record.update(pushed=True, version=production.version, serving_model_dir=production.path,
                  pushed_at=record["decided_at"], removed_versions=[],
                  note=f"version {production.version} already held this model's exact files; nothing was copied")
    _append_history(serving_dir, record)
    log(f"push: {blessing['candidate']!r} is already serving as version {production.version}")
    return record


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


def _checked_edge_files(config: PusherConfig, blessing: dict[str, Any], blessing_path: str) -> list[str]:
    """The edge files (and their check record) to ship: those the evaluator checked, unchanged since.

    NotBlessedError when `pusher.formats` asks for formats the evaluator did not
    check, or a checked file is missing or differs from the bytes checked.
    """
    if not config.edge_formats:
        return []
    from tlpipe.components.evaluator.edge_check import file_sha256

    checked = blessing.get("edge") or {}
    if checked.get("formats") != config.edge_formats or not checked.get("passed"):
        raise NotBlessedError(
            f"cannot push {blessing.get('candidate')!r}: pusher.formats asks for edge formats "
            f"{config.edge_formats}, but the evaluator checked {checked.get('formats', [])}"
            f"{'' if checked.get('passed', True) else ' and blocked some'}; run the evaluator with the same "
            f"pusher.formats (the pipeline passes them to it). Received: formats {config.formats}")
    edge_dir = os.path.join(os.path.dirname(blessing_path), EDGE_DIR)
    paths = [os.path.join(edge_dir, EDGE_RECORD_FILE)]
    for name, entry in checked["files"].items():
        path = os.path.join(edge_dir, entry["file"])
        if not os.path.isfile(path) or file_sha256(path) != entry["sha256"]:
            raise NotBlessedError(f"cannot push {blessing.get('candidate')!r}: the {name} file the evaluator "
                                  f"checked is missing or changed since ({path}); run the evaluator again")
        paths.append(path)
    return paths


def _copy_as_new_version(model_dir: str, serving_dir: str, edge_files: list[str]) -> tuple[int, str]:
    """Copy the model (and its checked edge files into `edge/`) into a hidden temp folder, then rename it to the
    next version number (under the lock)."""
    tmp_dir = os.path.join(serving_dir, f"{_TMP_PREFIX}{uuid.uuid4().hex[:8]}")
    version = next_version(serving_dir)
    version_dir = os.path.join(serving_dir, str(version))
    try:
        shutil.copytree(model_dir, tmp_dir)
        if edge_files:
            os.makedirs(os.path.join(tmp_dir, EDGE_DIR))
        for path in edge_files:
            shutil.copy2(path, os.path.join(tmp_dir, EDGE_DIR, os.path.basename(path)))
        os.rename(tmp_dir, version_dir)  # one step: the version appears complete or not at all
    except (OSError, shutil.Error) as error:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise ModelError(f"cannot push {model_dir!r}: copying it into {serving_dir!r} as version {version} "
                         f"failed: {error}") from None
    return version, version_dir


def _prune(serving_dir: str, keep_versions: int) -> list[int]:
    """Delete all but the newest `keep_versions` versions (0 keeps all); returns what was removed."""
    versions = pushed_versions(serving_dir)
    if keep_versions == 0 or len(versions) <= keep_versions:
        return []
    removed = versions[:-keep_versions]
    for version in removed:
        # Rename first so a model server stops seeing the version at once, then delete.
        doomed = os.path.join(serving_dir, f"{_REMOVING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
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


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _append_history(serving_dir: str, record: dict[str, Any]) -> None:
    """Append one line in a single write, flushed to disk."""
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(os.path.join(serving_dir, HISTORY_FILE), "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
