"""The terminal of `tlpipe run`: a line per step and a few bar lines; kfp's and TensorFlow's output only in kfp.log."""

import glob
import io
import os
import re
import sys

from tlpipe.models.plumbing import progress
from tlpipe.pipeline.console import capture

STEP_LINE = re.compile(r"^\d\d:\d\d:\d\d  (\S+)\s+(started|done in \d+ s|cached)")
NOISE = ("executor_input", "UserWarning", "RuntimeWarning", "have no effect in the current local runner",
         "oneDNN", "cuInit", "cuda", "KFP Executor")


def _log(root) -> str:
    logs = sorted(glob.glob(os.path.join(root, "runs", "*", "kfp.log")))
    return open(logs[0], encoding="utf-8").read()


def test_a_run_shows_step_lines_and_a_few_bar_lines_and_logs_everything_else(two_cli_runs):
    _, root, first, _ = two_cli_runs
    assert first.returncode == 0, first.stderr[-3000:]
    terminal = first.stderr
    for noise in NOISE:
        assert noise not in terminal, noise
    steps = [STEP_LINE.match(line) for line in terminal.splitlines()]
    started = [m.group(1) for m in steps if m and m.group(2) == "started"]
    ended = [m.group(1) for m in steps if m and m.group(2).startswith("done")]
    assert {"ingest-target", "transform-target", "evaluate", "push"} <= set(started) and sorted(started) == sorted(ended)
    assert re.search(r"ingest-target\s+done in \d+ s  \d+ examples", terminal)
    assert re.search(r"evaluate\s+done in \d+ s  (blessed: \w+|not blessed)", terminal)
    for strategy in ("feature_extraction", "baseline"):  # the graph's step names, not kfp's (train, train-2)
        assert re.search(rf"train-{strategy}\s+done in \d+ s  {strategy}: eval accuracy \d\.\d{{3}}", terminal), \
            strategy
    bars = [line for line in terminal.splitlines() if "]  epoch " in line]
    phases = {line.split("  [")[0] for line in bars}
    assert phases and all(sum(line.startswith(p + "  [") for line in bars) <= 4 for p in phases), bars
    assert len(terminal.splitlines()) <= 40
    assert "test accuracy on 18 examples" in first.stdout

    log = _log(root)  # everything the terminal did not show
    # (not TensorFlow's start-up lines: which ones it prints depends on the CPU)
    for expected in ("executor_input", "have no effect in the current local runner", "epoch 20/20"):
        assert expected in log, expected


def test_verbose_shows_kfp_and_quiet_shows_only_the_headline(two_cli_runs, tlpipe_process):
    path, _, _, verbose = two_cli_runs
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "have no effect in the current local runner" in verbose.stderr
    assert re.search(r"cache hit", verbose.stderr)
    assert re.search(r"^\d\d:\d\d:\d\d  ingest-target\s+cached", verbose.stderr, re.M)

    quiet = tlpipe_process("-q", "run", "--config", str(path))
    assert quiet.returncode == 0 and quiet.stderr.strip() == "", quiet.stderr
    assert quiet.stdout.startswith("test accuracy on 18 examples")


def test_capture_keeps_descriptor_output_in_the_log_and_renders_step_and_bar_events(tmp_path):
    # What a step in this process writes (C-level writes included) reaches only the log; its events the terminal.
    terminal = io.StringIO()
    log_path = tmp_path / "kfp.log"
    seen = []
    stderr = sys.stderr
    sys.stderr = terminal
    try:
        with capture(str(log_path), progress.NORMAL, on_step=seen.append) as console:
            os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")
            print("Got executor_input: {}")
            with progress.step("ingest"):
                bar = progress.Bar("trainer [x] head", epochs=8, steps_per_epoch=2, interval_s=0.0)
                for epoch in range(1, 8):
                    bar.epoch_end(epoch, 2 * epoch, 0.5, 0.5)
                bar.finish(8, 16, 0.75, 0.5)
            progress.log("a detail")
            try:
                with progress.step("train"):
                    raise ValueError("a failing step")
            except ValueError:
                pass
    finally:
        sys.stderr = stderr
    shown = terminal.getvalue()
    assert "oneDNN" not in shown and "executor_input" not in shown and "a detail" not in shown
    assert re.search(r"ingest\s+started", shown) and re.search(r"ingest\s+done in 0 s", shown)
    assert shown.count("trainer [x] head  [") == 4  # 25%, 50%, 75% and the end, not one per epoch
    assert "epoch 8/8" in shown and "done in" in shown
    assert re.search(r"train\s+failed after 0 s", shown)
    assert seen == ["ingest", "train"] and console.current_step == "train"  # what a failed run's record names
    log = log_path.read_text()
    assert "oneDNN" in log and "executor_input" in log and "a detail" in log


def test_a_terminal_bar_is_redrawn_in_place():
    stream = io.StringIO()
    renderer = progress.Renderer(stream, tty=True)
    event = {"id": "p", "label": "p", "epoch": 1, "epochs": 2, "step": 1, "accuracy": 0.5, "val_accuracy": None,
             "fraction": 0.25, "elapsed": 3.0, "done": False, "remark": ""}
    renderer.bar(event)
    renderer.line("20:00:00  train  started")
    renderer.bar({**event, "epoch": 2, "fraction": 1.0, "done": True})
    text = stream.getvalue()
    assert text.count("\n") == 2 and text.count("\r\x1b[K") == 3
    assert "eta 0:09" in text and text.endswith("done in 0:03\n")
