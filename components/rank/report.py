"""The ranking as people read it: a Markdown table, and an HTML page with a bar chart per score.

Scores differ in scale (LogME is a log-likelihood per example, H-score is at
most classes - 1, k-NN accuracy a fraction), so the chart has one panel per
score rather than one axis for all; the recommended candidate's bars stand out.
"""

from __future__ import annotations

import html
import os
from typing import Any, Sequence

RANK_MD = "rank.md"
RANK_HTML = "rank.html"
RANK_PNG = "rank.png"

_HELP = {
    "logme": "LogME: evidence of a Bayesian linear model on the features, per example (You et al. 2021)",
    "h_score": "H-score: between-class share of the feature covariance, at most classes - 1 (Bao et al. 2019)",
    "regularized_h_score": "regularized H-score: H-score with a shrunk covariance, ranks even with fewer examples "
                           "than dimensions (Ibrahim et al. 2022)",
    "knn_accuracy": "k-NN accuracy: cross-validated nearest-neighbour accuracy on the features",
    "leep": "LEEP: log-likelihood of the labels through the source classifier (Nguyen et al. 2020)",
    "nce": "NCE: minus the conditional entropy of the labels given the source prediction (Tran et al. 2019)",
}


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _rows(ranking: dict[str, Any], scores: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "candidate", *scores, "features s", "total s", "status"]
    rows = []
    for result in ranking["candidates"]:
        status = result["status"] if result["error"] is None else f"{result['status']}: {result['error']}"
        if result["candidate"] == ranking["recommended"]:
            status += " (recommended)"
        rows.append([
            _cell(result["rank"]), result["candidate"], *(_cell(result["scores"].get(name)) for name in scores),
            _cell(result["seconds"].get("features")), _cell(result["seconds"].get("total")), status,
        ])
    return header, rows


def markdown(ranking: dict[str, Any], scores: Sequence[str]) -> str:
    """The ranking as a Markdown document: recommendation, table, what the scores mean."""
    header, rows = _rows(ranking, scores)
    lines = [
        "# Candidate modules ranked by transferability", "",
        f"{ranking['num_examples']} labelled examples of {ranking['num_classes']} classes; ranked by "
        f"`{ranking['select']}`.", "",
        f"**Recommended: {ranking['recommended'] or 'none'}** ({ranking['reason']})", "",
        "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines += ["", *(f"- {_HELP[name]}" for name in scores), ""]
    return "\n".join(lines)


def _html(ranking: dict[str, Any], scores: Sequence[str], chart: bool) -> str:
    header, rows = _rows(ranking, scores)
    table = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>\n" + "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    help_items = "".join(f"<li>{html.escape(_HELP[name])}</li>" for name in scores)
    figure = f'<p><img src="{RANK_PNG}" alt="scores per candidate"></p>' if chart else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>tlpipe rank</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        "<h1>Candidate modules ranked by transferability</h1>"
        f"<p>{ranking['num_examples']} labelled examples of {ranking['num_classes']} classes; ranked by "
        f"<code>{html.escape(ranking['select'])}</code>.</p>"
        f"<p><strong>Recommended: {html.escape(ranking['recommended'] or 'none')}</strong> "
        f"({html.escape(ranking['reason'])})</p>"
        f"<table>\n{table}\n</table>{figure}<ul>{help_items}</ul></body></html>\n"
    )


def _chart(ranking: dict[str, Any], scores: Sequence[str], path: str) -> bool:
    """One horizontal bar panel per score present; False when no candidate has a score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [name for name in scores if any(name in r["scores"] for r in ranking["candidates"])]
    scored = [r for r in ranking["candidates"] if r["scores"]]
    if not present or not scored:
        return False
    names = [r["candidate"] if len(r["candidate"]) <= 32 else "..." + r["candidate"][-29:] for r in scored]
    figure, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present) + 2, 0.45 * len(scored) + 1.5),
                                squeeze=False)
    for axis, name in zip(axes[0], present):
        values = [r["scores"].get(name, float("nan")) for r in scored]
        colours = ["tab:orange" if r["candidate"] == ranking["recommended"] else "tab:blue" for r in scored]
        axis.barh(range(len(scored)), values, color=colours)
        axis.set_yticks(range(len(scored)))
        axis.set_yticklabels(names if axis is axes[0][0] else [""] * len(scored))
        axis.invert_yaxis()
        axis.set_title(name)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def write_report(ranking: dict[str, Any], output_dir: str, *, scores: Sequence[str]) -> None:
    """Write rank.md, rank.png (when something was scored) and rank.html into `output_dir`."""
    with open(os.path.join(output_dir, RANK_MD), "w", encoding="utf-8") as handle:
        handle.write(markdown(ranking, scores))
    chart = _chart(ranking, scores, os.path.join(output_dir, RANK_PNG))
    with open(os.path.join(output_dir, RANK_HTML), "w", encoding="utf-8") as handle:
        handle.write(_html(ranking, scores, chart))
