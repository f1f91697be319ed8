"""Ctrl-C in the middle of a fine-tune in `pipeline.mode: in_process`, then a full disk in the next command,
then the same command once more: it resumes each time.

In-process runs write every step into a new run folder, so the trainer's work folder is keyed by what its
inputs hold, not where (issue #26: every rerun started again from epoch 1). A real SIGINT reaches the
`tlpipe run` process (sent by the process itself at a named checkpoint, tests/pipeline/fault_hook); its train step leaves no output folder (only complete ones appear), keeps its
TensorBoard logs beside the checkpoints, and the rerun continues at the next epoch. That rerun meets a full
disk (an injected ENOSPC when a checkpoint is published, tests/pipeline/fault_hook): one line naming the
folder, the record "failed" with it, no temporary file left. The third command continues from the last
complete checkpoint and ends with exactly the history and test accuracy of an uninterrupted run.
"""

import glob
import os
import re
import signal
import subprocess
import sys

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.models.plumbing.layout import LOG_DIR
from tlpipe.pipeline.local_runner import run_local

from .conftest import training_history, training_state

STRATEGY = "fine_tune_all"
SETTINGS = dict(pipeline={"mode": "in_process"},
                trainer={"strategies": [STRATEGY], "head_epochs": 2, "fine_tune_epochs": 6,
                         "early_stopping_patience": 6, "baseline": {"epochs": 2}})
INTERRUPT_AT = 2  # fine-tune epochs finished (and checkpointed) before the SIGINT
FULL_AT = INTERRUPT_AT + 2  # the fine-tune epoch whose checkpoint finds the disk full
HOOK_DIR = os.path.join(os.path.dirname(__file__), "fault_hook")


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child before it runs: SIGINT delivered and handled by default. A child inherits an ignored or
    blocked SIGINT, and an earlier test's library can leave one so in the pytest worker (measured: the run then
    ignored its Ctrl-C and finished with exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _run_cli(config, **fault) -> subprocess.CompletedProcess:
    """`tlpipe -q run --config CONFIG` with a fault armed by tests/pipeline/fault_hook (`fault`: its variable)."""
    return subprocess.run([sys.executable, "-m", "tlpipe.pipeline.cli", "-q", "run", "--config", str(config)],
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": HOOK_DIR, **fault},
                          capture_output=True, text=True, timeout=600, preexec_fn=_ctrl_c_as_in_a_terminal)


def _test_accuracy(result) -> dict:
    models = read_json(os.path.join(result.artifacts["evaluation"], "summary.json"))["models"]
    return {name: model["accuracy"]["value"] for name, model in models.items()}


def test_ctrl_c_then_a_full_disk_mid_fine_tune_in_process_and_the_same_command_resumes(make_tiny_config, tmp_path):
    config = make_tiny_config("interrupted", **SETTINGS)
    root = config.pipeline.root
    # Ctrl-C as the checkpoint of fine-tune epoch INTERRUPT_AT + 1 is published: INTERRUPT_AT epochs are saved.
    interrupted = _run_cli(tmp_path / "interrupted.yaml",
                           TLPIPE_TEST_SIGINT=rf"/epoch-fine_tune-{INTERRUPT_AT + 1:04d}\.weights\.h5$")
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    interrupted_at = training_state(root, STRATEGY)
    assert (interrupted_at["phase_index"], interrupted_at["epoch"]) == (1, INTERRUPT_AT) and not interrupted_at["done"]
    (record_dir,) = glob.glob(os.path.join(root, "runs", "*"))
    record = read_json(os.path.join(record_dir, "run.json"))
    assert record["status"] == "interrupted" and record["step"] == f"train-{STRATEGY}"
    (run_dir,) = glob.glob(os.path.join(root, "in_process", "*"))
    assert not [name for name in os.listdir(run_dir) if STRATEGY in name]  # no half-written output, no temp folder
    (work_dir,) = glob.glob(os.path.join(root, "work", f"train-{STRATEGY}-*"))
    assert os.listdir(os.path.join(work_dir, LOG_DIR))  # the interrupted fit's TensorBoard logs, kept

    full = _run_cli(tmp_path / "interrupted.yaml", TLPIPE_TEST_ENOSPC=rf"/epoch-fine_tune-{FULL_AT:04d}\.weights\.h5$")
    assert full.returncode == 1, full.stderr[-2000:]
    assert "Traceback" not in full.stderr and "Segmentation" not in full.stderr
    (line,) = [line for line in full.stderr.splitlines() if "no space left on device" in line]
    assert re.search(rf"no space left on device writing {re.escape(root)}/work/train-{STRATEGY}-\w+/checkpoints",
                     line)
    records = sorted(glob.glob(os.path.join(root, "runs", "*")))
    failed = read_json(os.path.join(records[-1], "run.json"))
    assert failed["status"] == "failed" and "no space left on device" in failed["error"]
    assert [path for path in glob.glob(os.path.join(root, "**", "*"), recursive=True) if ".tmp-" in path] == []
    full_at = training_state(root, STRATEGY)
    assert (full_at["phase_index"], full_at["epoch"]) == (1, FULL_AT - 1)  # the last complete checkpoint

    resumed = run_local(config)
    history = read_json(os.path.join(resumed.artifacts[STRATEGY], "history.json"))
    assert [(entry["phase"], entry["epoch"]) for entry in history["resumed_from"]] == [
        ("fine_tune", interrupted_at["epoch"]), ("fine_tune", FULL_AT - 1)]
    uninterrupted = run_local(make_tiny_config("uninterrupted", **SETTINGS))
    assert training_history(resumed, STRATEGY) == training_history(uninterrupted, STRATEGY)
    assert _test_accuracy(resumed) == _test_accuracy(uninterrupted)
