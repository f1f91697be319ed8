"""self_training end to end (through kfp.local): ingest writes the unlabelled pool, fine_tune_all teaches, labels are
propagated over it, a student trains, the evaluator compares and the report says which data each model saw.
Its matched reference, baseline_self_training (the same labels and unlabelled images from scratch), trains with it
and decides its transfer verdict."""

import os

import tensorflow as tf

from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.local_runner import run_local


def _ids(artifact_dir: str, split: str) -> set[str]:
    records = tf.data.TFRecordDataset(fmt.split_files(artifact_dir, split)).as_numpy_iterator()
    return {tf.train.Example.FromString(r).features.feature[fmt.ID_KEY].bytes_list.value[0].decode() for r in records}


def test_self_training_runs_end_to_end_and_never_pseudo_labels_eval_or_test(make_tiny_config):
    config = make_tiny_config(
        "self_training",
        ingest={"unlabeled": True},
        trainer={"strategies": ["self_training"], "fine_tune_epochs": 2, "head_epochs": 10,
                 "baseline": {"architecture": "small_cnn", "cnn_filters": [4], "epochs": 10},
                 "self_training": {"neighbors": 4, "raw_components": 8}},
    )
    result = run_local(config)

    assert {"fine_tune_all", "self_training", "baseline", "baseline_self_training"} <= set(result.artifacts)
    metadata = read_json(os.path.join(result.artifacts["examples"], "metadata.json"))
    pool = metadata["num_examples"]["unlabeled"]
    assert pool == metadata["unlabeled"]["num_examples"] > 0 and metadata["num_examples"]["train"] == 15
    pseudo = read_json(os.path.join(result.artifacts["self_training"], "pseudo_labels.json"))
    assert pseudo["unlabeled_pool"] == pool and pseudo["labeler"].startswith("label propagation")
    assert 0 < pseudo["pseudo_labelled"] <= pool
    pseudo_ids = {example["id"] for example in pseudo["examples"]}
    assert pseudo_ids <= _ids(result.artifacts["transformed"], "unlabeled")
    labelled = set().union(*(_ids(result.artifacts["transformed"], split) for split in ("train", "eval", "test")))
    assert not pseudo_ids & labelled
    summary = read_json(os.path.join(result.artifacts["evaluation"], "summary.json"))
    assert {"self_training", "baseline", "fine_tune_all", "baseline_self_training"} <= set(summary["models"])
    verdict = summary["blessing"]["candidates"]["self_training"]
    assert verdict["matched_reference"] == "baseline_self_training"
    assert [ref for ref, result in verdict["comparisons"].items() if result["gating"]] == ["baseline_self_training"]
    assert summary["blessing"]["candidates"]["fine_tune_all"]["matched_reference"] == "baseline"
    assert [part["part"] for part in summary["gains"]["self_training"]] == [
        "module", "data_with_transfer", "data_from_scratch", "total"]
    assert summary["models"]["self_training"]["example_count"] == 18
    trained_on = summary["models"]["self_training"]["trained_on"]
    assert trained_on.startswith("15 labelled + ") and f"of {pool} unlabelled (label propagation" in trained_on
    assert "eval examples for early stopping only; from the pre-trained module" in trained_on
    assert summary["models"]["baseline"]["trained_on"].startswith("15 labelled; ")
    assert summary["models"]["baseline"]["trained_on"].endswith("from random initialisation")
    report = open(os.path.join(result.artifacts["evaluation"], "summary.md")).read()
    assert "- `self_training` trained on 15 labelled + " in report
