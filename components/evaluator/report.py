"""The evaluation report a person reads: `report/index.html` with PNG plots, and `summary.md`.

Both render the same tables, built once from the evaluation summary (see
`tlpipe.components.evaluator.executor`): the verdict and its reasons, every
model's test accuracy with its interval, the comparisons behind the blessing,
per-class accuracy, the convergence table (steps each strategy needed to
reach its target eval accuracy, next to the baseline), where each
candidate's gain came from (components/evaluator/pairing.py), the data
coverage (examples per class and split, components/ingest/coverage.py), when
domain-adaptation models were evaluated, the domain shift before and after,
and, when edge formats were checked, one row per format (file size,
accuracy, paired difference to the SavedModel, latency per image).
"""

from __future__ import annotations

import html
import os
from typing import Any

from tlpipe.components.evaluator import plots
from tlpipe.components.evaluator.shift import before_text, shift_table
from tlpipe.components.evaluator.spec import BLESSING_FILE
from tlpipe.components.ingest.coverage import coverage_table
from tlpipe.models.plumbing.layout import INDEX_FILE, SUMMARY_FILE, SUMMARY_MD

REPORT_DIR = "report"
ACCURACY_PNG = "accuracy.png"
PER_CLASS_PNG = "per_class.png"
CONFUSION_PNG = "confusion_matrices.png"
TRAINING_PNG = "training_curves.png"
CONVERGENCE_PNG = "convergence.png"

Table = tuple[list[str], list[list[str]]]


def write_report(report_dir: str, summary: dict[str, Any], histories: dict[str, dict[str, Any]]) -> None:
    """Draw the plots and write `index.html` into `report_dir`.

    `histories` maps model names to `convergence.load_history` results (may be empty).
    """
    os.makedirs(report_dir, exist_ok=True)
    models = summary["models"]
    labels = summary["label_names"]
    figures = [
        (ACCURACY_PNG, "Test accuracy per model",
         lambda p: plots.plot_accuracy(p, models, summary["thresholds"]["min_accuracy"],
                                       summary["confidence"]["level"])),
        (PER_CLASS_PNG, "Per-class accuracy",
         lambda p: plots.plot_per_class(p, models, summary["classes_in_split"])),
        (CONFUSION_PNG, "Confusion matrices (test split)",
         lambda p: plots.plot_confusion_matrices(p, models, labels)),
    ]
    convergence = summary["convergence"]
    if convergence:
        figures += [
            (TRAINING_PNG, "Training curves (shaded: second phase)",
             lambda p: plots.plot_training_curves(p, histories, {n: convergence[n]["phases"] for n in histories})),
            (CONVERGENCE_PNG, "Convergence: eval accuracy against training steps",
             lambda p: plots.plot_convergence(p, histories, convergence, summary["convergence_fraction"])),
        ]
    for file_name, _, draw in figures:
        draw(os.path.join(report_dir, file_name))
    with open(os.path.join(report_dir, INDEX_FILE), "w", encoding="utf-8") as handle:
        handle.write(render_html(summary, [(name, title) for name, title, _ in figures]))


def headline(summary: dict[str, Any]) -> str:
    """One line: the verdict and every model's test accuracy with its interval."""
    blessing = summary["blessing"]
    verdict = f"BLESSED '{blessing['candidate']}'" if blessing["blessed"] else "NOT BLESSED"
    scores = "; ".join(f"{name} {_interval(model['accuracy'])}" for name, model in summary["models"].items())
    return f"{verdict}. Test accuracy ({summary['confidence']['level']:.0%} interval): {scores}"


def gain_lines(summary: dict[str, Any]) -> list[str]:
    """Where the gain of the blessed candidate (else the most accurate one) came from, one paired difference
    a line; then the note on a from-scratch model that beat every candidate. Empty when there is nothing to say."""
    blessing = summary["blessing"]
    lines = []
    gains = blessing.get("gains", {})
    candidates = [name for name, model in summary["models"].items() if model["role"] == "candidate"]
    shown = blessing["candidate"] if blessing["candidate"] in gains else max(
        (name for name in candidates if gains.get(name)), default=None,
        key=lambda name: summary["models"][name]["accuracy"]["value"])
    if shown and gains.get(shown):
        lines.append(f"where the gain of '{shown}' came from (paired differences on the same test examples, "
                     f"{summary['confidence']['level']:.0%} intervals):")
        lines += [f"  {part['says']}: {part['model']} vs {part['compared_with']} "
                  f"{part['accuracy_diff']['value']:+.3f} {_bounds(part['accuracy_diff'], signed=True)}"
                  for part in gains[shown]]
    scratch = blessing.get("best_from_scratch")
    if scratch and scratch["says"] != blessing["reason"]:
        lines.append(scratch["says"])
    return lines


def gains_table(summary: dict[str, Any]) -> Table:
    header = ["Candidate", "Part", "Models", "Accuracy difference", "Interval"]
    rows = [
        [name, part["says"], f"{part['model']} vs {part['compared_with']}",
         f"{part['accuracy_diff']['value']:+.4f}", _bounds(part["accuracy_diff"], signed=True)]
        for name, parts in summary["blessing"].get("gains", {}).items() for part in parts
    ]
    return header, rows


def models_table(summary: dict[str, Any]) -> Table:
    ks = summary["top_k"]
    header = ["Model", "Role", "Test accuracy", f"{summary['confidence']['level']:.0%} interval",
              *[f"Top-{k} accuracy" for k in ks], "Examples"]
    rows = [
        [name, model["role"], f"{model['accuracy']['value']:.4f}", _bounds(model["accuracy"]),
         *[_interval(model["top_k"][str(k)]) for k in ks], str(model["example_count"])]
        for name, model in summary["models"].items()
    ]
    return header, rows


def trained_on(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, what data it learnt from) for the models whose trainer summary says so."""
    return [(name, model["trained_on"]) for name, model in summary["models"].items() if model.get("trained_on")]


def _trained_on_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"- `{name}` trained on {data}" for name, data in trained_on(summary)]
    return ["Training data:", "", *lines, ""] if lines else []


def comparisons_table(summary: dict[str, Any]) -> Table:
    header = ["Candidate", "Compared with", "Accuracy difference", "Interval", "Required", "Result"]
    thresholds = summary["thresholds"]
    required = (f"lower end >= {thresholds['min_improvement']:+.3f}" if thresholds.get("gate") == "interval"
                else f"{thresholds['min_improvement']:+.3f}")
    rows = [
        [candidate, _reference_label(reference, comparison), f"{result['accuracy_diff']['value']:+.4f}",
         _bounds(result["accuracy_diff"], signed=True), *_gate_cells(result, required)]
        for reference, comparison in summary["comparisons"].items()
        for candidate, result in comparison["candidates"].items()
    ]
    return header, rows


def _gate_cells(result: dict[str, Any], required: str) -> list[str]:
    """'Required' and 'Result' of one comparison: a comparison that does not decide the blessing is reported."""
    if not result.get("gating", True):
        return ["-", "reported"]
    return [required, "pass" if result["passed"] else "FAIL"]


def edge_table(summary: dict[str, Any]) -> Table:
    """The blessed candidate's exports: format, file size, accuracy, difference to the SavedModel, latency."""
    edge = summary["edge"]
    level = f"{edge['confidence_level']:.0%}"
    header = ["Format", "File size", "Test accuracy", f"Difference to the SavedModel ({level} interval)",
              "Latency per image", "Result"]
    rows = []
    if "saved_model" in edge:
        reference = edge["saved_model"]
        rows.append(["saved_model", _megabytes(reference["size_bytes"]), f"{reference['accuracy']:.4f}", "",
                     f"{reference['latency_ms']:.2f} ms", "reference"])
    for name, result in edge["results"].items():
        difference = result["difference"]
        rows.append([name, _megabytes(result["size_bytes"]), f"{result['accuracy']:.4f}",
                     f"{difference['value']:+.4f} {_bounds(difference, signed=True)}",
                     f"{result['latency_ms']:.2f} ms", "BLOCKED" if result["blocked"] else "pass"])
    rows += [[name, "", "", "", "", f"refused: {why}"] for name, why in edge["refused"].items()]
    return header, rows


def _edge_caption(summary: dict[str, Any]) -> str:
    edge = summary["edge"]
    return (f"The blessed candidate converted to each format of pusher.formats and scored on the same "
            f"{summary['num_examples']} test examples in the LiteRT interpreter; blocked when the drop is surely "
            f"above evaluator.edge_max_drop {edge['max_drop']:.3f}. Latency: median of single-image calls after "
            f"a warm-up, on this machine's CPU.")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def _reference_label(name: str, comparison: dict[str, Any]) -> str:
    if comparison["role"] == "baseline":
        return f"from-scratch '{name}'"
    if comparison["role"] == "decomposition":
        return f"'{name}' (what it builds on)"
    return f"production ({comparison['model_dir']})"


def per_class_table(summary: dict[str, Any]) -> Table:
    models = summary["models"]
    header = ["Class", "Examples", *models]
    first = next(iter(models.values()))
    rows = [
        [label, str(first["per_class"][label]["example_count"]),
         *[_interval(model["per_class"][label]["accuracy"]) for model in models.values()]]
        for label in summary["classes_in_split"]
    ]
    return header, rows


def convergence_table(summary: dict[str, Any]) -> Table:
    fraction = f"{summary['convergence_fraction']:.0%}"
    convergence = summary["convergence"]
    baselines = [name for name, model in summary["models"].items() if model["role"] == "baseline"]
    header = ["Model", "Final eval accuracy", f"Steps to {fraction} of its final eval accuracy", "Total steps",
              *[f"Steps to {fraction} of '{b}' final eval accuracy" for b in baselines if b in convergence]]
    rows = [
        [name, f"{row['final_eval_accuracy']:.4f}", _steps(row["steps_to_target"]), str(row["total_steps"]),
         *[_steps(row["steps_to_baseline_level"][b]) for b in baselines if b in convergence]]
        for name, row in convergence.items()
    ]
    return header, rows


def convergence_findings(summary: dict[str, Any]) -> list[str]:
    """For each transfer model and baseline: how many steps it needed to reach the baseline's level."""
    fraction = summary["convergence_fraction"]
    convergence = summary["convergence"]
    findings = []
    for baseline, model in summary["models"].items():
        if model["role"] != "baseline" or baseline not in convergence:
            continue
        own = convergence[baseline]["steps_to_target"]
        for name, row in convergence.items():
            if summary["models"].get(name, {}).get("role") != "candidate":
                continue
            steps = row["steps_to_baseline_level"][baseline]
            if steps is None:
                findings.append(f"'{name}' never reached {fraction:.0%} of the final eval accuracy of "
                                f"'{baseline}' ({convergence[baseline]['final_eval_accuracy']:.3f}).")
                continue
            ratio = f" ({own / steps:.1f}x fewer steps)" if own and steps and steps < own else ""
            findings.append(f"'{name}' reached {fraction:.0%} of the final eval accuracy of '{baseline}' "
                            f"({convergence[baseline]['final_eval_accuracy']:.3f}) after {steps} steps; "
                            f"'{baseline}' itself needed {_steps(own)}{ratio}.")
    return findings


def render_markdown(summary: dict[str, Any]) -> str:
    """summary.md: the verdict, the reasons and the tables."""
    blessing = summary["blessing"]
    parts = [
        "# Evaluation summary",
        "",
        f"**{headline(summary)}**",
        "",
        f"Split `{summary['split']}`, {summary['num_examples']} examples. Report: `{summary['paths']['report']}`",
        "",
        "## Why",
        "",
        *[f"- {reason}" for reason in blessing["reasons"]],
        *[f"- Note: {note}" for note in summary["notes"]],
        "",
        *_gains_markdown(summary),
        "## Models",
        "",
        markdown_table(models_table(summary)),
        *_trained_on_lines(summary),
        f"## Comparisons (evaluator.gate: {summary['thresholds'].get('gate', 'point')})",
        "",
        markdown_table(comparisons_table(summary)),
        "## Per class",
        "",
        markdown_table(per_class_table(summary)),
    ]
    parts += _coverage_markdown(summary)
    if summary["convergence"]:
        parts += ["## Convergence", "", markdown_table(convergence_table(summary)),
                  *[f"- {finding}" for finding in convergence_findings(summary)], ""]
    if "domain_shift" in summary:
        shift = summary["domain_shift"]
        parts += ["## Domain shift", "", before_text(shift), "", markdown_table(shift_table(shift)),
                  shift["verdict"], ""]
    if "edge" in summary:
        parts += ["## Edge exports", "", _edge_caption(summary), "", markdown_table(edge_table(summary))]
    return "\n".join(parts)


def _gains_markdown(summary: dict[str, Any]) -> list[str]:
    if not gains_table(summary)[1]:
        return []
    return ["## Where the gain came from", "", markdown_table(gains_table(summary))]


def render_html(summary: dict[str, Any], figures: list[tuple[str, str]]) -> str:
    """index.html: verdict, reasons, tables, the plots and links to the raw outputs."""
    blessing = summary["blessing"]
    colour = "#e6f4ea" if blessing["blessed"] else "#fce8e6"
    reasons = "".join(f"<li>{_esc(reason)}</li>" for reason in blessing["reasons"])
    notes = "".join(f"<li>{_esc(note)}</li>" for note in summary["notes"])
    body = [
        "<h1>tlpipe evaluation</h1>",
        f"<p>Split <code>{_esc(summary['split'])}</code> of <code>{_esc(summary['examples_dir'])}</code>: "
        f"{summary['num_examples']} examples, evaluated {_esc(summary['evaluated_at'])}. "
        f"Intervals: TFMA {_esc(summary['confidence']['method'])} resampling, "
        f"{summary['confidence']['level']:.0%} t-intervals (a zero-width interval means every resample "
        f"gave the same value, e.g. a class always right: with few examples that is not certainty).</p>",
        f'<div style="background:{colour};padding:0.6em 1em;border-radius:6px">'
        f"<h2>{_esc(headline(summary))}</h2><ul>{reasons}</ul></div>",
        f"<ul>{notes}</ul>" if notes else "",
        *(["<h2>Where the gain came from</h2>", html_table(gains_table(summary))] if gains_table(summary)[1] else []),
        "<h2>Models</h2>", html_table(models_table(summary)),
        "<ul>" + "".join(f"<li><code>{_esc(name)}</code> trained on {_esc(data)}</li>"
                         for name, data in trained_on(summary)) + "</ul>",
        "<h2>Comparisons behind the blessing</h2>",
        f"<p>Thresholds: test accuracy at least {summary['thresholds']['min_accuracy']:.3f}; "
        f"improvement over each reference at least {summary['thresholds']['min_improvement']:+.3f} "
        f"(evaluator.gate: {_esc(summary['thresholds'].get('gate', 'point'))}).</p>",
        html_table(comparisons_table(summary)),
        "<h2>Per class</h2>", html_table(per_class_table(summary)),
    ]
    body += _coverage_html(summary)
    if summary["convergence"]:
        body += ["<h2>Convergence</h2>",
                 "<p>Steps are optimizer steps since the start of training (both phases for transfer "
                 "models); eval accuracy is measured after every epoch on the eval split.</p>",
                 html_table(convergence_table(summary)),
                 "<ul>" + "".join(f"<li>{_esc(f)}</li>" for f in convergence_findings(summary)) + "</ul>"]
    else:
        body.append("<p>No training histories were given: no training curves or convergence table.</p>")
    if "domain_shift" in summary:
        shift = summary["domain_shift"]
        body += ["<h2>Domain shift</h2>", f"<p>{_esc(before_text(shift))}</p>", html_table(shift_table(shift)),
                 f"<p><strong>{_esc(shift['verdict'])}</strong></p>"]
    if "edge" in summary:
        body += ["<h2>Edge exports</h2>", f"<p>{_esc(_edge_caption(summary))}</p>", html_table(edge_table(summary))]
    for file_name, title in figures:
        body.append(f'<h2>{_esc(title)}</h2><img src="{_esc(file_name)}" alt="{_esc(title)}">')
    links = [(name, f"../{name}") for name in (BLESSING_FILE, SUMMARY_FILE, SUMMARY_MD)]
    links += [(f"TFMA output vs {ref}", f"../{os.path.relpath(c['tfma_output'], summary['paths']['output_dir'])}/")
              for ref, c in summary["comparisons"].items()]
    body.append("<h2>Raw outputs</h2><ul>" + "".join(
        f'<li><a href="{_esc(href)}">{_esc(text)}</a></li>' for text, href in links) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:0.9em}th{background:#f4f4f4}img{max-width:100%}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tlpipe evaluation</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


_COVERAGE_TITLE = "Data coverage (examples per class and split, as ingested)"


def _coverage_markdown(summary: dict[str, Any]) -> list[str]:
    """The data-coverage section of summary.md (none for a summary without counts)."""
    if not summary.get("coverage"):
        return []
    return [f"## {_COVERAGE_TITLE}", "", markdown_table(coverage_table(summary["coverage"]))]


def _coverage_html(summary: dict[str, Any]) -> list[str]:
    """The data-coverage section of index.html (none for a summary without counts)."""
    if not summary.get("coverage"):
        return []
    return [f"<h2>{_esc(_COVERAGE_TITLE)}</h2>", html_table(coverage_table(summary["coverage"]))]


def html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{_esc(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def markdown_table(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _interval(interval: dict[str, float]) -> str:
    return f"{interval['value']:.3f} {_bounds(interval)}"


def _bounds(interval: dict[str, float], signed: bool = False) -> str:
    spec = "+.3f" if signed else ".3f"
    return f"[{interval['lower']:{spec}}, {interval['upper']:{spec}}]"


def _steps(steps: int | None) -> str:
    return "not reached" if steps is None else str(steps)


def _esc(text: Any) -> str:
    return html.escape(str(text))
