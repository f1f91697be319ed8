"""The report's "trained on" line: read from the trainer's summary.json beside each exported model."""

import os

import pytest

from tlpipe.components.evaluator.training_data import describe_training_data
from tlpipe.models.plumbing.artifacts import write_json

pytestmark = pytest.mark.quick


def _trainer_output(tmp_path, name: str, summary: dict) -> str:
    folder = tmp_path / name
    os.makedirs(folder / "model")
    write_json(str(folder / "summary.json"), summary)
    return str(folder / "model")


def test_a_self_trained_student_names_its_labelled_and_pseudo_labelled_data(tmp_path):
    model = _trainer_output(tmp_path, "self_training", {
        "kind": "transfer", "num_train": 21_395, "num_eval": 50,
        "self_training": {"labelled_train": 50, "pseudo_labelled": 21_345, "unlabeled_pool": 23_959,
                          "labeler": "label propagation (...)"},
    })
    assert describe_training_data(model) == (
        "50 labelled + 21,345 pseudo-labelled of 23,959 unlabelled (label propagation (...)); "
        "50 eval examples for early stopping only; from the pre-trained module")


def test_plain_models_name_their_labels_and_start(tmp_path):
    baseline = _trainer_output(tmp_path, "baseline", {"kind": "baseline", "num_train": 50, "num_eval": 50})
    assert describe_training_data(baseline) == (
        "50 labelled; 50 eval examples for early stopping only; from random initialisation")
    assert describe_training_data(str(tmp_path / "elsewhere" / "model")) is None
