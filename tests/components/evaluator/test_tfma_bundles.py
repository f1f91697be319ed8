"""The evaluator reads the test split in bundles of `BUNDLE_RECORDS` examples (bounded memory, bench/README.md
"Scale"): a split over several shards and many bundles gives the numbers of the models' own predictions."""

from __future__ import annotations

import numpy as np
import pytest

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator import tfma_analysis
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.executor import run_evaluator
from tlpipe.models.plumbing import example_format as fmt

LABEL_NAMES = ["left", "middle", "right"]  # as in conftest.py


def _three_shards(root: str, dataset_writer, records: list[bytes]) -> str:
    """The test split in shards of 7, 2 and 11 examples."""
    import tensorflow as tf

    root = dataset_writer(root, {"test": records[:7]})
    for number, part in ((1, records[7:9]), (2, records[9:])):
        with tf.io.TFRecordWriter(f"{fmt.shard_prefix(root, 'test')}-0000{number}-of-00003{fmt.SHARD_SUFFIX}") as out:
            for record in part:
                out.write(record)
    return root


def test_many_bundles_over_several_shards_count_every_example_once(
        tmp_path, monkeypatch, dataset_writer, model_dirs, predictions, test_split):
    _, labels, records = test_split
    root = _three_shards(str(tmp_path / "data"), dataset_writer, records)
    monkeypatch.setattr(tfma_analysis, "BUNDLE_RECORDS", 3)
    summary = run_evaluator(EvaluatorConfig(), root, {"partial": model_dirs["partial"]},
                            {"constant": model_dirs["constant"]}, str(tmp_path / "evaluation"))
    for name in ("partial", "constant"):
        predicted = predictions[name].argmax(axis=1)
        confusion = np.zeros((3, 3), dtype=int)
        np.add.at(confusion, (labels, predicted), 1)
        got = summary["models"][name]
        assert got["example_count"] == 20 and got["confusion_matrix"] == confusion.tolist()
        assert got["accuracy"]["value"] == pytest.approx({"partial": 0.65, "constant": 0.30}[name], abs=1e-6)
        assert got["accuracy"]["lower"] <= got["accuracy"]["value"] <= got["accuracy"]["upper"]
        for label in LABEL_NAMES:
            assert got["per_class"][label]["example_count"] == int((labels == LABEL_NAMES.index(label)).sum())
    diff = summary["comparisons"]["constant"]["candidates"]["partial"]["accuracy_diff"]
    assert diff["value"] == pytest.approx(0.35, abs=1e-6) and diff["lower"] <= 0.35 <= diff["upper"]


def test_on_the_multi_processing_runner_every_example_is_evaluated(tmp_path, monkeypatch, dataset_writer,
                                                                    model_dirs, test_split):
    # Beam's multi-processing runner loses the residuals of a read that checkpoints itself: no bundles there.
    root = _three_shards(str(tmp_path / "data"), dataset_writer, test_split[2])
    monkeypatch.setattr(tfma_analysis, "BUNDLE_RECORDS", 3)
    summary = run_evaluator(EvaluatorConfig(), root, {"partial": model_dirs["partial"]},
                            {"constant": model_dirs["constant"]}, str(tmp_path / "evaluation"),
                            beam_config=BeamConfig(runner="multi_processing", num_workers=2))
    assert summary["num_examples"] == 20 and summary["models"]["partial"]["example_count"] == 20
    assert summary["models"]["partial"]["accuracy"]["value"] == pytest.approx(0.65, abs=1e-6)
