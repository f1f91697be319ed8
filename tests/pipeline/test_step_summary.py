"""A step's end line: what its output folder holds, in a few words."""

import pytest

from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.pipeline.step_summary import artifact_summary

pytestmark = pytest.mark.quick


def test_an_examples_folder_counts_its_splits_and_its_unlabelled_pool(tmp_path):
    counts = {"train": {"a": 10, "b": 10}, "eval": {"a": 5, "b": 5}}
    (tmp_path / "plain").mkdir()
    (tmp_path / "pool").mkdir()
    write_json(str(tmp_path / "plain" / "metadata.json"), {"counts": counts, "num_classes": 2})
    assert artifact_summary(str(tmp_path / "plain")) == "30 examples (eval 10, train 20), 2 classes"
    write_json(str(tmp_path / "pool" / "metadata.json"),
               {"counts": counts, "num_classes": 2, "unlabeled": {"num_examples": 700, "split": "unlabeled"}})
    assert artifact_summary(str(tmp_path / "pool")) == "30 examples (eval 10, train 20) + 700 unlabelled, 2 classes"


def test_a_transform_folder_counts_what_transform_kept_not_what_ingest_wrote(tmp_path):
    counts = {"train": {"a": 10, "b": 10}, "test": {"a": 5, "b": 5}}  # ingest's, carried in transform's metadata
    write_json(str(tmp_path / "metadata.json"), {"counts": counts, "num_classes": 2,
                                                 "transform": {"examples": {"train": 19, "test": 10}}})
    assert artifact_summary(str(tmp_path)) == "29 examples (test 10, train 19), 2 classes"  # one set aside


def test_a_trainer_folder_names_its_strategy_and_eval_accuracy(tmp_path):
    write_json(str(tmp_path / "summary.json"), {"strategy": "self_training", "eval_accuracy": 0.92})
    assert artifact_summary(str(tmp_path)) == "self_training: eval accuracy 0.920"
