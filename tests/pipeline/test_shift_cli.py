"""`tlpipe shift`: both domains ingested and transformed, the shift measured and explained; clear class errors."""

import json
import os

import numpy as np
import pytest

from tlpipe.components.evaluator.shift import after_training_verdict, render_markdown
from tlpipe.pipeline.cli import main

pytestmark = pytest.mark.quick

SIZE = 12


def _write_shifted_idx(folder, per_class: int = 12) -> None:
    """The conftest's three brightness classes, inverted and with noise: another domain, the same classes."""
    rng = np.random.default_rng(7)
    for prefix in ("train", "t10k"):
        labels = np.repeat(np.arange(3, dtype=np.uint8), per_class)
        images = np.clip(255 - (40 + 80 * labels[:, None, None]) + rng.integers(-40, 41, (len(labels), SIZE, SIZE)),
                         0, 255).astype(np.uint8)
        header = np.array([0x0803, len(labels), SIZE, SIZE], ">u4").tobytes()
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([0x0801, len(labels)], ">u4").tobytes() + labels.tobytes())


@pytest.fixture
def shifted_data(tmp_path):
    folder = tmp_path / "shifted"
    folder.mkdir()
    _write_shifted_idx(folder)
    return folder


def _source(tiny_data):
    return {"ingest": {"source": f"idx:{tiny_data}", "splits": {"train": "train[:75%]", "eval": "train[75%:]"},
                       "label_names": ["dark", "grey", "light"], "classes": []}}


def test_shift_prints_and_writes_the_measure(make_tiny_config, tiny_data, shifted_data, tmp_path, capsys):
    make_tiny_config("shift", source=_source(tiny_data),
                     ingest={"source": f"idx:{shifted_data}", "shots": {}},
                     trainer={"domain": {"shift_samples": 30}})
    output = tmp_path / "out"
    assert main(["-q", "shift", "--config", str(tmp_path / "shift.yaml"), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "proxy A-distance" in printed and "MMD^2" in printed
    result = json.load(open(output / "shift.json"))
    before = result["before"]
    # up to trainer.domain.shift_samples of each: 30 of the ~45 source train images, all ~27 target ones
    assert before["num_source"] == 30 and 20 < before["num_target"] < 30
    assert before["proxy_a_distance"] > 1.5  # inverted images: a linear probe separates them
    assert result["verdict"].startswith("The domains are far apart")
    assert os.path.isdir(output / "data" / "transform-target" / "train")


def test_shift_refuses_domains_with_other_classes(make_tiny_config, tiny_data, shifted_data, tmp_path, capsys):
    make_tiny_config("mismatch", source=_source(tiny_data),
                     ingest={"source": f"idx:{shifted_data}", "shots": {}, "classes": ["dark", "grey"]})
    assert main(["shift", "--config", str(tmp_path / "mismatch.yaml"), "-o", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "['dark', 'grey', 'light']" in error and "['dark', 'grey']" in error
    assert "only in the source: ['light']" in error


def _row(pad_after, accuracy, diff):
    return {"after": {"proxy_a_distance": pad_after, "mmd2": 0.1},
            "accuracy": {"value": accuracy, "lower": accuracy - 0.01, "upper": accuracy + 0.01},
            "accuracy_diff": {"value": diff, "lower": diff - 0.02, "upper": diff + 0.02}}


def test_the_report_says_negative_transfer_in_plain_words():
    before = {"proxy_a_distance": 1.8, "probe_error": 0.05, "mmd2": 0.3, "num_source": 100, "num_target": 100,
              "level": "large"}
    report = {"reference": "source_only", "before": before, "models": {
        "domain_adaptation": _row(1.2, 0.40, -0.10), "source_only": _row(1.7, 0.50, 0.0)}}
    report["models"]["source_only"].pop("accuracy_diff")
    verdict = after_training_verdict(report)
    assert verdict.startswith("The domains are far apart")
    assert "negative transfer" in verdict and "0.100 below" in verdict
    report["models"]["domain_adaptation"] = _row(1.2, 0.60, 0.10)
    assert after_training_verdict(report).startswith("Adaptation paid off")
    report["verdict"] = after_training_verdict(report)
    assert "| domain_adaptation | 1.200 |" in render_markdown(report)
