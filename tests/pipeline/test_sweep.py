"""`tlpipe sweep` and `tlpipe compile --sweep` on the tiny pipeline.

One in-process sweep over 2 labels-per-class values (2 and all) x 2 seeds is
shared by the tests: its report and grid, a rerun that reuses every point, its
numbers against the single run of one point, and the compiled sweep (one grid
point, to stay fast) run with kfp.local against the same point.
"""

from __future__ import annotations

import csv
import json
import os

import pytest
import yaml

from tlpipe.components.sweep.report import CURVE_JSON, INDEX_FILE, POINTS_CSV, REPORT_FILES
from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.cli import main
from tlpipe.pipeline.config import load_config
from tlpipe.pipeline.local_runner import run_local
from tlpipe.pipeline.sweep import grid, run_sweep

from .conftest import tiny_settings

SHOTS = [2, None]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def swept(tiny_data, tiny_module, tmp_path_factory):
    """(config path, sweep output folder, SweepResult, progress lines) of the in-process 2 x 2 sweep."""
    folder = tmp_path_factory.mktemp("sweep")
    settings = tiny_settings(tiny_data, tiny_module, folder / "root")
    settings["pipeline"]["mode"] = "in_process"
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(settings))
    lines: list[str] = []
    result = run_sweep(load_config(str(path)), grid(SHOTS, SEEDS), str(folder / "out"), report=lines.append)
    return path, folder / "out", result, lines


def _runs(config_path) -> list[str]:
    return os.listdir(os.path.join(yaml.safe_load(open(config_path))["pipeline"]["root"], "runs"))


def test_sweep_writes_the_report_of_the_whole_grid(swept):
    _, output, result, lines = swept
    report = output / "report"
    assert sorted(os.listdir(report)) == sorted(REPORT_FILES)
    curve = read_json(str(report / CURVE_JSON))
    assert curve["grid"] == {"shots": ["2", "all"], "seeds": [0, 1]}
    assert [(p["shots"], p["seed"]) for p in curve["points"]] == [(2, 0), (2, 1), (None, 0), (None, 1)]
    two, every = curve["rows"]
    assert two["labels_per_class"] == 2
    all_counts = read_json(str(output / "points" / "shots-all-seed-0" / "point.json"))["train_counts"]
    assert every["labels_per_class"] == pytest.approx(sum(all_counts.values()) / len(all_counts))
    assert every["labels_per_class"] > 2
    assert set(two["models"]) == {"feature_extraction", "baseline"}
    assert set(curve["break_even"]["baseline"]) == {"feature_extraction"}
    with open(report / POINTS_CSV, encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 4 * 2
    assert "Break-even" in (report / INDEX_FILE).read_text()
    # A progress line per run, each with the time left.
    assert len(lines) == 4 and lines[0].startswith("sweep 1/4: 2 labels per class, seed 0: ")
    assert "left" in lines[0] and lines[-1].endswith("done")
    assert all(not outcome.reused for outcome in result.outcomes)


def test_a_rerun_reuses_every_point_and_runs_nothing(swept, capsys):
    path, output, _, _ = swept
    before = _runs(path)
    assert main(["sweep", "--config", str(path), "--shots", "2", "all", "--seeds", "0", "1",
                 "--output", str(output)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("reused from an earlier sweep") == 4
    assert f"report: {output / 'report' / INDEX_FILE}" in captured.out
    assert _runs(path) == before


def test_a_point_has_the_numbers_of_the_single_run(swept):
    path, output, _, _ = swept
    config = load_config(str(path), ["ingest.shots.train=2", "ingest.seed=1", "trainer.seed=1"])
    summary = run_local(config).read("evaluation", "summary.json")
    point = read_json(str(output / "points" / "shots-2-seed-1" / "point.json"))
    assert {name: entry["accuracy"] for name, entry in point["models"].items()} == {
        name: {key: entry["accuracy"][key] for key in ("value", "lower", "upper")}
        for name, entry in summary["models"].items()}
    single_diff = summary["comparisons"]["baseline"]["candidates"]["feature_extraction"]["accuracy_diff"]
    assert point["differences"]["baseline"]["feature_extraction"] == {
        key: single_diff[key] for key in ("value", "lower", "upper")}


@pytest.mark.parametrize("arguments, message", [
    (["--shots", "0"], "--shots"),
    (["--shots", "few"], "integers >= 1"),
    (["--seeds", "-1"], "--seeds"),
])
def test_bad_grid_values_are_one_line_errors(arguments, message, capsys):
    assert main(["sweep", *arguments]) == 1
    error = capsys.readouterr().err
    assert error.startswith("tlpipe: error:") and message in error


def test_compiled_sweep_runs_with_kfp_local_like_the_local_sweep(swept, tmp_path):
    from kfp import components, local

    path, output, _, _ = swept
    settings = yaml.safe_load(path.read_text())
    settings["pipeline"].update(mode="kfp_local", root=str(tmp_path / "root"))
    config_path = tmp_path / "kfp.yaml"
    config_path.write_text(yaml.safe_dump(settings))
    package = tmp_path / "sweep.yaml"
    assert main(["compile", "--sweep", "--config", str(config_path), "--shots", "2", "--seeds", "1",
                 "-o", str(package)]) == 0
    compiled = yaml.safe_load(package.read_text())
    tasks = compiled["root"]["dag"]["tasks"]
    loop = next(task for task in tasks.values() if "parameterIterator" in task)
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == [{"shots_per_class": 2, "seed": 1}]
    assert "sweep-gather" in tasks

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"),
               enable_caching=False)
    report = components.load_component_from_file(str(package))().output.path
    assert sorted(os.listdir(report)) == sorted(REPORT_FILES)
    (point,) = read_json(os.path.join(report, CURVE_JSON))["points"]
    local_point = read_json(str(output / "points" / "shots-2-seed-1" / "point.json"))
    for key in ("shots", "seed", "labels_per_class", "train_counts"):
        assert point[key] == local_point[key], key
    # The same accuracies and paired differences as the point of the in-process sweep. Their intervals are
    # not compared: the evaluator's jackknife intervals of equal accuracies differ between processes (seen
    # for every model; within one process they are equal, as the single-run test shows).
    assert {name: entry["accuracy"]["value"] for name, entry in point["models"].items()} == {
        name: entry["accuracy"]["value"] for name, entry in local_point["models"].items()}
    def difference_values(entry):
        return {reference: {candidate: diff["value"] for candidate, diff in candidates.items()}
                for reference, candidates in entry["differences"].items()}

    assert difference_values(point) == difference_values(local_point)
