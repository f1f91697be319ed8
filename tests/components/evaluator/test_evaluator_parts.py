"""The evaluator's pure parts: config checks, interval rescaling, convergence, blessing words."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from tlpipe.components.evaluator.blessing import decide_blessing
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.convergence import convergence_table, load_history
from tlpipe.components.evaluator.tfma_analysis import ACCURACY, rescale_interval
from tlpipe.models.plumbing.errors import ConfigError, DataError

from .conftest import tfma_run

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("field, value, allowed", [
    ("min_accuracy", 1.2, "[0, 1]"),
    ("min_improvement", -0.05, "[0, 1]"),
    ("confidence_level", 1.0, "(0, 1)"),
    ("top_k", [2, 2], "distinct integers >= 1"),
    ("top_k", [0], "distinct integers >= 1"),
    ("convergence_fraction", 0.0, "(0, 1]"),
])
def test_config_rejects_bad_values_naming_key_and_allowed(field, value, allowed):
    config = EvaluatorConfig(**{field: value})
    with pytest.raises(ConfigError) as error:
        config.validate()
    assert error.value.key == field and error.value.received == value
    assert allowed in str(error.value)


def test_rescale_interval_reproduces_tfma_95_and_narrows_at_lower_levels():
    se, dof, centre = 0.08, 19, 0.62
    t95 = stats.t.ppf(0.975, dof)
    tfma_bounds = {"lower_95": centre - t95 * se, "upper_95": centre + t95 * se}
    same = rescale_interval(0.6, **tfma_bounds, standard_error=se, degrees_of_freedom=dof,
                            confidence_level=0.95, bounds=(0.0, 1.0))
    assert same == pytest.approx({"value": 0.6, **{"lower": centre - t95 * se, "upper": centre + t95 * se}})
    narrow = rescale_interval(0.6, **tfma_bounds, standard_error=se, degrees_of_freedom=dof,
                              confidence_level=0.5, bounds=(0.0, 1.0))
    half = stats.t.ppf(0.75, dof) * se
    assert narrow["lower"] == pytest.approx(centre - half) and narrow["upper"] == pytest.approx(centre + half)


def test_rescale_interval_clips_to_the_metric_range():
    t95 = stats.t.ppf(0.975, 19)
    clipped = rescale_interval(0.97, lower_95=0.97 - t95 * 0.05, upper_95=0.97 + t95 * 0.05,
                               standard_error=0.05, degrees_of_freedom=19, confidence_level=0.95,
                               bounds=(0.0, 1.0))
    assert clipped["upper"] == 1.0 and clipped["lower"] < 0.97


def _entries(phases: list[tuple[str, list[float]]], steps_per_epoch: int = 10) -> list[dict]:
    entries, step = [], 0
    for phase, accuracies in phases:
        for accuracy in accuracies:
            step += steps_per_epoch
            entries.append({"phase": phase, "epoch": len(entries) + 1, "step": step, "loss": 1.0 - accuracy,
                            "accuracy": accuracy, "val_loss": 1.0 - accuracy, "val_accuracy": accuracy,
                            "learning_rate": 0.01})
    return entries


def test_convergence_counts_steps_to_fraction_of_final_and_of_baseline(tmp_path):
    transfer = tmp_path / "transfer.json"
    # The trainer's record: the run ends with its best weights (0.80, not the last 0.78).
    transfer.write_text(json.dumps({
        "entries": _entries([("head", [0.50, 0.70, 0.75]), ("fine_tune", [0.80, 0.78])]),
        "best": {"phase": "fine_tune", "epoch": 4, "step": 40, "val_accuracy": 0.80, "val_loss": 0.2},
    }))
    baseline = tmp_path / "baseline.json"  # a bare list of entries is accepted too
    baseline.write_text(json.dumps(_entries([("baseline", [0.2, 0.3, 0.4, 0.5, 0.55, 0.6])], steps_per_epoch=20)))
    table = convergence_table({"fine_tune_all": load_history(str(transfer)),
                               "baseline": load_history(str(baseline))}, ["baseline"], 0.9)
    assert table["fine_tune_all"]["final_eval_accuracy"] == 0.80
    assert table["fine_tune_all"]["steps_to_target"] == 30  # 0.75 >= 0.72, at step 30
    assert table["fine_tune_all"]["steps_to_baseline_level"] == {"baseline": 20}  # 0.70 >= 0.9 * 0.6
    assert table["baseline"]["steps_to_target"] == 100  # 0.55 >= 0.54
    assert table["fine_tune_all"]["phases"] == [
        {"phase": "head", "start_step": 0, "end_step": 30},
        {"phase": "fine_tune", "start_step": 30, "end_step": 50},
    ]
    assert table["baseline"]["total_steps"] == 120


def test_history_without_entries_is_a_data_error(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"entries": [{"phase": "head", "epoch": 1}]}))
    with pytest.raises(DataError, match="lacks"):
        load_history(str(path))
    with pytest.raises(DataError, match="does not exist"):
        load_history(str(tmp_path / "missing.json"))


def test_blessing_picks_the_most_accurate_passing_candidate():
    candidates = {"feature_extraction": "/m/fe", "fine_tune_all": "/m/fta", "fine_tune_top": "/m/ftt"}
    run = tfma_run({"feature_extraction": 0.7, "fine_tune_all": 0.8, "fine_tune_top": 0.9, "baseline": 0.5},
               "baseline", {"fine_tune_top": ["floor"]})
    blessing = decide_blessing(EvaluatorConfig(min_accuracy=0.95), candidates,
                               {"baseline": {"role": "baseline", "model_dir": "/m/b"}}, {"baseline": run})
    assert blessing["blessed"] and blessing["candidate"] == "fine_tune_all"
    assert blessing["candidate_model_dir"] == "/m/fta"
    assert "highest test accuracy of the passing candidates" in blessing["reason"]
    assert not blessing["candidates"]["fine_tune_top"]["passed"]
    assert "below the required minimum 0.950" in blessing["candidates"]["fine_tune_top"]["reasons"][0]


def test_blessing_names_negative_transfer_and_production_regressions():
    candidates = {"feature_extraction": "/m/fe"}
    references = {"baseline": {"role": "baseline", "model_dir": "/m/b"},
                  "production": {"role": "production", "model_dir": "/serving/3"}}
    comparisons = {
        "baseline": tfma_run({"feature_extraction": 0.4, "baseline": 0.6}, "baseline",
                         {"feature_extraction": ["improvement"]}),
        "production": tfma_run({"feature_extraction": 0.4, "production": 0.45}, "production",
                           {"feature_extraction": ["improvement"]}),
    }
    blessing = decide_blessing(EvaluatorConfig(), candidates, references, comparisons)
    assert not blessing["blessed"] and blessing["candidate"] is None
    assert blessing["negative_transfer"] == ["feature_extraction"]
    reasons = blessing["candidates"]["feature_extraction"]["reasons"]
    assert reasons[0].startswith("negative transfer: 'feature_extraction' reached 0.400 test accuracy, "
                                 "0.200 below the from-scratch baseline 'baseline' (0.600)")
    assert "lies entirely below zero" in reasons[0]
    assert "below the model in production (/serving/3) (0.450)" in reasons[1]
    assert "includes zero, so the gap may be noise" in reasons[1]
    assert blessing["reason"].startswith("no candidate is blessed.")


def _production_references():
    return {"baseline": {"role": "baseline", "model_dir": "/m/b"},
            "production": {"role": "production", "model_dir": "/serving/1"}}


def test_a_candidate_that_is_production_is_not_blessed_again_and_production_is_unchanged():
    candidates = {"self_training": "/m/st"}
    zero = {"value": 0.0, "lower": 0.0, "upper": 0.0}
    same = tfma_run({"self_training": 0.9, "production": 0.9}, "production", {})
    same["diffs"]["self_training"][ACCURACY] = zero  # the same prediction on every example
    comparisons = {"baseline": tfma_run({"self_training": 0.9, "baseline": 0.6}, "baseline", {}), "production": same}
    blessing = decide_blessing(EvaluatorConfig(), candidates, _production_references(), comparisons)
    assert not blessing["blessed"] and blessing["unchanged"] and blessing["candidate"] is None
    assert blessing["candidates"]["self_training"]["same_as_production"]
    assert blessing["reason"].startswith("production unchanged: no candidate is blessed.")
    assert "'self_training' is the model in production (the same prediction on every test example" in blessing["reason"]
    # the same files count even when TFMA's interval is not exactly zero
    comparisons["production"] = tfma_run({"self_training": 0.9, "production": 0.9}, "production", {})
    blessing = decide_blessing(EvaluatorConfig(), candidates, _production_references(), comparisons,
                               in_production=["self_training"])
    assert blessing["unchanged"] and "(the same files)" in blessing["reason"]


def test_a_better_candidate_is_blessed_beside_one_that_is_production():
    candidates = {"feature_extraction": "/m/fe", "self_training": "/m/st"}
    production = tfma_run({"feature_extraction": 0.9, "self_training": 0.95, "production": 0.9}, "production", {})
    production["diffs"]["feature_extraction"][ACCURACY] = {"value": 0.0, "lower": 0.0, "upper": 0.0}
    production["diffs"]["self_training"][ACCURACY] = {"value": 0.05, "lower": 0.03, "upper": 0.07}
    comparisons = {"baseline": tfma_run({"feature_extraction": 0.9, "self_training": 0.95, "baseline": 0.6}, "baseline",
                                    {}), "production": production}
    blessing = decide_blessing(EvaluatorConfig(), candidates, _production_references(), comparisons)
    assert blessing["blessed"] and blessing["candidate"] == "self_training" and not blessing["unchanged"]
    assert blessing["candidates"]["feature_extraction"]["same_as_production"]
    # without a production reference nothing is "the same as production"
    alone = decide_blessing(EvaluatorConfig(), candidates, {"baseline": _production_references()["baseline"]},
                            {"baseline": comparisons["baseline"]})
    assert not any(verdict["same_as_production"] for verdict in alone["candidates"].values())
