"""Benchmark: the whole local pipeline vs a hand-written Keras script, wall time and peak memory per step.

1. `tlpipe publish-source` pre-trains and publishes the embedded default's
   source module (once per `--root`; its steps are measured too).
2. `tlpipe run` (kfp.local, the embedded default, a fresh pipeline root that
   uses that module) with nothing cached, then again with nothing changed.
3. `bench/handwritten_keras.py`: the same training and test accuracy written
   by hand (no Beam, TFRecords, TFMA, export, subprocesses).

Every process of a run (the `tlpipe` process and each kfp.local step) records
its wall time from interpreter start-up, CPU time and peak RSS
(bench/step_hook/sitecustomize.py), so the overhead can be put on steps:
start-up and imports, Beam, TFMA, export, push. Prints and writes one JSON.

    .venv/bin/python bench/bench_pipeline.py --root /tmp/bench-pipeline --json bench/results/pipeline.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

from tlpipe.models.plumbing.artifacts import write_json

BENCH = os.path.dirname(os.path.abspath(__file__))
TLPIPE = os.path.join(os.path.dirname(sys.executable), "tlpipe")
MODULE = os.path.join("modules", "fashion-source")


def _timed_run(command: list[str], steps_file: str) -> tuple[float, list[dict[str, Any]], str]:
    """Run `command` with the step hook; returns (wall seconds, the processes' records, stdout)."""
    env = {**os.environ, "PYTHONPATH": os.path.join(BENCH, "step_hook"), "TLPIPE_BENCH_STEPS": steps_file}
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    records = []
    if os.path.isfile(steps_file):
        with open(steps_file, encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
    return round(seconds, 1), records, completed.stdout


def _train_timings(root: str) -> dict[str, Any]:
    """The trainer's own timings (load, build, fit, export) of the latest run's train steps."""
    runs = sorted(d for d in os.listdir(os.path.join(root, "runs")) if not d.endswith("-source"))
    record = json.load(open(os.path.join(root, "runs", runs[-1], "run.json"), encoding="utf-8"))
    timings = {}
    for name, step in record["steps"].items():
        summary = os.path.join(step["artifact"], "summary.json")
        if os.path.isfile(summary):
            data = json.load(open(summary, encoding="utf-8"))
            if "timings" in data:
                timings[name] = {k: v for k, v in data["timings"].items() if k != "phases_s"}
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder for the module and the runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    root = os.path.abspath(args.root)
    module_root = os.path.join(root, "module-root")
    module = os.path.join(module_root, MODULE)
    result: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)"}
    if not os.path.isfile(os.path.join(module, "saved_model.pb")):
        seconds, steps, _ = _timed_run([TLPIPE, "publish-source", "--set", f"pipeline.root={module_root}"],
                                       os.path.join(root, "source-steps.jsonl"))
        result["publish_source"] = {"wall_s": seconds, "steps": steps}
    run_root = os.path.join(root, "run-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    command = [TLPIPE, "run", "--set", f"pipeline.root={run_root}", "--set", f"source.module_dir={module}"]
    for attempt in ("first", "rerun"):
        seconds, steps, stdout = _timed_run(command, os.path.join(run_root + f"-{attempt}-steps.jsonl"))
        result[f"pipeline_{attempt}"] = {"wall_s": seconds, "steps": steps, "headline": stdout.splitlines()[:4]}
        print(f"[bench] pipeline {attempt}: {seconds} s", flush=True)
    result["trainer_timings"] = _train_timings(run_root)
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, os.path.join(BENCH, "handwritten_keras.py"), "--module", module,
                                "--output", os.path.join(root, "handwritten")], capture_output=True, text=True,
                               check=True)
    result["handwritten"] = {"wall_s": round(time.perf_counter() - started, 1),
                             **json.loads(completed.stdout.strip().splitlines()[-1])}
    result["ratio_first_run"] = round(result["pipeline_first"]["wall_s"] / result["handwritten"]["wall_s"], 2)
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
