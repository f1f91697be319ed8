"""Benchmark: the data-efficiency sweep on the embedded default and on the reverse class split.

Runs `tlpipe sweep` twice, each under its own pipeline root (so each split
pre-trains and publishes its own source module): the default (source: T-shirt,
Trouser, Pullover, Dress, Coat; target: Sandal, Shirt, Sneaker, Bag, Ankle
boot) and the reverse (source and target swapped). Writes, per split, the
wall time, where the report is, the mean test accuracy of every model per
labels-per-class value, the mean paired difference to the baseline with the
mean interval, and the break-even sentences.

    .venv/bin/python bench/bench_sweep.py --root /tmp/bench-sweep --shots 2 5 10 50 100 all --seeds 0 1 2 \
        --json bench/results/sweep.json [--splits default reverse] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.pipeline.config import SOURCE_CLASSES, TARGET_CLASSES

TLPIPE = os.path.join(os.path.dirname(sys.executable), "tlpipe")
SPLITS = {
    "default": [],
    "reverse": [f"source.ingest.classes={json.dumps(TARGET_CLASSES)}", f"ingest.classes={json.dumps(SOURCE_CLASSES)}"],
}


def _compact(curve: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for row in curve["rows"]:
        rows[row["shots"]] = {
            "labels_per_class": round(row["labels_per_class"], 1),
            "accuracy": {name: round(entry["mean"], 4) for name, entry in row["models"].items()},
            "accuracy_std": {name: round(entry["std"], 4) for name, entry in row["models"].items()},
            "difference": {f"{name} - {reference}": [round(d["mean"], 4), round(d["lower"], 4), round(d["upper"], 4)]
                           for reference, entries in row["differences"].items() for name, d in entries.items()},
        }
    verdicts = [v["text"] for entries in curve["break_even"].values() for v in entries.values()]
    return {"grid": curve["grid"], "rows": rows, "break_even": verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--shots", nargs="+", default=["2", "5", "10", "50", "100", "all"])
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--splits", nargs="+", choices=sorted(SPLITS), default=list(SPLITS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
                               "shots": args.shots, "seeds": args.seeds, "overrides": args.overrides}
    for split in args.splits:
        root = os.path.join(os.path.abspath(args.root), split)
        command = [TLPIPE, "sweep", "--shots", *args.shots, "--seeds", *args.seeds,
                   "--set", f"pipeline.root={root}"]
        for override in [*SPLITS[split], *args.overrides]:
            command += ["--set", override]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        with open(os.path.join(root, "sweep", "report", "curve.json"), encoding="utf-8") as handle:
            curve = json.load(handle)
        results[split] = {"wall_s": round(time.perf_counter() - started, 1), "command": command,
                          "report": os.path.join(root, "sweep", "report", "index.html"), **_compact(curve)}
        print(json.dumps({split: results[split]}, indent=2), flush=True)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
