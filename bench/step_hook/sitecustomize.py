"""Benchmark-only: each process of a run appends its step name, wall time, CPU time and peak RSS to a file.

Python imports `sitecustomize` at start-up from the path, so putting this folder
on PYTHONPATH (bench/bench_pipeline.py does) reaches the `tlpipe` process and
every kfp.local step subprocess, which inherit the environment. With
TLPIPE_BENCH_STEPS=FILE set, a process records at exit one JSON line: the
step (the `step` parameter of a kfp step's executor input; "runner" for the
`tlpipe` process itself), seconds from interpreter start-up to exit (imports
included), CPU seconds, and peak resident memory (`ru_maxrss`) in MiB.
"""

import atexit
import json
import os
import resource
import sys
import time

_OUT = os.environ.get("TLPIPE_BENCH_STEPS", "")


def _step() -> str:
    if "--executor_input" in sys.argv:
        executor_input = json.loads(sys.argv[sys.argv.index("--executor_input") + 1])
        return executor_input.get("inputs", {}).get("parameterValues", {}).get("step", "kfp-task")
    return "runner" if os.path.basename(sys.argv[0]) in ("tlpipe", "cli.py") else ""


if _OUT:
    _STARTED = time.time()

    def _record() -> None:
        step = _step()
        if not step:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line = {"step": step, "wall_s": round(time.time() - _STARTED, 1),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}
        with open(_OUT, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    atexit.register(_record)
