"""The few lines a person reads at the end of a run."""

from __future__ import annotations

import os

from tlpipe.components.evaluator.report import gain_lines
from tlpipe.components.evaluator.spec import EVALUATION
from tlpipe.components.pusher.spec import PUSH_FILE, PUSHED
from tlpipe.models.plumbing.layout import SUMMARY_FILE
from tlpipe.pipeline.local_runner import RunResult


def _accuracy(entry: dict) -> str:
    accuracy = entry["accuracy"]
    interval = ""
    if accuracy.get("lower") is not None and accuracy.get("upper") is not None:
        interval = f" [{accuracy['lower']:.3f}, {accuracy['upper']:.3f}]"
    return f"{accuracy['value']:.3f}{interval}"


def headline(result: RunResult) -> str:
    """Test accuracy of every model with its interval, the blessing, the pushed version, the report."""
    summary = result.read(EVALUATION, SUMMARY_FILE)
    push = result.read(PUSHED, PUSH_FILE)
    confidence = summary.get("confidence", {}).get("level", 0.95)
    lines = [f"test accuracy on {summary['num_examples']} examples ({confidence:.0%} interval):"]
    for name, entry in summary["models"].items():
        lines.append(f"  {name:<20} {_accuracy(entry)}  ({entry['role']})")
    blessing = summary["blessing"]
    if blessing["blessed"]:
        lines.append(f"blessed: {blessing['candidate']}")
    else:
        lines.append("production unchanged" if blessing.get("unchanged") else "not blessed")
    lines.append(f"  {blessing['reason']}")
    lines += gain_lines(summary)
    if push["pushed"]:
        lines.append(f"pushed: version {push['version']} -> {push['serving_model_dir']}")
    else:
        lines.append(f"pushed: nothing ({push['reason']})" if push.get("refused") else "pushed: nothing")
    lines.append(f"report: {os.path.join(result.artifacts['evaluation'], 'report', 'index.html')}")
    lines.append(f"run record: {result.record_dir}")
    return "\n".join(lines)
