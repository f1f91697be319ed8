"""The evaluator's gate: the lower end of the paired difference's interval (default) or its point estimate."""

from __future__ import annotations

import pytest

from tlpipe.components.evaluator.blessing import decide_blessing
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.pairing import Pairing
from tlpipe.components.evaluator.executor import run_evaluator
from tlpipe.components.evaluator.tfma_analysis import ACCURACY
from tlpipe.models.plumbing.errors import ConfigError

REFERENCES = {"baseline": {"role": "baseline", "model_dir": "/m/b"}}


def _comparisons(diff: dict, point_failed: bool) -> dict:
    """One TFMA run's parsed output: candidate 'fine_tune_all' vs 'baseline' with the given difference."""
    return {"baseline": {
        "models": {"fine_tune_all": {"overall": {ACCURACY: {"value": 0.85, "lower": 0.84, "upper": 0.86}}},
                   "baseline": {"overall": {ACCURACY: {"value": 0.85 - diff["value"], "lower": 0.0, "upper": 1.0}}}},
        "diffs": {"fine_tune_all": {ACCURACY: diff}},
        "failures": {"fine_tune_all": [{"metric": ACCURACY, "kind": "improvement", "measured": diff["value"]}]
                     if point_failed else []},
    }}


def _decide(gate: str, diff: dict, point_failed: bool = False) -> dict:
    config = EvaluatorConfig(min_improvement=0.03, gate=gate)
    return decide_blessing(config, {"fine_tune_all": "/m/fta"}, REFERENCES, _comparisons(diff, point_failed))


def test_interval_straddling_the_margin_passes_the_point_gate_only():
    diff = {"value": 0.04, "lower": 0.01, "upper": 0.07}  # point above +0.03, lower end below it
    point = _decide("point", diff)
    assert point["blessed"] and point["candidate"] == "fine_tune_all"
    assert "point estimate at least the required +0.030, evaluator.gate: point" in point["reason"]
    interval = _decide("interval", diff)
    assert not interval["blessed"] and interval["candidate"] is None
    (reason,) = interval["candidates"]["fine_tune_all"]["reasons"]
    assert "beats the from-scratch baseline 'baseline' by +0.040" in reason
    assert "the lower bound +0.010 of the 95% interval of the paired difference [+0.010, +0.070]" in reason
    assert "below the required +0.030" in reason and "evaluator.gate: interval" in reason
    assert interval["negative_transfer"] == []
    assert interval["thresholds"]["gate"] == "interval"
    assert interval["candidates"]["fine_tune_all"]["comparisons"]["baseline"]["decided_by"] == \
        "lower bound of the difference's interval"


def test_interval_entirely_above_the_margin_passes_both_gates():
    diff = {"value": 0.05, "lower": 0.031, "upper": 0.069}
    interval = _decide("interval", diff)
    assert interval["blessed"]
    assert "its lower bound +0.031 is at least the required +0.030, evaluator.gate: interval" in interval["reason"]
    assert _decide("point", diff)["blessed"]


def test_a_source_only_reference_is_not_called_a_from_scratch_baseline():
    comparisons = {"source_only": _comparisons({"value": 0.05, "lower": 0.031, "upper": 0.069}, False)["baseline"]}
    comparisons["source_only"]["models"]["source_only"] = comparisons["source_only"]["models"].pop("baseline")
    blessing = decide_blessing(EvaluatorConfig(min_improvement=0.03), {"fine_tune_all": "/m/fta"},
                               {"source_only": {"role": "baseline", "model_dir": "/m/so"}}, comparisons,
                               pairing=Pairing(source_domain=("source_only",)))  # the run's source-domain models
    assert blessing["blessed"] and "from-scratch" not in blessing["reason"]
    assert "the reference 'source_only' (trained on the source domain's labels, no adaptation)" in blessing["reason"]


def test_point_below_the_margin_fails_both_gates_and_says_which_bound_decided():
    diff = {"value": 0.02, "lower": -0.01, "upper": 0.05}  # straddles the margin from below
    point = _decide("point", diff, point_failed=True)
    assert not point["blessed"]
    assert "the point estimate is below the required +0.030 (evaluator.min_improvement; evaluator.gate: point" \
        in point["reason"]
    interval = _decide("interval", diff, point_failed=True)
    assert not interval["blessed"] and "the lower bound -0.010" in interval["reason"]


def test_gate_is_checked():
    with pytest.raises(ConfigError) as error:
        from tlpipe.components.config_schema import from_dict
        from_dict(EvaluatorConfig, {"gate": "median"})
    assert "gate" in str(error.value) and "interval" in str(error.value)


def test_real_tfma_difference_straddling_the_margin(tmp_path, dataset_dir, model_dirs):
    # 'partial' (0.65) vs 'constant' (0.30) on 20 test examples: a paired difference of +0.35 whose
    # interval is wide; a margin of +0.34 is met by the point estimate but not by the interval's lower end.
    blessings = {}
    for gate in ("point", "interval"):
        config = EvaluatorConfig(min_improvement=0.34, gate=gate, compare_with_production=False)
        summary = run_evaluator(config, dataset_dir, {"fine_tune_all": model_dirs["partial"]},
                                {"baseline": model_dirs["constant"]}, str(tmp_path / gate))
        blessings[gate] = summary["blessing"]
    diff = blessings["interval"]["candidates"]["fine_tune_all"]["comparisons"]["baseline"]["accuracy_diff"]
    assert diff["value"] == pytest.approx(0.35, abs=1e-6)
    assert 0.0 < diff["lower"] < 0.34 < diff["value"] < diff["upper"]
    assert blessings["point"]["blessed"] is True
    assert blessings["interval"]["blessed"] is False
    assert f"the lower bound {diff['lower']:+.3f}" in blessings["interval"]["reason"]
