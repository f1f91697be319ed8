"""Fault injection: SIGKILL in every step leaves no half-written artifact, and the same command completes
with the same result as an uninterrupted run.

The harness is tests/pipeline/fault_hook/sitecustomize.py: with that folder on PYTHONPATH and
TLPIPE_TEST_KILL="before|after:REGEX", a process of the run (the `tlpipe` command or a kfp.local step
subprocess) kills itself with SIGKILL at the first rename whose destination matches REGEX.

One chain of `tlpipe run` commands on one root through kfp.local with caching, as a user would retry:
each run is killed in the next step (ingest, transform, train, evaluate, push), the last one runs to the
end. After every kill: the killed step published nothing, the serving folder holds no partial version.
At the end: every step's result equals an uninterrupted run's (test accuracies, blessing, pushed version,
push history), and steps that finished before a kill were reused from the cache, not redone.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import yaml

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.config import load_config
from tlpipe.pipeline.local_runner import run_local

from .conftest import tiny_settings

HOOK_DIR = os.path.join(os.path.dirname(__file__), "fault_hook")

# (step, where the step's process kills itself, the file that marks the step's output complete: what the
# next steps read last and what the killed step must not have left behind)
KILLS = [
    ("ingest", r"before:\.examples\.tmp-[^/]+/metadata\.json$", "examples/metadata.json"),  # shards written
    ("transform", r"before:/transformed$", "transformed/metadata.json"),  # all written, about to publish
    ("train", r"before:/model$", "model/summary.json"),  # trained, the SavedModel about to be published
    ("evaluate", r"before:/blessing\.json$", "evaluation/blessing.json"),  # metrics computed, blessing not yet
    ("push", r"after:/serving/\d+$", "pushed/push.json"),  # version published; no history line, no push.json
]


def _settings(tiny_data, tiny_module, root) -> dict:
    settings = tiny_settings(tiny_data, tiny_module, root)
    settings["pipeline"].update(enable_caching=True, mode="kfp_local")
    settings["trainer"].update(head_epochs=6)
    settings["trainer"]["baseline"].update(epochs=6)
    return settings


def _run_cli(config: str, kill: str = "", mark: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if kill:
        env.update(PYTHONPATH=os.pathsep.join([HOOK_DIR, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                   TLPIPE_TEST_KILL=kill, TLPIPE_TEST_KILL_MARK=mark)
    return subprocess.run([sys.executable, "-m", "tlpipe.pipeline.cli", "-q", "run", "--config", config],
                          capture_output=True, text=True, env=env, timeout=900)


def _versions(serving: str) -> list[str]:
    return sorted(name for name in os.listdir(serving) if name.isdigit()) if os.path.isdir(serving) else []


def _assert_no_partial_version(serving: str) -> None:
    for version in _versions(serving):
        folder = os.path.join(serving, version)
        assert os.path.isfile(os.path.join(folder, "saved_model.pb")), f"partial version {folder}"
        assert os.path.isdir(os.path.join(folder, "variables")), f"partial version {folder}"


def _outcome(record_dir: str) -> dict:
    steps = read_json(os.path.join(record_dir, "run.json"))["steps"]
    summary = read_json(os.path.join(steps["evaluation"]["artifact"], "summary.json"))
    push = read_json(os.path.join(steps["pushed"]["artifact"], "push.json"))
    return {
        "accuracy": {name: entry["accuracy"]["value"] for name, entry in summary["models"].items()},
        "blessed": summary["blessing"]["candidate"],
        "pushed": (push["pushed"], push.get("version")),
    }


def test_a_kill_in_every_step_then_the_same_command_gives_the_uninterrupted_result(tiny_data, tiny_module, tmp_path):
    reference_root = tmp_path / "reference"
    reference_config = tmp_path / "reference.yaml"
    reference_config.write_text(yaml.safe_dump(_settings(tiny_data, tiny_module, reference_root)))
    reference = run_local(load_config(str(reference_config)), mode="in_process")  # same steps, no subprocesses
    expected = _outcome(reference.record_dir)
    assert expected["pushed"] == (True, 1), expected  # the tiny data set blesses and pushes

    root = tmp_path / "root"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_settings(tiny_data, tiny_module, root)))
    serving, kfp_root = str(root / "serving"), str(root / "kfp")
    run_dirs = []
    for step, kill, marker in KILLS:
        mark = str(tmp_path / f"killed-{step}")
        before = set(os.listdir(kfp_root)) if os.path.isdir(kfp_root) else set()
        result = _run_cli(str(config), kill, mark)
        assert result.returncode != 0 and os.path.isfile(mark), (step, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        (run_dir,) = [os.path.join(kfp_root, name) for name in set(os.listdir(kfp_root)) - before - {".kfp_cache"}]
        run_dirs.append(run_dir)
        # The killed step left no output that says "complete", and the serving folder no partial version.
        killed_at = open(mark, encoding="utf-8").read().split(" ", 1)[1].strip()
        task = (os.path.relpath(killed_at, run_dir).split(os.sep)[0] if killed_at.startswith(run_dir + os.sep)
                else step)
        assert task.startswith(step) and os.path.isdir(os.path.join(run_dir, task)), (step, killed_at)
        assert not os.path.exists(os.path.join(run_dir, task, marker)), (step, marker)
        _assert_no_partial_version(serving)

    before = set(os.listdir(kfp_root))
    final = _run_cli(str(config))
    assert final.returncode == 0, final.stderr[-3000:]
    run_dirs += [os.path.join(kfp_root, name) for name in set(os.listdir(kfp_root)) - before - {".kfp_cache"}]
    # Each killed step was done again by the next command (not taken from the cache), and finished there.
    for (step, _, marker), next_run in zip(KILLS, run_dirs[1:]):
        assert glob.glob(os.path.join(next_run, f"{step}*", marker)), (step, next_run)
    (record_dir,) = sorted(glob.glob(str(root / "runs" / "*" / "run.json")))[-1:]
    record = read_json(record_dir)
    assert record["status"] == "succeeded"
    assert all(step["cached"] for name, step in record["steps"].items() if name != "pushed"), record["steps"]
    assert record["steps"]["pushed"]["cached"] is False  # the killed push ran again
    assert _outcome(os.path.dirname(record_dir)) == expected
    assert _versions(serving) == ["1"]
    history = [json.loads(line) for line in open(os.path.join(serving, "push_history.jsonl"))]
    assert [(entry["pushed"], entry["version"]) for entry in history] == [(True, 1)]
    assert not [name for name in os.listdir(serving) if name.startswith(".push-tmp-")]
