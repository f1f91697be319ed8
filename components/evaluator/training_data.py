"""What data each evaluated model saw, in words, from the trainer's summary.json beside its exported model.

Why: a self-trained student and a plain fine-tuned model differ in the data
they learnt from (thousands of pseudo-labelled images against a few labels),
and the comparison is only honest when the report says so next to the numbers.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from tlpipe.models.plumbing.layout import SUMMARY_FILE
from tlpipe.models.plumbing.artifacts import read_json


def describe_training_data(model_dir: str) -> Optional[str]:
    """e.g. "50 labelled + 21,345 pseudo-labelled (label propagation ...) of 23,959 unlabelled; 50 eval (early
    stopping)"; None when the model does not come from a tlpipe trainer (no summary.json beside it)."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_dir)), SUMMARY_FILE)
    if not os.path.isfile(path):
        return None
    summary: dict[str, Any] = read_json(path)
    if "num_train" not in summary:
        return None
    start = "random initialisation" if summary.get("kind") == "baseline" else "the pre-trained module"
    seen = summary.get("self_training")
    if seen:
        labelled = (f"{seen['labelled_train']:,} labelled + {seen['pseudo_labelled']:,} pseudo-labelled of "
                    f"{seen['unlabeled_pool']:,} unlabelled ({seen.get('labeler', 'the teacher')})")
    else:
        labelled = f"{summary['num_train']:,} labelled"
    return f"{labelled}; {summary.get('num_eval', 0):,} eval examples for early stopping only; from {start}"
