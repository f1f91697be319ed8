"""`tlpipe runs` and `tlpipe report` over real run records; records never left "running"."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from tlpipe.models.plumbing.artifacts import read_json, write_json
from tlpipe.pipeline.cli import main
from tlpipe.pipeline.cli_runs import serve_folder
from tlpipe.pipeline.run_record import RUN_FILE
from tlpipe.pipeline.step_processes import alive, descendants


def _records(root) -> list[dict]:
    runs = os.path.join(root, "runs")
    return [read_json(os.path.join(runs, name, RUN_FILE)) for name in sorted(os.listdir(runs))
            if os.path.isfile(os.path.join(runs, name, RUN_FILE))]


def test_runs_lists_both_runs_and_report_finds_each_report(two_cli_runs, capsys):
    _, root, first, second = two_cli_runs
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-2000:], second.stderr[-2000:])
    records = _records(root)  # the fixture's two runs (test_quiet_output may have added a third)
    assert len(records) >= 2 and all(r["status"] == "succeeded" for r in records)

    assert main(["runs", "--root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "started", "status", "duration", "cached", "headline", "blessed", "pushed"]
    assert [line.split()[0] for line in lines[1:]] == [r["run_id"] for r in records]
    cached = [sum(step["cached"] for step in record["steps"].values()) for record in records]
    assert cached[0] == 0 and cached[1] == len(records[1]["steps"])  # an identical rerun is cached step for step
    # Each record names the kfp folder of the steps it ran itself: none for the rerun taken from the cache.
    assert all(step["artifact"].startswith(records[0]["run_dir"] + os.sep) for step in records[0]["steps"].values())
    assert records[1]["run_dir"] == ""
    for line, count, record in zip(lines[1:], cached, records):
        assert f" {count}/{len(record['steps'])} " in line
    for line, record in zip(lines[1:], records):
        outcome = record["outcome"]
        assert "succeeded" in line and f"feature_extraction {outcome['accuracy']['feature_extraction']['value']:.3f}" \
            in line and "vs baseline" in line
        assert line.rstrip().endswith(f"v{outcome['pushed_version']}" if outcome["pushed_version"] else "no")

    assert main(["report", "--root", str(root)]) == 0
    latest = capsys.readouterr().out.strip()
    assert latest == records[-1]["outcome"]["report"] and os.path.isfile(latest)
    assert main(["report", "--root", str(root), records[0]["run_id"]]) == 0
    assert capsys.readouterr().out.strip() == records[0]["outcome"]["report"]
    assert main(["report", "--root", str(root), "no-such-run"]) == 1
    assert "run 'no-such-run': no run" in capsys.readouterr().err

    server = serve_folder(os.path.dirname(latest))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1" and port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
    finally:
        server.shutdown()
        server.server_close()


def test_a_stale_running_record_is_marked_interrupted_and_a_live_one_is_not(tmp_path, capsys):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    for run_id, pid in (("20260101-000000-000001", dead_pid), ("20260101-000000-000002", os.getpid())):
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        write_json(str(tmp_path / "runs" / run_id / RUN_FILE),
                   {"run_id": run_id, "status": "running", "started": "2026-01-01T00:00:00", "step": "train",
                    "process": {"host": socket.gethostname(), "pid": pid, "process_start": None}})
    assert main(["runs", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "interrupted (train)" in out and "running (train)" in out
    stale, live = _records(tmp_path)
    assert stale["status"] == "interrupted" and "killed" in stale["reason"] and stale["finished"]
    assert live["status"] == "running"


def test_a_failed_step_is_recorded_with_its_name(make_tiny_config, tmp_path, capsys):
    make_tiny_config("fails", pipeline={"mode": "kfp_local"}, ingest={"shots": {"train": 100, "eval": 2}})
    assert main(["run", "--config", str(tmp_path / "fails.yaml")]) == 1
    assert "step 'ingest-target' failed" in capsys.readouterr().err  # the graph's step name, not kfp's task name
    (record,) = _records(tmp_path / "fails" / "root")
    assert record["status"] == "failed" and record["step"] == "ingest-target" and "DataError" in record["error"]


def test_sigterm_during_a_run_records_it_as_interrupted_at_its_step(make_tiny_config, tmp_path):
    make_tiny_config("terminated", pipeline={"mode": "kfp_local"})
    runs = tmp_path / "terminated" / "root" / "runs"
    process = subprocess.Popen([sys.executable, "-m", "tlpipe.pipeline.cli", "run", "--config",
                                str(tmp_path / "terminated.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            records = _records(runs.parent) if runs.is_dir() else []
            steps = descendants(process.pid)  # kfp.local's process of the ingest step, once it started it
            if records and records[0].get("step") == "ingest-target" and steps:
                break
            time.sleep(0.5)
        assert process.poll() is None, "the run ended before its ingest step started"
        process.send_signal(signal.SIGTERM)  # to the command only, as `kill PID` does: not to its step
        err = process.communicate(timeout=600)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143 and "tlpipe: interrupted (SIGTERM)" in err  # 128 + 15, as the shell reports
    assert not [pid for pid in steps if alive(pid)]  # no step process outlived the command (issue #26)
    (record,) = _records(runs.parent)
    assert record["status"] == "interrupted" and record["step"] == "ingest-target" and "SIGTERM" in record["reason"]
