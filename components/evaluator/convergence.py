"""How fast each model converged, measured from its training history.

A history is what the trainer writes to `history.json`: either the trainer's
record `{"entries": [...], "best": {...}, ...}` or a bare list of per-epoch
entries `{phase, epoch, step, loss, accuracy, val_loss, val_accuracy,
learning_rate}`, where `step` counts optimizer steps since the start of the
run (across phases). The model a run ends with is the one with the best eval
accuracy (the trainer restores it), so that is the "final" accuracy; a model
has converged at the first epoch whose eval accuracy reaches
`fraction` x final. Comparing strategies by these steps (and by the steps to
reach the baseline's level) measures the faster-convergence claim of transfer
learning on every run instead of assuming it.
"""

from __future__ import annotations

import os
from typing import Any

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.models.plumbing.errors import DataError

ENTRY_KEYS = ("phase", "step", "val_accuracy")


def load_history(path: str) -> dict[str, Any]:
    """The per-epoch entries and the final eval accuracy of one training run."""
    if not os.path.isfile(path):
        raise DataError(f"training history {path!r} does not exist; the trainer writes history.json beside the model")
    data = read_json(path)
    entries = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise DataError(f"training history {path!r} has no per-epoch entries (expected a list of "
                        f"{{{', '.join(ENTRY_KEYS)}, ...}} or the trainer's record with 'entries')")
    for entry in entries:
        missing = [key for key in ENTRY_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise DataError(f"training history {path!r}: epoch entry {entry!r} lacks {missing}")
    best = data.get("best") if isinstance(data, dict) else None
    final = best["val_accuracy"] if best else max(entry["val_accuracy"] for entry in entries)
    return {"entries": entries, "final_eval_accuracy": float(final)}


def first_step_reaching(entries: list[dict[str, Any]], target: float) -> int | None:
    """Training steps done when eval accuracy first reached `target`; None if it never did."""
    for entry in entries:
        if entry["val_accuracy"] >= target:
            return int(entry["step"])
    return None


def phase_boundaries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each phase with the step where it started and ended, in training order."""
    phases: list[dict[str, Any]] = []
    previous_step = 0
    for entry in entries:
        if not phases or phases[-1]["phase"] != entry["phase"]:
            phases.append({"phase": entry["phase"], "start_step": previous_step})
        phases[-1]["end_step"] = int(entry["step"])
        previous_step = int(entry["step"])
    return phases


def convergence_table(histories: dict[str, dict[str, Any]], baselines: list[str],
                      fraction: float) -> dict[str, dict[str, Any]]:
    """Per model: final eval accuracy, steps to `fraction` of it, and steps to each baseline's level.

    `histories` maps model names to `load_history` results; `baselines` names
    the from-scratch models among them.
    """
    table = {}
    for name, history in histories.items():
        entries, final = history["entries"], history["final_eval_accuracy"]
        table[name] = {
            "final_eval_accuracy": final,
            "target": fraction * final,
            "steps_to_target": first_step_reaching(entries, fraction * final),
            "total_steps": int(entries[-1]["step"]),
            "phases": phase_boundaries(entries),
            "steps_to_baseline_level": {
                baseline: first_step_reaching(entries, fraction * histories[baseline]["final_eval_accuracy"])
                for baseline in baselines if baseline in histories
            },
        }
    return table
