"""The evaluator end to end: real TFMA on Beam's in-process runner, real exported models.

Accuracies of the fixture models on the 20 test examples (6, 7 and 7 per class):
`trained` ~1, `partial` exactly 0.65, `constant` exactly 0.30 (see conftest.py).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.executor import run_evaluator
from tlpipe.components.strategies.registry import pairing_for
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.pusher.executor import run_pusher
from tlpipe.components.production import ProductionModel, latest_pushed_model
from tlpipe.models.plumbing.errors import ConfigError, DataError, ModelError, NotBlessedError

LABEL_NAMES = ["left", "middle", "right"]  # as in conftest.py
NUM_CLASSES = len(LABEL_NAMES)


def _history(path, phases: list[tuple[str, list[float]]]) -> str:
    """A trainer-style history.json: 10 steps per epoch."""
    entries, step = [], 0
    for phase, accuracies in phases:
        for accuracy in accuracies:
            step += 10
            entries.append({"phase": phase, "epoch": len(entries) + 1, "step": step, "loss": 1.0 - accuracy,
                            "accuracy": accuracy, "val_loss": 1.1 - accuracy, "val_accuracy": accuracy,
                            "learning_rate": 1e-3})
    best = max(entries, key=lambda entry: entry["val_accuracy"])
    path.write_text(json.dumps({"entries": entries, "best": best}))
    return str(path)


def _expected(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, top-2, per-class accuracy and confusion matrix computed here from raw predictions."""
    predicted = probabilities.argmax(axis=1)
    higher = (probabilities > probabilities[np.arange(len(labels)), labels][:, None]).sum(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    return {
        "accuracy": float((predicted == labels).mean()),
        "top_2": float((higher < 2).mean()),
        "per_class": {LABEL_NAMES[c]: float((predicted[labels == c] == c).mean()) for c in range(NUM_CLASSES)},
        "confusion": confusion.tolist(),
    }


def test_better_candidate_is_blessed_with_numbers_matching_its_predictions(
        tmp_path, dataset_dir, model_dirs, predictions, test_split):
    histories = {
        "feature_extraction": _history(tmp_path / "fe.json", [("head", [0.5, 0.9, 0.95, 1.0])]),
        "fine_tune_all": _history(tmp_path / "fta.json", [("head", [0.4, 0.6]), ("fine_tune", [0.64, 0.66])]),
        "baseline": _history(tmp_path / "b.json", [("baseline", [0.2, 0.25, 0.3, 0.33, 0.34, 0.34])]),
    }
    output = tmp_path / "evaluation"
    # min_improvement 0: `partial` beats `constant` by 0.35 on 20 examples, and the lower end of the paired
    # interval (~0.15, half-width ~2.1 bootstrap standard errors) moves with TFMA's resampling by more than
    # a 0.1 margin allows; at 0 it passes unless the standard error is 70% above its ~0.1.
    summary = run_evaluator(
        EvaluatorConfig(min_accuracy=0.5, min_improvement=0.0, top_k=[2, 3]), dataset_dir,
        {"feature_extraction": model_dirs["trained"], "fine_tune_all": model_dirs["partial"]},
        {"baseline": model_dirs["constant"]}, str(output), histories=histories,
    )
    blessing = json.loads((output / "blessing.json").read_text())
    assert blessing == json.loads(json.dumps(summary["blessing"]))
    assert blessing["blessed"] is True and blessing["candidate"] == "feature_extraction"
    assert blessing["candidate_model_dir"] == model_dirs["trained"]
    assert blessing["candidates"]["fine_tune_all"]["passed"]  # passes too, but is less accurate
    assert "highest test accuracy" in blessing["reason"]

    labels = test_split[1]
    for name, model in (("feature_extraction", "trained"), ("fine_tune_all", "partial"), ("baseline", "constant")):
        expected, got = _expected(predictions[model], labels), summary["models"][name]
        assert got["accuracy"]["value"] == pytest.approx(expected["accuracy"], abs=1e-6)
        assert got["accuracy"]["lower"] <= got["accuracy"]["value"] <= got["accuracy"]["upper"]
        assert 0.0 <= got["accuracy"]["lower"] and got["accuracy"]["upper"] <= 1.0
        assert got["top_k"]["2"]["value"] == pytest.approx(expected["top_2"], abs=1e-6)
        assert got["example_count"] == len(labels)
        for label in LABEL_NAMES:
            assert got["per_class"][label]["accuracy"]["value"] == pytest.approx(expected["per_class"][label])
            assert got["per_class"][label]["example_count"] == int((labels == LABEL_NAMES.index(label)).sum())
        assert got["confusion_matrix"] == expected["confusion"]
    assert summary["models"]["feature_extraction"]["accuracy"]["value"] >= 0.9  # really "clearly better"
    diff = summary["comparisons"]["baseline"]["candidates"]["feature_extraction"]["accuracy_diff"]
    assert diff["value"] == pytest.approx(
        _expected(predictions["trained"], labels)["accuracy"] - 0.30, abs=1e-6)
    assert any("k = [3]" in note for note in summary["notes"])  # top-3 of 3 classes is skipped

    convergence = summary["convergence"]
    assert convergence["feature_extraction"]["steps_to_target"] == 20  # 0.9 >= 0.9 * 1.0
    assert convergence["fine_tune_all"]["steps_to_target"] == 20  # 0.6 >= 0.9 * 0.66
    assert convergence["baseline"]["steps_to_target"] == 40  # 0.33 >= 0.9 * 0.34
    assert convergence["feature_extraction"]["steps_to_baseline_level"] == {"baseline": 10}

    # The report: every PNG the page shows exists and is a PNG; the summaries and TFMA's output are there.
    index = (output / "report" / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', index)
    assert set(images) == {"accuracy.png", "per_class.png", "confusion_matrices.png",
                           "training_curves.png", "convergence.png"}
    for image in images:
        assert (output / "report" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "BLESSED &#x27;feature_extraction&#x27;" in index and "Steps to 90% of its final" in index
    markdown = (output / "summary.md").read_text()
    assert "BLESSED 'feature_extraction'" in markdown and "| fine_tune_all | 0.6600 | 20 | 40 | 10 |" in markdown
    assert "'feature_extraction' reached 90% of the final eval accuracy of 'baseline' (0.340) after 10 steps; " \
           "'baseline' itself needed 40 (4.0x fewer steps)." in markdown
    assert json.loads((output / "summary.json").read_text())["num_examples"] == 20
    # The data coverage: examples per class and split as ingested (6, 7 and 7 test examples per class).
    assert "| left | 10 | 6 | 16 |" in markdown and "| total | 30 | 20 | 50 |" in markdown
    assert "Data coverage" in index and "<td>middle</td><td>10</td><td>7</td><td>17</td>" in index
    import tensorflow_model_analysis as tfma

    assert tfma.load_eval_result(str(output / "tfma" / "vs_baseline"), model_name="feature_extraction").slicing_metrics
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".evaluation")]  # no temp folder left

    # The pusher ships the blessed model, and only that one; the pushed copy answers its signature.
    serving = tmp_path / "serving"
    record = run_pusher(PusherConfig(), model_dirs["trained"], str(output / "blessing.json"), str(serving))
    assert record["version"] == 1 and latest_pushed_model(str(serving)) == str(serving / "1")
    import tensorflow as tf

    answer = tf.saved_model.load(str(serving / "1")).signatures["serving_default"](
        examples=tf.constant(test_split[2][:3]))
    assert answer["class_ids"].numpy().tolist() == predictions["trained"][:3].argmax(axis=1).tolist()
    with pytest.raises(NotBlessedError, match="blesses 'feature_extraction'"):
        run_pusher(PusherConfig(), model_dirs["partial"], str(output / "blessing.json"), str(serving))


def test_baseline_beating_the_candidate_is_negative_transfer_and_nothing_is_pushed(
        tmp_path, dataset_dir, model_dirs):
    output = tmp_path / "evaluation"
    summary = run_evaluator(EvaluatorConfig(), dataset_dir, {"feature_extraction": model_dirs["constant"]},
                            {"baseline": model_dirs["partial"]}, str(output))
    blessing = summary["blessing"]
    assert blessing["blessed"] is False and blessing["candidate"] is None
    assert blessing["negative_transfer"] == ["feature_extraction"]
    assert "negative transfer: 'feature_extraction' reached 0.300 test accuracy, 0.350 below the " \
           "from-scratch baseline 'baseline' (0.650)" in blessing["reason"]
    assert "NOT BLESSED" in (output / "summary.md").read_text()

    serving = tmp_path / "serving"
    with pytest.raises(NotBlessedError) as error:
        run_pusher(PusherConfig(), model_dirs["constant"], str(output / "blessing.json"), str(serving))
    assert "negative transfer" in str(error.value)
    assert str(output / "report" / "index.html") in str(error.value)
    assert latest_pushed_model(str(serving)) is None


def test_a_candidate_is_judged_against_the_reference_that_saw_its_data_and_its_gain_is_decomposed(
        tmp_path, dataset_dir, model_dirs):
    # self_training (0.65) beats the plain baseline (0.30) but not its matched reference, the from-scratch model
    # that saw the same unlabelled images (`trained`, ~1): not blessed, and the reason names that reference.
    pairing = pairing_for(["self_training", "baseline", "baseline_self_training"], TrainerConfig())
    output = tmp_path / "evaluation"
    summary = run_evaluator(
        EvaluatorConfig(), dataset_dir, {"self_training": model_dirs["partial"]},
        {"baseline": model_dirs["constant"], "baseline_self_training": model_dirs["trained"]}, str(output),
        pairing=pairing)
    blessing = json.loads((output / "blessing.json").read_text())
    assert blessing["blessed"] is False and blessing["negative_transfer"] == ["self_training"]
    assert "below the matched from-scratch reference 'baseline_self_training'" in blessing["reason"]
    assert "from-scratch baseline 'baseline'" not in blessing["reason"]  # beating it is reported, not required
    verdict = blessing["candidates"]["self_training"]["comparisons"]
    assert verdict["baseline"]["passed"] and not verdict["baseline"]["gating"]
    gains = {part["part"]: part for part in summary["gains"]["self_training"]}
    assert list(gains) == ["module", "data_from_scratch", "total"]  # no teacher in this run
    comparisons = summary["comparisons"]
    assert set(comparisons) == {"baseline", "baseline_self_training"}  # the scratch pair shares the baseline's run
    assert gains["module"]["accuracy_diff"] == comparisons["baseline_self_training"]["candidates"]["self_training"][
        "accuracy_diff"]
    assert gains["data_from_scratch"]["accuracy_diff"] == comparisons["baseline"]["candidates"][
        "baseline_self_training"]["accuracy_diff"]
    assert gains["total"]["accuracy_diff"]["value"] == pytest.approx(0.35, abs=1e-6)
    assert comparisons["baseline"]["candidates"]["baseline_self_training"]["gating"] is False
    assert blessing["best_from_scratch"]["name"] == "baseline_self_training"
    markdown = (output / "summary.md").read_text()
    assert "## Where the gain came from" in markdown and "self_training vs baseline_self_training" in markdown


def test_thresholds_pass_exactly_at_the_boundary(tmp_path, dataset_dir, model_dirs):
    # TFMA's float32 accuracies land just below these bounds (0.64999998, diff 0.34999996); the
    # boundary must still pass. The production model (better than the candidate) is ignored
    # because compare_with_production is off.
    config = EvaluatorConfig(min_accuracy=0.65, min_improvement=0.35, gate="point", compare_with_production=False)
    summary = run_evaluator(config, dataset_dir, {"fine_tune_all": model_dirs["partial"]},
                            {"baseline": model_dirs["constant"]}, str(tmp_path / "evaluation"),
                            production=ProductionModel(1, model_dirs["trained"], "f"))
    assert summary["blessing"]["blessed"] is True, summary["blessing"]["reason"]
    assert list(summary["comparisons"]) == ["baseline"]
    assert any("compare_with_production is off" in note for note in summary["notes"])


def test_thresholds_fail_just_above_the_boundary(tmp_path, dataset_dir, model_dirs):
    config = EvaluatorConfig(min_accuracy=0.651, min_improvement=0.351, gate="point")
    summary = run_evaluator(config, dataset_dir, {"fine_tune_all": model_dirs["partial"]},
                            {"baseline": model_dirs["constant"]}, str(tmp_path / "evaluation"))
    blessing = summary["blessing"]
    assert blessing["blessed"] is False
    reasons = blessing["candidates"]["fine_tune_all"]["reasons"]
    assert "reached 0.650 test accuracy, below the required minimum 0.651" in reasons[0]
    assert "beats the from-scratch baseline 'baseline' by only +0.350" in reasons[1]
    assert "the point estimate is below the required +0.351" in reasons[1]
    assert blessing["negative_transfer"] == []


def test_candidate_worse_than_production_is_not_blessed(tmp_path, dataset_dir, model_dirs):
    summary = run_evaluator(EvaluatorConfig(), dataset_dir, {"fine_tune_all": model_dirs["partial"]},
                            {"baseline": model_dirs["constant"]}, str(tmp_path / "evaluation"),
                            production=ProductionModel(1, model_dirs["trained"], "f"))
    assert list(summary["comparisons"]) == ["baseline", "production"]
    verdict = summary["blessing"]["candidates"]["fine_tune_all"]
    assert verdict["comparisons"]["baseline"]["passed"] and not verdict["comparisons"]["production"]["passed"]
    assert summary["blessing"]["blessed"] is False
    assert f"below the model in production ({model_dirs['trained']})" in summary["blessing"]["reason"]
    assert summary["blessing"]["negative_transfer"] == []  # worse than production is not negative transfer
    assert (tmp_path / "evaluation" / "tfma" / "vs_production" / "validations.tfrecord").is_file()


def test_a_candidate_identical_to_production_leaves_production_unchanged(tmp_path, dataset_dir, model_dirs):
    # What a rerun of the same pipeline evaluates: the model it pushed last time, again.
    import shutil

    from tlpipe.components.production import fingerprint_dir

    rerun = shutil.copytree(model_dirs["trained"], tmp_path / "rerun" / "model")
    production = ProductionModel(1, model_dirs["trained"], fingerprint_dir(model_dirs["trained"]))
    summary = run_evaluator(EvaluatorConfig(), dataset_dir, {"fine_tune_all": str(rerun)},
                            {"baseline": model_dirs["constant"]}, str(tmp_path / "evaluation"), production=production)
    blessing = summary["blessing"]
    assert blessing["blessed"] is False and blessing["unchanged"] is True
    assert blessing["reason"].startswith("production unchanged: no candidate is blessed.")
    assert "'fine_tune_all' is the model in production (the same files)" in blessing["reason"]
    diff = blessing["candidates"]["fine_tune_all"]["comparisons"]["production"]["accuracy_diff"]
    assert diff["value"] == diff["lower"] == diff["upper"] == 0  # what used to be "beats production by +0.000"
    assert blessing["candidates"]["fine_tune_all"]["comparisons"]["baseline"]["passed"]


def test_inputs_are_checked_before_any_evaluation(tmp_path, dataset_dir, model_dirs, test_split, dataset_writer):
    import keras

    from tlpipe.models.serving import export_for_serving

    output = str(tmp_path / "evaluation")
    with pytest.raises(DataError, match=r"split 'validation' has no .tfrecord files .*splits present: \['test'\]"):
        run_evaluator(EvaluatorConfig(), dataset_dir, {"a": model_dirs["trained"]}, {"b": model_dirs["constant"]},
                      output, split="validation")
    with pytest.raises(ConfigError, match="'production'"):
        run_evaluator(EvaluatorConfig(), dataset_dir, {"production": model_dirs["trained"]},
                      {"b": model_dirs["constant"]}, output)
    other_labels = dataset_writer(str(tmp_path / "other"), {"test": test_split[2]})
    metadata_path = tmp_path / "other" / "metadata.json"
    metadata_path.write_text(json.dumps({**json.loads(metadata_path.read_text()), "label_names": ["a", "b", "c"]}))
    with pytest.raises(ModelError, match=r"predicts the classes \['left', 'middle', 'right'\].*\['a', 'b', 'c'\]"):
        run_evaluator(EvaluatorConfig(), other_labels, {"a": model_dirs["trained"]}, {"b": model_dirs["constant"]},
                      output)
    small = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(NUM_CLASSES, activation="softmax", name="classifier")])
    small_dir = export_for_serving(small, str(tmp_path / "small"), label_names=LABEL_NAMES, modality="image",
                                   image_size=[4, 4], channels=1)
    with pytest.raises(ModelError, match=r"takes images of shape \[4, 4, 1\], the evaluation data has \[8, 8, 1\]"):
        run_evaluator(EvaluatorConfig(), dataset_dir, {"a": small_dir}, {"b": model_dirs["constant"]}, output)
    with pytest.raises(ModelError, match="not a SavedModel"):
        run_evaluator(EvaluatorConfig(), dataset_dir, {"a": str(tmp_path)}, {"b": model_dirs["constant"]}, output)
    assert not os.path.exists(output)
