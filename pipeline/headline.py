"""The few lines a person reads at the end of a run."""

from __future__ import annotations

import os

from tlpipe.pipeline.local_runner import RunResult


def _interval(entry: dict) -> str:
    low, high = entry.get("ci_low"), entry.get("ci_high")
    return f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""


def headline(result: RunResult) -> str:
    """Test accuracy of every model with its interval, the blessing, the pushed version, the report."""
    summary = result.read("evaluation", "summary.json")
    push = result.read("pushed", "push.json")
    lines = ["test accuracy (95% interval):"]
    for name, entry in summary["models"].items():
        lines.append(f"  {name:<20} {entry['accuracy']:.3f}{_interval(entry)}")
    blessing = summary["blessing"]
    if blessing["blessed"]:
        lines.append(f"blessed: {blessing['candidate']} ({blessing['reason']})")
    else:
        lines.append(f"not blessed: {blessing['reason']}")
    lines.append(f"pushed: version {push['version']} -> {push['path']}" if push["pushed"] else "pushed: nothing")
    lines.append(f"report: {os.path.join(result.artifacts['evaluation'], 'report', 'index.html')}")
    lines.append(f"run record: {result.record_dir}")
    return "\n".join(lines)
