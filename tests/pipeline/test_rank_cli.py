"""`tlpipe rank` end to end: ingest and transform the tiny target, rank tiny hub modules, report."""

from __future__ import annotations

import json
import os

import pytest

from tlpipe.pipeline.cli import main

pytestmark = pytest.mark.quick


def test_rank_recommends_the_seeing_module_and_reports_the_bad_one(make_tiny_config, tiny_module, blind_module,
                                                                    tmp_path, capsys):
    make_tiny_config("rank")
    output = tmp_path / "ranking"
    status = main(["-q", "rank", "--config", str(tmp_path / "rank.yaml"), "-o", str(output),
                   "--candidates", "/no/such/module", blind_module, tiny_module])
    printed = capsys.readouterr().out
    assert status == 0
    assert f"recommended: {tiny_module}" in printed
    assert "| rank | candidate | logme |" in printed
    ranking = json.loads((output / "rank.json").read_text())
    assert ranking["recommended"] == tiny_module
    assert ranking["num_examples"] == 15  # ingest.shots.train: 5 per class, 3 classes
    statuses = {entry["candidate"]: entry["status"] for entry in ranking["candidates"]}
    assert statuses == {"/no/such/module": "failed", blind_module: "ok", tiny_module: "ok"}
    assert os.path.exists(output / "rank.html") and os.path.exists(output / "rank.png")
    assert os.path.isdir(output / "data" / "transform" / "train")


def test_rank_with_no_loadable_candidate_fails_with_one_line(make_tiny_config, tmp_path, capsys):
    make_tiny_config("rank_bad")
    status = main(["-q", "rank", "--config", str(tmp_path / "rank_bad.yaml"), "-o", str(tmp_path / "out"),
                   "--set", "transform.image_size=[12,12]", "--set", "transform.channels=1",
                   "--candidates", "/no/such/module"])
    error = capsys.readouterr().err
    assert status == 1
    assert error.startswith("tlpipe: error: no candidate could be ranked: every candidate failed")
    assert "cannot load hub module '/no/such/module'" in error
