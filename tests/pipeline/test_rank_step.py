"""trainer.candidates: a rank step picks the module the trainers build on, and says why."""

import os

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.local_runner import run_local


def test_the_rank_step_hands_the_best_candidate_to_every_trainer(make_tiny_config, tiny_module, blind_module,
                                                                 tmp_path):
    missing = str(tmp_path / "no_such_module")
    config = make_tiny_config(pipeline={"mode": "in_process"},
                              trainer={"handle": "", "candidates": [tiny_module, blind_module, missing],
                                       "select": "logme"})
    result = run_local(config)

    for strategy in ("feature_extraction", "baseline"):
        summary = read_json(os.path.join(result.artifacts[strategy], "summary.json"))
        assert summary["handle"] == tiny_module
        assert summary["module_selection"]["handle"] == tiny_module
        assert "logme" in summary["module_selection"]["reason"]
    ranking = read_json(os.path.join(summary["module_selection"]["ranking"], "rank.json"))
    statuses = {c["candidate"]: c["status"] for c in ranking["candidates"]}
    assert statuses == {tiny_module: "ok", blind_module: "ok", missing: "failed"}
