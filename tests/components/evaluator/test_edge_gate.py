"""The evaluator's edge gate end to end (real TFMA): an int8 export calibrated on unrepresentative images loses
most of its accuracy, the blessing is withdrawn with the reason in words, the report shows the table, and the
pusher pushes nothing.

The conftest's `trained` model against its `constant` baseline is blessed by TFMA; the dataset's train split
is all black, so tflite_int8's calibration sees only zeros and saturates on real images, while the float
export keeps the SavedModel's answers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.executor import run_evaluator
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.pusher.executor import run_pusher
from tlpipe.models.plumbing.errors import NotBlessedError
from tlpipe.models.plumbing.layout import EDGE_DIR, SUMMARY_MD

from .conftest import serialize


def test_a_surely_large_drop_blocks_the_push_with_its_reason(tmp_path, dataset_writer, test_split, model_dirs):
    black = np.zeros((12, 8, 8, 1), np.uint8)
    dataset = dataset_writer(str(tmp_path / "transformed"),
                             {"train": serialize(black, np.zeros(12, int)), "test": test_split[2]})
    output = tmp_path / "evaluation"
    summary = run_evaluator(EvaluatorConfig(), dataset, {"fine_tune_all": model_dirs["trained"]},
                            {"baseline": model_dirs["constant"]}, str(output), edge_formats=["tflite", "tflite_int8"])

    blessing = json.loads((output / "blessing.json").read_text())
    assert not blessing["blessed"] and not blessing["edge"]["passed"]
    assert "'fine_tune_all' passed the evaluation, but not every edge export" in blessing["reason"]
    assert "tflite_int8 is blocked" in blessing["reason"] and "evaluator.edge_max_drop 0.010" in blessing["reason"]
    results = summary["edge"]["results"]
    assert not results["tflite"]["blocked"] and results["tflite"]["difference"]["value"] == 0.0
    assert results["tflite_int8"]["blocked"] and results["tflite_int8"]["difference"]["upper"] < -0.01
    assert sorted(os.listdir(output / EDGE_DIR)) == ["edge.json", "tflite.tflite", "tflite_int8.tflite"]
    markdown = (output / SUMMARY_MD).read_text()
    assert "## Edge exports" in markdown and "| tflite_int8 |" in markdown and "BLOCKED" in markdown
    assert "Edge exports" in (output / "report" / "index.html").read_text()

    with pytest.raises(NotBlessedError, match="tflite_int8 is blocked"):
        run_pusher(PusherConfig(formats=["saved_model", "tflite", "tflite_int8"]), model_dirs["trained"],
                   str(output / "blessing.json"), str(tmp_path / "serving"))
