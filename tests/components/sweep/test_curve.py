"""The learning curve from grid points: aggregation over seeds, break-even, grid checks, report files."""

from __future__ import annotations

import csv
import json
import os

import pytest

from tlpipe.components.sweep.curve import build_curve
from tlpipe.components.sweep.point import condense
from tlpipe.components.sweep.report import CURVE_JSON, REPORT_FILES, write_report
from tlpipe.models.plumbing.errors import DataError

pytestmark = pytest.mark.quick

CONFIDENCE = {"level": 0.95, "method": "jackknife"}


def _point(shots, seed, fine_tune, baseline, diff_lower, labels=None):
    """A grid point with one candidate and one baseline; the difference interval is [diff_lower, +0.3]."""
    return {
        "shots": shots, "seed": seed, "labels_per_class": labels or shots, "num_test_examples": 100,
        "confidence": CONFIDENCE,
        "models": {"fine_tune_all": {"role": "candidate", "accuracy": {"value": fine_tune, "lower": fine_tune - 0.05,
                                                                       "upper": fine_tune + 0.05}},
                   "baseline": {"role": "baseline", "accuracy": {"value": baseline, "lower": baseline - 0.05,
                                                                 "upper": baseline + 0.05}}},
        "differences": {"baseline": {"fine_tune_all": {"value": fine_tune - baseline, "lower": diff_lower,
                                                       "upper": 0.3}}},
    }


# Surely better at 2 and 10 (both seeds' lower ends above 0), not at 100 (seed 1's is not), nor at all.
POINTS = [
    _point(2, 0, 0.70, 0.40, 0.20), _point(2, 1, 0.74, 0.44, 0.22),
    _point(10, 0, 0.80, 0.70, 0.05), _point(10, 1, 0.82, 0.70, 0.08),
    _point(100, 0, 0.90, 0.88, 0.01), _point(100, 1, 0.90, 0.90, -0.02),
    _point(None, 0, 0.95, 0.95, -0.01, labels=4800), _point(None, 1, 0.95, 0.96, -0.02, labels=4800),
]


def test_mean_and_spread_over_seeds_per_labels_per_class():
    curve = build_curve(list(reversed(POINTS)))
    assert curve["grid"] == {"shots": ["2", "10", "100", "all"], "seeds": [0, 1]}
    first = curve["rows"][0]
    assert first["shots"] == "2" and first["labels_per_class"] == 2
    fine_tune = first["models"]["fine_tune_all"]
    assert fine_tune["mean"] == pytest.approx(0.72)
    assert fine_tune["std"] == pytest.approx(0.0282843, abs=1e-6)
    assert (fine_tune["min"], fine_tune["max"]) == (0.70, 0.74)
    assert fine_tune["lower"] == pytest.approx(0.67) and fine_tune["upper"] == pytest.approx(0.77)
    assert fine_tune["seeds"]["1"]["value"] == 0.74
    diff = first["differences"]["baseline"]["fine_tune_all"]
    assert diff["mean"] == pytest.approx(0.30) and diff["lower"] == pytest.approx(0.21)
    assert curve["rows"][-1]["labels_per_class"] == 4800


def test_break_even_is_where_transfer_stops_being_surely_better():
    curve = build_curve(POINTS)
    assert [row["differences"]["baseline"]["fine_tune_all"]["surely_better"] for row in curve["rows"]] == [
        True, True, False, False]
    verdict = curve["break_even"]["baseline"]["fine_tune_all"]
    assert verdict["surely_better_up_to"] == "10" and verdict["break_even"] == "100"
    assert "up to 10 labels per class" in verdict["text"] and "break-even at 100" in verdict["text"]


def test_break_even_at_the_extremes_and_with_a_margin():
    always = build_curve(POINTS[:4])["break_even"]["baseline"]["fine_tune_all"]
    assert always["break_even"] is None and always["surely_better_up_to"] == "10"
    with_margin = build_curve(POINTS, margin=0.21)["break_even"]["baseline"]["fine_tune_all"]
    assert with_margin["surely_better_up_to"] is None and with_margin["break_even"] == "2"
    assert "not surely better" in with_margin["text"]


def test_an_incomplete_or_repeated_grid_is_refused():
    with pytest.raises(ValueError, match=r"missing: \[\(10, seed 1\)\]"):
        build_curve(POINTS[:3])
    with pytest.raises(ValueError, match=r"repeated: \[\(2, seed 0\)\]"):
        build_curve(POINTS + [POINTS[0]])


def test_report_files(tmp_path):
    output = tmp_path / "report"
    write_report(POINTS, str(output), title="demo")
    assert sorted(os.listdir(output)) == sorted(REPORT_FILES)
    with open(output / "points.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(POINTS) * 2  # each model of each run
    assert {row["shots"] for row in rows} == {"2", "10", "100", "all"}
    with open(output / "curve.csv", encoding="utf-8") as handle:
        curve_rows = list(csv.DictReader(handle))
    assert len(curve_rows) == 4 * 2 and {r["surely_better"] for r in curve_rows if r["model"] == "fine_tune_all"} == {
        "True", "False"}
    saved = json.loads((output / CURVE_JSON).read_text())
    assert saved["title"] == "demo" and len(saved["points"]) == len(POINTS)
    page = (output / "index.html").read_text()
    assert "break-even at 100" in page and 'src="curve.png"' in page
    assert (output / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_point_must_be_the_data_it_names():
    summary = {"num_examples": 10, "split": "test", "confidence": CONFIDENCE, "models": {}, "comparisons": {},
               "blessing": {"blessed": False}}
    metadata = {"counts": {"train": {"a": 5, "b": 5}}, "shots": {"train": 5}}
    assert condense(summary, metadata, shots=5, seed=0)["labels_per_class"] == 5
    with pytest.raises(DataError, match="asks for 2 labels per class.*shots.train=5"):
        condense(summary, metadata, shots=2, seed=0)
