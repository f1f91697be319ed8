"""The files every evaluation writes, one way for the single-task and the multi-task evaluator.

Why a module: both evaluators write blessing.json, report/index.html,
summary.md and summary.json into their atomic output folder, in that order
(summary.json last: its presence means the evaluation completed), and both
summaries open with the same description of the run (which data, which
split, when, which intervals). Each evaluator kept its own copy of the two,
and the copies had begun to drift.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Callable

from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.report import INDEX_FILE, REPORT_DIR
from tlpipe.components.evaluator.spec import BLESSING_FILE
from tlpipe.models.plumbing.artifacts import write_json, write_text
from tlpipe.models.plumbing.layout import SUMMARY_FILE, SUMMARY_MD


def evaluation_paths(output_dir: str) -> dict[str, str]:
    """Where an evaluation's files will be once its output folder is in place."""
    return {
        "output_dir": output_dir,
        "blessing": os.path.join(output_dir, BLESSING_FILE),
        "report": os.path.join(output_dir, REPORT_DIR, INDEX_FILE),
        "summary_json": os.path.join(output_dir, SUMMARY_FILE),
        "summary_md": os.path.join(output_dir, SUMMARY_MD),
    }


def summary_header(config: EvaluatorConfig, examples_dir: str, split: str, num_examples: int) -> dict[str, Any]:
    """The entries every evaluation summary opens with."""
    return {
        "examples_dir": os.path.abspath(examples_dir),
        "split": split,
        "num_examples": num_examples,
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "confidence": {"level": config.confidence_level, "method": config.confidence_interval_method},
    }


def write_evaluation(tmp_dir: str, summary: dict[str, Any], *, markdown: str,
                     write_report: Callable[[str], None]) -> None:
    """Write the blessing, the report (`write_report(report_dir)`), summary.md and, last, summary.json."""
    write_json(os.path.join(tmp_dir, BLESSING_FILE), summary["blessing"])
    write_report(os.path.join(tmp_dir, REPORT_DIR))
    write_text(os.path.join(tmp_dir, SUMMARY_MD), markdown)
    write_json(os.path.join(tmp_dir, SUMMARY_FILE), summary)
