"""multi_task end to end (through kfp.local): a derived label task, the shared-base model, its single-task models and
its from-scratch baseline, evaluated per task, pushed when every task passes."""

import os

import pytest
import yaml

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.pipeline.local_runner import run_local

SHADES = {"dark": "dim", "grey": "dim", "light": "bright"}
TASKS = [{"name": "shade", "label": "label"}, {"name": "brightness", "label": "brightness", "loss_weight": 0.5}]


def test_multi_task_runs_end_to_end_with_a_derived_task(make_tiny_config):
    config = make_tiny_config(
        "multi",
        ingest={"label_tasks": {"brightness": {"mapping": SHADES}}},
        trainer={"strategies": ["multi_task"], "tasks": TASKS, "fine_tune_epochs": 2, "head_epochs": 10},
        evaluator={"compare_with_production": False, "tasks": {"brightness": {"max_drop": 1.0}, "shade": {"max_drop": 1.0}}},
    )
    result = run_local(config)

    assert {"multi_task", "multi_task_baseline"} <= set(result.artifacts) and "baseline" not in result.artifacts
    metadata = read_json(os.path.join(result.artifacts["transformed"], "metadata.json"))
    assert metadata["label_tasks"]["brightness"]["label_names"] == ["dim", "bright"]
    trained = read_json(os.path.join(result.artifacts["multi_task"], "summary.json"))
    assert set(trained["tasks"]) == {"shade", "brightness"} and set(trained["single_task"]) == {"shade", "brightness"}
    summary = read_json(os.path.join(result.artifacts["evaluation"], "summary.json"))
    assert set(summary["tasks"]) == {"shade", "brightness"}
    for task, entry in summary["tasks"].items():
        assert set(entry["models"]) == {"multi_task", f"single_task_{task}", "multi_task_baseline"}
        assert entry["models"]["multi_task"]["example_count"] == 18
    blessing = summary["blessing"]
    push = read_json(os.path.join(result.artifacts["pushed"], "push.json"))
    assert push["pushed"] == blessing["blessed"], blessing["reason"]


def test_a_task_reading_a_label_ingest_does_not_write_is_a_config_error(make_tiny_config):
    with pytest.raises(ConfigError, match=r"trainer\.tasks\[1\]\.label.*'colour'"):
        make_tiny_config("bad", trainer={"strategies": ["multi_task"],
                                         "tasks": [{"name": "a"}, {"name": "b", "label": "colour"}]})
    with pytest.raises(ConfigError, match=r"evaluator\.tasks\.c.*\['a', 'b'\]"):
        make_tiny_config("bad2", ingest={"label_tasks": {"g": {"mapping": SHADES}}},
                         trainer={"strategies": ["multi_task"], "tasks": [{"name": "a"}, {"name": "b", "label": "g"}]},
                         evaluator={"tasks": {"c": {"max_drop": 0.1}}})


def test_the_example_compiles_for_kubeflow_with_its_tasks(tmp_path):
    import json

    from tlpipe.pipeline.cli import main

    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "multi_task.yaml")
    package = tmp_path / "pipeline.yaml"
    assert main(["-q", "compile", "--config", example, "--set", "pipeline.root=/mnt/tlpipe", "-o", str(package)]) == 0
    spec = yaml.safe_load(package.read_text())
    tasks = {task["taskInfo"]["name"]: task for task in spec["root"]["dag"]["tasks"].values()}
    assert {"train-multi_task", "train-multi_task_baseline", "evaluate"} <= set(tasks)
    assert "train-baseline" not in tasks
    sections = json.loads(tasks["train-multi_task"]["inputs"]["parameters"]["sections_json"]["runtimeValue"]["constant"])
    assert [task["name"] for task in sections["trainer"]["tasks"]] == ["item", "group"]
    ingest = json.loads(tasks["ingest-target"]["inputs"]["parameters"]["sections_json"]["runtimeValue"]["constant"])
    assert ingest["ingest"]["label_tasks"]["group"]["mapping"]["Bag"] == "bags"
