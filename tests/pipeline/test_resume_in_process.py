"""Ctrl-C in the middle of a fine-tune in `pipeline.mode: in_process`, then the same command: it resumes.

In-process runs write every step into a new run folder, so the trainer's work folder is keyed by what its
inputs hold, not where (issue #26: every rerun started again from epoch 1). A real SIGINT reaches the
`tlpipe run` process; its train step leaves no output folder (only complete ones appear), keeps its
TensorBoard logs beside the checkpoints, and the rerun continues at the next epoch and ends with exactly the
history and test accuracy of an uninterrupted run.
"""

import glob
import os
import signal
import subprocess
import sys
import time

from tlpipe.models.artifacts import read_json
from tlpipe.models.layout import LOG_DIR
from tlpipe.pipeline.local_runner import run_local

from .conftest import training_history, training_state

STRATEGY = "fine_tune_all"
SETTINGS = dict(pipeline={"mode": "in_process"},
                trainer={"strategies": [STRATEGY], "head_epochs": 2, "fine_tune_epochs": 6,
                         "early_stopping_patience": 6, "baseline": {"epochs": 2}})
INTERRUPT_AT = 2  # fine-tune epochs finished (and checkpointed) before the SIGINT


def _test_accuracy(result) -> dict:
    models = read_json(os.path.join(result.artifacts["evaluation"], "summary.json"))["models"]
    return {name: model["accuracy"]["value"] for name, model in models.items()}


def test_ctrl_c_in_a_fine_tune_in_process_then_the_same_command_resumes_at_the_next_epoch(make_tiny_config,
                                                                                           tmp_path):
    config = make_tiny_config("interrupted", **SETTINGS)
    root = config.pipeline.root
    process = subprocess.Popen([sys.executable, "-m", "tlpipe.pipeline.cli", "-q", "run", "--config",
                                str(tmp_path / "interrupted.yaml")], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (training_state(root, STRATEGY).get("phase_index") == 1 and training_state(root, STRATEGY).get("epoch", 0) >= INTERRUPT_AT):
            assert process.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        err = process.communicate(timeout=300)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    interrupted_at = training_state(root, STRATEGY)
    assert interrupted_at["phase_index"] == 1 and not interrupted_at["done"]
    (record_dir,) = glob.glob(os.path.join(root, "runs", "*"))
    record = read_json(os.path.join(record_dir, "run.json"))
    assert record["status"] == "interrupted" and record["step"] == f"train-{STRATEGY}"
    (run_dir,) = glob.glob(os.path.join(root, "in_process", "*"))
    assert not [name for name in os.listdir(run_dir) if STRATEGY in name]  # no half-written output, no temp folder
    (work_dir,) = glob.glob(os.path.join(root, "work", f"train-{STRATEGY}-*"))
    assert os.listdir(os.path.join(work_dir, LOG_DIR))  # the interrupted fit's TensorBoard logs, kept

    resumed = run_local(config)
    history = read_json(os.path.join(resumed.artifacts[STRATEGY], "history.json"))
    assert history["resumed_from"] == [{"phase": "fine_tune", "epoch": interrupted_at["epoch"],
                                        "step": interrupted_at["step"]}]
    uninterrupted = run_local(make_tiny_config("uninterrupted", **SETTINGS))
    assert training_history(resumed, STRATEGY) == training_history(uninterrupted, STRATEGY)
    assert _test_accuracy(resumed) == _test_accuracy(uninterrupted)
