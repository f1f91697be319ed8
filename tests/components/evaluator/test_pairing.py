"""Like for like: each candidate judged against its matched reference, and its gain decomposed."""

from __future__ import annotations

import pytest

from tlpipe.components.evaluator.blessing import decide_blessing
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.pairing import DATA_FROM_SCRATCH, DATA_WITH_TRANSFER, MODULE, TOTAL, Pairing
from tlpipe.components.evaluator.tfma_analysis import ACCURACY
from tlpipe.components.strategies.registry import pairing_for
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.self_training_config import SelfTrainingConfig

from .conftest import tfma_run

pytestmark = pytest.mark.quick

DEFAULT_RUN = ["feature_extraction", "self_training", "baseline", "baseline_self_training"]
FROZEN_TEACHER = TrainerConfig(self_training=SelfTrainingConfig(teacher="feature_extraction"))  # the default's


def test_the_registry_pairs_each_candidate_with_the_reference_that_saw_its_data():
    pairing = pairing_for(DEFAULT_RUN, FROZEN_TEACHER)
    assert pairing.matched == {"feature_extraction": "baseline", "self_training": "baseline_self_training"}
    assert pairing.builds_on == {"self_training": "feature_extraction", "baseline_self_training": "baseline"}
    assert pairing.from_scratch == ("baseline", "baseline_self_training")
    domain = pairing_for(["domain_adaptation", "bn_adapt", "source_only"], TrainerConfig())
    assert domain.matched == {"domain_adaptation": "source_only", "bn_adapt": "source_only"}
    assert domain.builds_on == {} and domain.from_scratch == ()  # bn_adapt's teacher is its reference
    multi = pairing_for(["multi_task", "multi_task_baseline"], TrainerConfig())
    assert multi.matched == {"multi_task": "multi_task_baseline"}
    assert Pairing.from_dict(pairing.to_dict()) == pairing


def test_the_decomposition_needs_two_differences_beyond_every_candidate_against_every_reference():
    pairing = pairing_for(DEFAULT_RUN, FROZEN_TEACHER)
    extra = pairing.extra_pairs(["feature_extraction", "self_training"], ["baseline", "baseline_self_training"])
    assert extra == {"feature_extraction": ["self_training"], "baseline": ["baseline_self_training"]}


def _default_comparisons(accuracies: dict[str, float]) -> dict:
    """The TFMA runs the evaluator makes for the default's four models (see `_tfma_plan`)."""
    candidates = ("feature_extraction", "self_training")
    pick = lambda *names: {name: accuracies[name] for name in names}  # noqa: E731
    return {
        "baseline": tfma_run(pick(*candidates, "baseline_self_training", "baseline"), "baseline", {}),
        "baseline_self_training": tfma_run(pick(*candidates, "baseline_self_training"), "baseline_self_training",
                                           {}),
        "feature_extraction": tfma_run(pick("self_training", "feature_extraction"), "feature_extraction", {}),
    }


REFERENCES = {"baseline": {"role": "baseline", "model_dir": "/m/b"},
              "baseline_self_training": {"role": "baseline", "model_dir": "/m/bst"}}
CANDIDATES = {"feature_extraction": "/m/fe", "self_training": "/m/st"}


def test_beating_the_plain_baseline_but_not_the_matched_reference_is_not_blessed():
    comparisons = _default_comparisons(
        {"feature_extraction": 0.70, "self_training": 0.90, "baseline_self_training": 0.92, "baseline": 0.60})
    pairing = pairing_for(DEFAULT_RUN, FROZEN_TEACHER)
    blessing = decide_blessing(EvaluatorConfig(), CANDIDATES, REFERENCES, comparisons, pairing=pairing)

    self_training = blessing["candidates"]["self_training"]
    assert not self_training["passed"] and self_training["matched_reference"] == "baseline_self_training"
    assert self_training["comparisons"]["baseline"]["passed"] and not self_training["comparisons"]["baseline"]["gating"]
    assert self_training["comparisons"]["baseline_self_training"]["gating"]
    (reason,) = self_training["reasons"]
    assert "the matched from-scratch reference 'baseline_self_training' (the same labels and the pseudo-labelled " \
           "unlabelled images)" in reason
    assert "negative transfer" in reason and blessing["negative_transfer"] == ["self_training"]
    # feature_extraction saw 50 labels: it is judged against the plain baseline only, and passes.
    assert blessing["candidate"] == "feature_extraction"
    assert blessing["candidates"]["feature_extraction"]["comparisons"]["baseline_self_training"]["gating"] is False
    assert "the from-scratch baseline 'baseline' by +0.100" in blessing["reason"]
    assert "baseline_self_training" not in blessing["reason"]
    assert blessing["best_from_scratch"]["name"] == "baseline_self_training"
    assert "evaluator.bless_from_scratch: false" in blessing["best_from_scratch"]["says"]


def test_the_decomposition_is_the_paired_differences_the_verdict_read():
    comparisons = _default_comparisons(
        {"feature_extraction": 0.80, "self_training": 0.94, "baseline_self_training": 0.85, "baseline": 0.79})
    pairing = pairing_for(DEFAULT_RUN, FROZEN_TEACHER)
    blessing = decide_blessing(EvaluatorConfig(), CANDIDATES, REFERENCES, comparisons, pairing=pairing)
    assert blessing["candidate"] == "self_training" and blessing["best_from_scratch"] is None
    parts = {part["part"]: part for part in blessing["gains"]["self_training"]}
    assert list(parts) == [MODULE, DATA_WITH_TRANSFER, DATA_FROM_SCRATCH, TOTAL]
    verdict = blessing["candidates"]["self_training"]["comparisons"]
    assert parts[MODULE]["accuracy_diff"] == verdict["baseline_self_training"]["accuracy_diff"]
    assert parts[TOTAL]["accuracy_diff"] == verdict["baseline"]["accuracy_diff"]
    assert parts[DATA_WITH_TRANSFER]["accuracy_diff"] == comparisons["feature_extraction"]["diffs"]["self_training"][ACCURACY]
    assert parts[DATA_FROM_SCRATCH]["accuracy_diff"] == comparisons["baseline"]["diffs"]["baseline_self_training"][ACCURACY]
    assert parts[MODULE]["accuracy_diff"]["value"] == pytest.approx(0.09)
    assert parts[DATA_WITH_TRANSFER]["accuracy_diff"]["value"] == pytest.approx(0.14)
    assert parts[DATA_FROM_SCRATCH]["accuracy_diff"]["value"] == pytest.approx(0.06)
    assert parts[TOTAL]["accuracy_diff"]["value"] == pytest.approx(0.15)
    assert "module" in parts[MODULE]["says"] and "unlabelled images" in parts[DATA_WITH_TRANSFER]["says"]
    assert [part["part"] for part in blessing["gains"]["feature_extraction"]] == [MODULE]


def test_a_from_scratch_winner_is_blessed_only_when_the_setting_allows_it():
    accuracies = {"feature_extraction": 0.70, "self_training": 0.80, "baseline_self_training": 0.92, "baseline": 0.60}
    pairing = pairing_for(DEFAULT_RUN, FROZEN_TEACHER)
    comparisons = _default_comparisons({**accuracies, "self_training": 0.95})  # self_training beats its reference
    comparisons["baseline"] = tfma_run({**accuracies}, "baseline", {})
    comparisons["baseline_self_training"] = tfma_run(
        {"feature_extraction": 0.70, "self_training": 0.80, "baseline_self_training": 0.92}, "baseline_self_training", {})
    blessing = decide_blessing(EvaluatorConfig(), CANDIDATES, REFERENCES, comparisons, pairing=pairing)
    assert blessing["candidate"] == "feature_extraction"  # beats its own reference; the scratch winner is named
    assert "The most accurate model of this run is the from-scratch 'baseline_self_training' (0.920" in \
        blessing["best_from_scratch"]["says"]
    allowed = decide_blessing(EvaluatorConfig(bless_from_scratch=True), CANDIDATES, REFERENCES, comparisons,
                              pairing=pairing)
    assert allowed["blessed"] and allowed["candidate"] == "baseline_self_training"
    assert allowed["candidate_model_dir"] == "/m/bst"
    assert "evaluator.bless_from_scratch: true" in allowed["reason"]


def test_without_a_pairing_every_reference_gates_as_before():
    comparisons = _default_comparisons(
        {"feature_extraction": 0.70, "self_training": 0.90, "baseline_self_training": 0.92, "baseline": 0.60})
    blessing = decide_blessing(EvaluatorConfig(), CANDIDATES, REFERENCES, comparisons)
    assert not blessing["blessed"]
    assert all(result["gating"] for verdict in blessing["candidates"].values()
               for result in verdict["comparisons"].values())
