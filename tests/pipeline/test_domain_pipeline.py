"""Domain adaptation through kfp.local: the labelled source domain is ingested and transformed beside the
target, DANN trains, and the evaluator compares it with source_only (AdaBN needs a base with batch norm:
tests/components/trainer/test_domain_adaptation.py)."""

import html
import os

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.local_runner import run_local


def test_domain_strategies_run_end_to_end_through_kfp_local(make_tiny_config, tiny_data):
    source_ingest = {"source": f"idx:{tiny_data}", "splits": {"train": "train[:75%]", "eval": "train[75%:]"},
                     "label_names": ["dark", "grey", "light"], "classes": [], "shots": {}}
    config = make_tiny_config(
        "domains", pipeline={"mode": "kfp_local"}, source={"ingest": source_ingest},
        trainer={"strategies": ["domain_adaptation"],
                 "domain": {"unlabeled_split": "train", "epochs": 2, "steps_per_epoch": 3, "batch_size": 8,
                            "discriminator_units": [4], "shift_samples": 8}},
    )
    result = run_local(config)

    assert {"domain_adaptation", "source_only"} <= set(result.artifacts)
    assert "baseline" not in result.artifacts
    summary = read_json(os.path.join(result.artifacts["evaluation"], "summary.json"))
    roles = {name: entry["role"] for name, entry in summary["models"].items()}
    assert roles == {"domain_adaptation": "candidate", "source_only": "baseline"}
    dann = read_json(os.path.join(result.artifacts["domain_adaptation"], "summary.json"))
    assert dann["method"] == "dann" and "proxy_a_distance" in str(dann["shift"])

    # The evaluate step reports the shift before and after each model's training beside its target accuracy.
    evaluation = result.artifacts["evaluation"]
    shift = read_json(os.path.join(evaluation, "shift_report.json"))
    assert shift == summary["domain_shift"] and set(shift["models"]) == {"domain_adaptation", "source_only"}
    trained = read_json(os.path.join(result.artifacts["domain_adaptation"], "shift.json"))
    assert shift["before"] == trained["before"]
    assert shift["models"]["domain_adaptation"]["after"] == trained["after"]
    assert shift["models"]["domain_adaptation"]["accuracy"] == summary["models"]["domain_adaptation"]["accuracy"]
    assert shift["models"]["domain_adaptation"]["accuracy_diff"] == \
        summary["comparisons"]["source_only"]["candidates"]["domain_adaptation"]["accuracy_diff"]
    for page in ("summary.md", "shift_report.md"):
        text = open(os.path.join(evaluation, page), encoding="utf-8").read()
        assert "Domain shift" in text and shift["verdict"] in text
    index = open(os.path.join(evaluation, "report", "index.html"), encoding="utf-8").read()
    assert "<h2>Domain shift</h2>" in index and html.escape(shift["verdict"]) in index
