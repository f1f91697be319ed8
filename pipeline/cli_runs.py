"""The commands around local runs: list them, open a report, start a config for one's own data.

    tlpipe runs   [--root DIR | --config FILE --set K=V]
    tlpipe report [RUN] [--serve] [--root DIR | ...]
    tlpipe init   DIR | image_folder:DIR [-o FILE]

`runs` reads the run records under `<pipeline.root>/runs` (marking the records
of runs whose process was killed as "interrupted"); `report` prints the path of
a run's report (the latest run with one when RUN is not given) and with
`--serve` serves its folder on 127.0.0.1 at a free port until Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import os
import threading
from typing import Any, Callable, Optional

from tlpipe.models.plumbing.errors import TlpipeError
from tlpipe.pipeline.run_record import SUCCEEDED, RunRecord, list_records

COLUMNS = ("run", "started", "status", "duration", "cached", "headline", "blessed", "pushed")


def register(commands: Any, add_config_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `runs`, `report` and `init` to the `tlpipe` sub-command parsers."""
    runs = commands.add_parser("runs", help="list the local runs under pipeline.root")
    _add_root_arguments(runs, add_config_arguments)
    runs.set_defaults(handler=_cmd_runs)

    report = commands.add_parser("report", help="print the path of a run's report (or serve it with --serve)")
    _add_root_arguments(report, add_config_arguments)
    report.add_argument("run", nargs="?", metavar="RUN", help="a run id from `tlpipe runs` (default: the latest)")
    report.add_argument("--serve", action="store_true", help="serve the report on 127.0.0.1 at a free port")
    report.set_defaults(handler=_cmd_report)

    init = commands.add_parser("init", help="write a starter config for an image folder (one sub-folder per class)")
    init.add_argument("target", metavar="DIR", help="the image folder, DIR or image_folder:DIR")
    init.add_argument("--output", "-o", default="tlpipe.yaml", metavar="FILE",
                      help="the config file to write (default: tlpipe.yaml; never overwritten)")
    init.set_defaults(handler=_cmd_init)


def _add_root_arguments(parser: argparse.ArgumentParser, add_config_arguments: Callable) -> None:
    add_config_arguments(parser)
    parser.add_argument("--root", metavar="DIR", help="the pipeline root (default: the config's pipeline.root)")


def _runs_dir(args: argparse.Namespace) -> str:
    if args.root:
        root = args.root
    else:
        from tlpipe.pipeline.config import load_config

        root = load_config(args.config, args.overrides).pipeline.root
    return os.path.join(os.path.abspath(root), "runs")


def _time(text: Optional[str]) -> Optional[datetime.datetime]:
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _duration(record: dict[str, Any]) -> str:
    started, finished = _time(record.get("started")), _time(record.get("finished"))
    if started is None:
        return "-"
    seconds = int(((finished or datetime.datetime.now()) - started).total_seconds())
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _row(run: RunRecord) -> dict[str, str]:
    record = run.data
    status = record.get("status", "?")
    if record.get("step") and status != SUCCEEDED:
        status += f" ({record['step']})"
    steps = record.get("steps", {})
    outcome = record.get("outcome", {})
    accuracy = outcome.get("accuracy", {})
    candidates = {name: entry["value"] for name, entry in accuracy.items() if entry.get("role") != "baseline"}
    baselines = [entry["value"] for entry in accuracy.values() if entry.get("role") == "baseline"]
    best = outcome.get("blessed") or max(candidates, key=candidates.__getitem__, default=None)
    headline = "-"
    if best in candidates:
        headline = f"{best} {candidates[best]:.3f}" + (f" vs baseline {baselines[0]:.3f}" if baselines else "")
    blessed = "-" if "blessed" not in outcome else outcome["blessed"] or "no"
    pushed = "-" if "pushed_version" not in outcome else \
        ("no" if outcome["pushed_version"] is None else f"v{outcome['pushed_version']}")
    return {"run": os.path.basename(run.record_dir), "started": (record.get("started") or "-").replace("T", " "),
            "status": status, "duration": _duration(record),
            "cached": f"{sum(1 for s in steps.values() if s.get('cached'))}/{len(steps)}" if steps else "-",
            "headline": headline, "blessed": blessed, "pushed": pushed}


def format_runs(runs: list[RunRecord]) -> str:
    """The runs as a table, oldest first."""
    rows = [dict(zip(COLUMNS, COLUMNS))] + [_row(run) for run in runs]
    widths = {c: max(len(row[c]) for row in rows) for c in COLUMNS}
    return "\n".join("  ".join(row[c].ljust(widths[c]) for c in COLUMNS).rstrip() for row in rows)


def _cmd_runs(args: argparse.Namespace) -> int:
    runs_dir = _runs_dir(args)
    runs = list_records(runs_dir)
    if not runs:
        print(f"no runs under {runs_dir}")
        return 0
    print(format_runs(runs))
    return 0


def report_path(runs_dir: str, run: Optional[str] = None) -> str:
    """The report of run `run` (a run id, or a unique prefix of one), or of the latest run that has one."""
    records = list_records(runs_dir)
    if run is not None:
        chosen = [r for r in records if os.path.basename(r.record_dir) == run] or \
            [r for r in records if os.path.basename(r.record_dir).startswith(run)]
        if len(chosen) != 1:
            known = ", ".join(os.path.basename(r.record_dir) for r in records[-5:]) or "none"
            raise TlpipeError(f"run {run!r}: {'no' if not chosen else 'more than one'} run under {runs_dir} "
                              f"matches; allowed: a run id from `tlpipe runs` (latest: {known})")
        records = chosen
    for record in reversed(records):
        report = record.data.get("outcome", {}).get("report")
        if report and os.path.isfile(report):
            return report
    which = f"run {run!r}" if run is not None else f"no run under {runs_dir}"
    raise TlpipeError(f"{which} has a report (a run has one once its evaluate step succeeded)")


def serve_folder(folder: str) -> http.server.ThreadingHTTPServer:
    """An HTTP server for `folder` on 127.0.0.1 at a free port (not started: call `serve_forever`)."""
    handler = functools.partial(_QuietHandler, directory=folder)
    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request would bury the URL
        pass


def _cmd_report(args: argparse.Namespace) -> int:
    path = report_path(_runs_dir(args), args.run)
    if not args.serve:
        print(path)
        return 0
    server = serve_folder(os.path.dirname(path))
    host, port = server.server_address[:2]
    print(f"serving {os.path.dirname(path)} at http://{host}:{port}/{os.path.basename(path)} (Ctrl-C stops)",
          flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.starter_config import starter_config

    if os.path.exists(args.output):
        raise TlpipeError(f"{args.output} exists; `tlpipe init` never overwrites (choose another with -o FILE)")
    text = starter_config(args.target)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {os.path.abspath(args.output)}; run it with: tlpipe run --config {args.output}")
    return 0
