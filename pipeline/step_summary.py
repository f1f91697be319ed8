"""What steps produced, in a few words: a step's key number for its end line, a run's outcome for its record.

A step's output folder is recognised by the files its component writes:
examples (ingest and transform metadata), a trained model's summary, the
evaluation's summary, the push record.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from tlpipe.components.evaluator.spec import EVALUATION
from tlpipe.components.pusher.spec import PUSH_FILE, PUSHED
from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.models.plumbing.example_format import METADATA_FILE, UNLABELED_SPLIT
from tlpipe.models.plumbing.layout import SUMMARY_FILE


def _read(folder: str, name: str) -> Optional[dict[str, Any]]:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    data = read_json(path)
    return data if isinstance(data, dict) else None


def _examples(metadata: dict[str, Any]) -> str:
    """Ingest's counts; transform's own (its metadata carries ingest's) once it has set bad records aside."""
    counts = {split: sum(per_class.values()) for split, per_class in metadata.get("counts", {}).items()}
    unlabeled = (metadata.get("unlabeled") or {}).get("num_examples")
    transformed = (metadata.get("transform") or {}).get("examples")
    if transformed:
        counts = {split: transformed.get(split, 0) for split in counts}
        unlabeled = transformed.get(UNLABELED_SPLIT)
    splits = ", ".join(f"{split} {count}" for split, count in counts.items())
    pool = f" + {unlabeled} unlabelled" if unlabeled else ""
    return f"{sum(counts.values())} examples ({splits}){pool}, {metadata.get('num_classes', '?')} classes"


def _evaluation(summary: dict[str, Any]) -> str:
    blessing = summary["blessing"]
    if not blessing.get("blessed"):
        return "production unchanged" if blessing.get("unchanged") else "not blessed"
    candidate = blessing.get("candidate")
    accuracy = summary.get("models", {}).get(candidate, {}).get("accuracy", {}).get("value")
    return f"blessed: {candidate}" + (f" (test accuracy {accuracy:.3f})" if accuracy is not None else "")


def artifact_summary(folder: str) -> str:
    """A few words on what `folder` holds ('' when it is not a folder tlpipe recognises)."""
    if not os.path.isdir(folder):
        return ""
    push = _read(folder, PUSH_FILE)
    if push is not None:
        return f"pushed version {push['version']}" if push.get("pushed") else "nothing pushed"
    metadata = _read(folder, METADATA_FILE)
    if metadata is not None and "counts" in metadata:
        return _examples(metadata)
    summary = _read(folder, SUMMARY_FILE)  # the evaluator's (with the blessing) or a trainer's
    if summary is not None and "blessing" in summary:
        return _evaluation(summary)
    if summary is not None and summary.get("eval_accuracy") is not None:
        strategy = f"{summary['strategy']}: " if summary.get("strategy") else ""
        return f"{strategy}eval accuracy {summary['eval_accuracy']:.3f}"
    return ""


REPORT_PAGE = os.path.join("report", "index.html")


def run_outcome(artifacts: dict[str, str]) -> dict[str, Any]:
    """A finished run's outcome from its steps' folders: test accuracy per model, blessing, push, report."""
    outcome: dict[str, Any] = {}
    evaluation = artifacts.get(EVALUATION, "")
    summary = _read(evaluation, SUMMARY_FILE) if evaluation else None
    if summary is not None and "blessing" in summary:
        outcome["accuracy"] = {name: {"value": entry["accuracy"]["value"], "role": entry.get("role")}
                               for name, entry in summary.get("models", {}).items()}
        outcome["blessed"] = summary["blessing"].get("candidate") if summary["blessing"].get("blessed") else None
        if os.path.isfile(os.path.join(evaluation, REPORT_PAGE)):
            outcome["report"] = os.path.join(evaluation, REPORT_PAGE)
    push = _read(artifacts[PUSHED], PUSH_FILE) if artifacts.get(PUSHED) else None
    if push is not None:
        outcome["pushed_version"] = push.get("version") if push.get("pushed") else None
    return outcome
