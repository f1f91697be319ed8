"""Domain adaptation through kfp.local: the labelled source domain is ingested and transformed beside the
target, DANN trains, and the evaluator compares it with source_only (AdaBN needs a base with batch norm:
tests/components/trainer/test_domain_adaptation.py)."""

import os

from tlpipe.models.artifacts import read_json
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
