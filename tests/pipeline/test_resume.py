"""kill -9 in the middle of training, then the same command: training resumes at the next epoch.

The history records where a fit resumed (`resumed_from`); the trainer's log says it too.

The trainer's checkpoints live under `<root>/work/<step>-<cache key>`, where a
rerun of the same work finds them (kfp.local gives every run new task folders,
and ingest and transform come back from the cache with the same paths). The
resumed run ends with exactly the metrics of an uninterrupted one.
"""

import os
import signal
import subprocess
import sys
import time

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.local_runner import run_local

from .conftest import training_history, training_state

KILL_AT_EPOCH = 2  # the baseline's second epoch is finished and checkpointed: kill during the third


def test_a_killed_run_resumes_training_and_ends_like_an_uninterrupted_one(make_tiny_config, tmp_path):
    settings = dict(pipeline={"enable_caching": True, "mode": "kfp_local"},
                    trainer={"baseline": {"architecture": "small_cnn", "cnn_filters": [8, 8], "epochs": 40},
                             "head": {"dropout": 0.3}})
    config = make_tiny_config("killed", **settings)
    root = config.pipeline.root
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "tlpipe.pipeline.cli", "-q", "run", "--config",
                                str(tmp_path / "killed.yaml")], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while training_state(root, "baseline").get("epoch", 0) < KILL_AT_EPOCH:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = training_state(root, "baseline")
    assert not killed_at.get("done") and killed_at["epoch"] >= KILL_AT_EPOCH

    resumed = run_local(config)
    assert resumed.cached["examples"] and resumed.cached["transformed"]
    assert not resumed.cached["baseline"]
    history = read_json(os.path.join(resumed.artifacts["baseline"], "history.json"))
    assert history["resumed_from"] == [{"phase": "baseline", "epoch": killed_at["epoch"], "step": killed_at["step"]}]

    uninterrupted = run_local(make_tiny_config("uninterrupted", **settings))
    assert training_history(resumed, "baseline") == training_history(uninterrupted, "baseline")
    accuracy = {name: read_json(os.path.join(result.artifacts["evaluation"], "summary.json"))["models"]
                for name, result in (("resumed", resumed), ("uninterrupted", uninterrupted))}
    assert {m: v["accuracy"]["value"] for m, v in accuracy["resumed"].items()} == \
        {m: v["accuracy"]["value"] for m, v in accuracy["uninterrupted"].items()}
