"""The sweep's learning-curve report: curve.json, curve.csv, points.csv, curve.png and index.html.

Everything is written into a temporary sibling folder that replaces the
report folder only when complete (`atomic_output_dir`), so a reader never
finds a half-written report, and a failed gather leaves the previous one.
"""

from __future__ import annotations

import csv
import html
import os
from typing import Any, Iterable

from matplotlib.figure import Figure

from tlpipe.components.sweep.curve import build_curve
from tlpipe.models.plumbing.artifacts import atomic_output_dir, write_json
from tlpipe.models.plumbing.layout import INDEX_FILE

CURVE_JSON = "curve.json"
CURVE_CSV = "curve.csv"
POINTS_CSV = "points.csv"
CURVE_PNG = "curve.png"
REPORT_FILES = (CURVE_JSON, CURVE_CSV, POINTS_CSV, CURVE_PNG, INDEX_FILE)
COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
BASELINE_COLOUR = "#7f7f7f"
CURVE_COLUMNS = ["shots", "labels_per_class", "model", "role", "seeds", "accuracy_mean", "accuracy_std",
                 "accuracy_min", "accuracy_max", "interval_lower_mean", "interval_upper_mean", "reference",
                 "diff_mean", "diff_std", "diff_lower_mean", "diff_upper_mean", "surely_better"]
POINT_COLUMNS = ["shots", "labels_per_class", "seed", "model", "role", "accuracy", "lower", "upper",
                 "reference", "diff", "diff_lower", "diff_upper"]


def write_report(points: Iterable[dict[str, Any]], output_dir: str, *, title: str, margin: float = 0.0) -> dict:
    """Build the curve of `points` and write every report file into `output_dir`; returns the curve."""
    points = sorted(points, key=lambda p: (p["shots"] is None, p["shots"] or 0, p["seed"]))
    curve = build_curve(points, margin=margin)
    curve["title"] = title
    with atomic_output_dir(output_dir) as tmp_dir:
        write_json(os.path.join(tmp_dir, CURVE_JSON), {**curve, "points": points})
        _write_csv(os.path.join(tmp_dir, CURVE_CSV), CURVE_COLUMNS, curve_rows(curve))
        _write_csv(os.path.join(tmp_dir, POINTS_CSV), POINT_COLUMNS, point_rows(points))
        plot_curve(os.path.join(tmp_dir, CURVE_PNG), curve)
        with open(os.path.join(tmp_dir, INDEX_FILE), "w", encoding="utf-8") as handle:
            handle.write(render_html(curve))
    return curve


def _write_csv(path: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _candidate_diff(row: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(reference, entries[name]) for reference, entries in row["differences"].items() if name in entries]


def curve_rows(curve: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per labels-per-class value, model and baseline compared with (baselines: one row)."""
    rows = []
    for row in curve["rows"]:
        for name, model in row["models"].items():
            base = {"shots": row["shots"], "labels_per_class": f"{row['labels_per_class']:g}", "model": name,
                    "role": model["role"], "seeds": len(model["seeds"]), "accuracy_mean": _f(model["mean"]),
                    "accuracy_std": _f(model["std"]), "accuracy_min": _f(model["min"]),
                    "accuracy_max": _f(model["max"]), "interval_lower_mean": _f(model["lower"]),
                    "interval_upper_mean": _f(model["upper"])}
            diffs = _candidate_diff(row, name)
            if not diffs:
                rows.append(base)
            for reference, diff in diffs:
                rows.append({**base, "reference": reference, "diff_mean": _f(diff["mean"]),
                             "diff_std": _f(diff["std"]), "diff_lower_mean": _f(diff["lower"]),
                             "diff_upper_mean": _f(diff["upper"]), "surely_better": diff["surely_better"]})
    return rows


def point_rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CSV row per run, model and baseline compared with: the evaluator's own numbers."""
    rows = []
    for point in points:
        shots = "all" if point["shots"] is None else point["shots"]
        for name, model in point["models"].items():
            base = {"shots": shots, "labels_per_class": f"{point['labels_per_class']:g}", "seed": point["seed"],
                    "model": name, "role": model["role"], "accuracy": _f(model["accuracy"]["value"]),
                    "lower": _f(model["accuracy"]["lower"]), "upper": _f(model["accuracy"]["upper"])}
            diffs = [(ref, entries[name]) for ref, entries in point["differences"].items() if name in entries]
            if not diffs:
                rows.append(base)
            for reference, diff in diffs:
                rows.append({**base, "reference": reference, "diff": _f(diff["value"]),
                             "diff_lower": _f(diff["lower"]), "diff_upper": _f(diff["upper"])})
    return rows


def _f(value: float) -> str:
    return f"{value:.4f}"


def _x_label(row: dict[str, Any]) -> str:
    return f"all\n(~{row['labels_per_class']:.0f})" if row["shots"] == "all" else row["shots"]


def plot_curve(path: str, curve: dict[str, Any]) -> None:
    """Accuracy vs labels per class (log x) with the seeds' range and mean interval; below, each candidate's
    difference to each baseline with its mean interval, zero line and break-even marks."""
    rows = curve["rows"]
    xs = [row["labels_per_class"] for row in rows]
    figure = Figure(figsize=(7.5, 7.0))
    top = figure.add_subplot(2, 1, 1)
    bottom = figure.add_subplot(2, 1, 2, sharex=top)
    colours = iter(COLOURS)
    for name, role in curve["roles"].items():
        colour = BASELINE_COLOUR if role == "baseline" else next(colours, "#000000")
        series = [row["models"][name] for row in rows]
        style = "--" if role == "baseline" else "-"
        top.plot(xs, [s["mean"] for s in series], style, marker="o", color=colour, label=f"{name} ({role})")
        top.fill_between(xs, [s["lower"] for s in series], [s["upper"] for s in series], color=colour, alpha=0.12)
        top.vlines(xs, [s["min"] for s in series], [s["max"] for s in series], color=colour, linewidth=3, alpha=0.6)
    colours = iter(COLOURS)
    for name, role in curve["roles"].items():
        if role == "baseline":
            continue
        colour = next(colours, "#000000")
        for reference in curve["break_even"]:
            if name not in curve["break_even"][reference]:
                continue
            series = [row["differences"][reference][name] for row in rows]
            bottom.plot(xs, [s["mean"] for s in series], marker="o", color=colour, label=f"{name} - {reference}")
            bottom.fill_between(xs, [s["lower"] for s in series], [s["upper"] for s in series], color=colour,
                                alpha=0.15)
            stop = curve["break_even"][reference][name]["break_even"]
            if stop is not None:
                x = next(row["labels_per_class"] for row in rows if row["shots"] == stop)
                bottom.axvline(x, color=colour, linestyle=":", linewidth=1.2)
    bottom.axhline(curve["margin"], color="#d62728", linewidth=0.8)
    top.set_xscale("log")
    bottom.set_xticks(xs, [_x_label(row) for row in rows], fontsize=8)
    bottom.minorticks_off()
    top.set_ylabel("test accuracy")
    level = curve["confidence"]["level"]
    top.set_title(f"{curve.get('title', 'sweep')}: mean over {len(curve['grid']['seeds'])} seed(s); "
                  f"bands: mean {level:.0%} interval, bars: seed range", fontsize=9)
    top.legend(fontsize=7, loc="lower right")
    bottom.set_xlabel("labels per class (log scale)")
    bottom.set_ylabel("difference to baseline")
    bottom.set_title("paired difference (mean over seeds, band: mean interval); dotted: break-even", fontsize=9)
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _mean_text(entry: dict[str, Any], signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    spread = f" ± {entry['std']:.3f}" if len(entry["seeds"]) > 1 else ""
    return (f"{fmt.format(entry['mean'])}{spread} [{fmt.format(entry['lower'])}, {fmt.format(entry['upper'])}]")


def render_html(curve: dict[str, Any]) -> str:
    """index.html: the break-even sentences, the plot, and the accuracy and difference tables."""
    rows = curve["rows"]
    names = list(curve["roles"])
    level = curve["confidence"]["level"]
    accuracy = _table(["labels per class"] + [f"{n} ({curve['roles'][n]})" for n in names],
                      [[_x_label(row).replace("\n", " ")] + [_mean_text(row["models"][n]) for n in names]
                       for row in rows])
    pairs = [(reference, name) for reference, entries in curve["break_even"].items() for name in entries]
    differences = _table(
        ["labels per class"] + [f"{name} - {reference}" for reference, name in pairs],
        [[_x_label(row).replace("\n", " ")]
         + [_mean_text(row["differences"][reference][name], signed=True)
            + (" surely better" if row["differences"][reference][name]["surely_better"] else "")
            for reference, name in pairs] for row in rows])
    verdicts = "".join(f"<li>{html.escape(curve['break_even'][reference][name]['text'])}</li>"
                       for reference, name in pairs)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}")
    body = [
        f"<h1>{html.escape(curve.get('title', 'sweep'))}: data efficiency</h1>",
        f"<p>Grid: labels per class {', '.join(curve['grid']['shots'])}; seeds "
        f"{', '.join(str(s) for s in curve['grid']['seeds'])}; test accuracy on {curve['num_test_examples']} "
        f"examples. Cells: mean ± standard deviation over seeds [mean of the seeds' {level:.0%} TFMA intervals]."
        "</p>",
        f"<h2>Break-even</h2><ul>{verdicts or '<li>no candidate compared with a baseline</li>'}</ul>",
        f'<img src="{CURVE_PNG}" alt="learning curve">',
        "<h2>Test accuracy</h2>", accuracy,
        "<h2>Difference to the baseline (paired, same test examples)</h2>", differences,
        f'<p>Data: <a href="{CURVE_JSON}">{CURVE_JSON}</a>, <a href="{CURVE_CSV}">{CURVE_CSV}</a>, '
        f'<a href="{POINTS_CSV}">{POINTS_CSV}</a> (every run).</p>',
    ]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tlpipe sweep</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
