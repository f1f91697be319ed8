"""The Kubeflow commands of the `tlpipe` command line: compile, submit, schedule.

    tlpipe compile  [--config FILE] [--set K=V] -o pipeline.yaml [--source]
    tlpipe submit   --host URL [--package FILE | config options] [--param K=V] [--experiment NAME]
    tlpipe schedule --cron "0 0 3 * * *" [--host URL] [--package FILE | config options] [--catchup]

`schedule` without a host (neither --host nor kubeflow.host) or with --local
prints the equivalent line for this machine's crontab instead of sending anything.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shlex
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from tlpipe.pipeline import cli_sweep
from tlpipe.pipeline.cron import CronSchedule, crontab_line, parse_cron
from tlpipe.models.plumbing.errors import TlpipeError

if TYPE_CHECKING:
    from tlpipe.pipeline.config import PipelineConfig
    from tlpipe.pipeline.kubeflow_runner import PipelinePackage


def register(commands: Any, add_config_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `compile`, `submit` and `schedule` to the `tlpipe` sub-command parsers."""
    compile_ = commands.add_parser("compile", help="compile the pipeline to Kubeflow Pipelines YAML")
    add_config_arguments(compile_)
    compile_.add_argument("--output", "-o", required=True, metavar="FILE", help="the YAML package to write")
    compile_.add_argument("--source", action="store_true",
                          help="compile the source pre-training pipeline instead of the transfer pipeline")
    compile_.add_argument("--sweep", action="store_true",
                          help="compile the data-efficiency sweep: the --shots x --seeds grid in parallel, "
                               "then the learning curve (see `tlpipe sweep`)")
    cli_sweep.add_grid_arguments(compile_)
    compile_.add_argument("--parallelism", type=int, default=0, metavar="N",
                          help="with --sweep: at most N grid points at a time (default 0: all)")
    compile_.set_defaults(handler=_cmd_compile)

    submit = commands.add_parser("submit", help="start one run on a Kubeflow Pipelines cluster")
    _add_cluster_arguments(submit, add_config_arguments)
    submit.add_argument("--name", metavar="NAME", help="run name (default: pipeline name and time)")
    submit.set_defaults(handler=_cmd_submit)

    schedule = commands.add_parser(
        "schedule", help="create a recurring run on Kubeflow (or print a local crontab line without a host)")
    _add_cluster_arguments(schedule, add_config_arguments)
    schedule.add_argument("--cron", required=True, metavar="EXPR",
                          help="six-field cron (seconds minutes hours day-of-month month day-of-week), in UTC, "
                               "e.g. '0 0 3 * * *'; or @daily, @hourly, @every 6h, ...")
    schedule.add_argument("--name", metavar="NAME", help="recurring run name (default: pipeline name and cron)")
    schedule.add_argument("--catchup", action="store_true",
                          help="start the runs missed while the schedule was paused (default: only the latest)")
    schedule.add_argument("--local", action="store_true",
                          help="print a crontab line for this machine even when a host is configured")
    schedule.set_defaults(handler=_cmd_schedule)


def _add_cluster_arguments(parser: argparse.ArgumentParser, add_config_arguments: Callable) -> None:
    add_config_arguments(parser)
    parser.add_argument("--host", metavar="URL",
                        help="Kubeflow Pipelines API endpoint (default: the config's kubeflow.host)")
    parser.add_argument("--package", metavar="FILE",
                        help="a package from `tlpipe compile` (default: compile the config now)")
    parser.add_argument("--source", action="store_true",
                        help="without --package: the source pre-training pipeline instead of the transfer one")
    parser.add_argument("--param", dest="params", metavar="NAME=VALUE", action="append", default=[],
                        help="run-time input, e.g. shots_per_class=100 or span=3 (repeatable)")
    parser.add_argument("--experiment", metavar="NAME", help="experiment (default: the config's kubeflow.experiment)")
    parser.add_argument("--namespace", metavar="NS", help="Kubernetes namespace (multi-user Kubeflow)")


def _load(args: argparse.Namespace) -> PipelineConfig:
    from tlpipe.pipeline.config import load_config

    return load_config(args.config, args.overrides)


def _cmd_compile(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.kubeflow_runner import PipelinePackage, compile_pipeline

    if args.sweep:
        if args.source:
            raise TlpipeError("--sweep: not with --source (the sweep runs the transfer pipeline)")
        return cli_sweep.compile_sweep_from_args(args, _load(args))
    package = PipelinePackage.read(compile_pipeline(_load(args), args.output, source=args.source))
    print(f"compiled pipeline {package.name!r} ({package.task_count} steps) into {package.path}")
    if package.inputs:
        defaults = ", ".join(f"{name}={declared.default!r}" for name, declared in package.inputs.items())
        print(f"run-time inputs (defaults): {defaults}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.kubeflow_runner import submit_run

    config = _load(args)
    host = _require_host(args.host or config.kubeflow.host)
    with _package(args, config) as package:
        parameters = package.parameters(args.params)
        name = args.name or f"{package.name} {datetime.datetime.now():%Y-%m-%d %H:%M:%S}"
        submitted = submit_run(host, package, parameters, experiment=args.experiment or config.kubeflow.experiment,
                               run_name=name, namespace=args.namespace)
    print(f"submitted {submitted.kind} {submitted.name!r} (id {submitted.id}): {submitted.url}")
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.kubeflow_runner import schedule_run

    schedule = parse_cron(args.cron)
    config = _load(args)
    host = None if args.local else (args.host or config.kubeflow.host)
    if host is None:
        print(_local_crontab(args, schedule))
        return 0
    host = _require_host(host)
    with _package(args, config) as package:
        parameters = package.parameters(args.params)
        submitted = schedule_run(
            host, package, schedule, parameters, experiment=args.experiment or config.kubeflow.experiment,
            name=args.name or f"{package.name} ({schedule.expression})", catchup=args.catchup,
            namespace=args.namespace,
        )
    catchup = "catches up on missed runs" if args.catchup else "no catch-up"
    print(f"scheduled {submitted.kind} {submitted.name!r} (id {submitted.id}) at '{schedule.expression}' UTC, "
          f"at most one run at a time, {catchup}: {submitted.url}")
    return 0


def _require_host(host: Optional[str]) -> str:
    if not host:
        raise TlpipeError("--host: a Kubeflow Pipelines API URL is needed (or kubeflow.host in the config), "
                          "e.g. --host http://localhost:8080")
    return host


@contextlib.contextmanager
def _package(args: argparse.Namespace, config: PipelineConfig) -> Iterator[PipelinePackage]:
    """The package given with --package, or the config compiled into a temporary file for the call."""
    from tlpipe.pipeline.kubeflow_runner import PipelinePackage, compile_pipeline

    if args.package:
        if args.source:
            raise TlpipeError("--source: only without --package (it chooses which pipeline to compile)")
        yield PipelinePackage.read(args.package)
        return
    with tempfile.TemporaryDirectory(prefix="tlpipe-package-") as tmp_dir:
        path = compile_pipeline(config, os.path.join(tmp_dir, "pipeline.yaml"), source=args.source)
        yield PipelinePackage.read(path)


def _tlpipe_command() -> list[str]:
    """How to start this installation's `tlpipe`: the console script beside this Python, else `python -m`."""
    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "tlpipe")
    if os.access(script, os.X_OK):
        return [script]
    return [os.path.abspath(sys.executable), "-m", "tlpipe.pipeline.cli"]


def _local_crontab(args: argparse.Namespace, schedule: CronSchedule) -> str:
    given = [option for option, value in (("--param", args.params), ("--package", args.package),
                                          ("--source", args.source)) if value]
    if given:
        raise TlpipeError(f"{given[0]}: only for Kubeflow runs; a local schedule runs `tlpipe run` with the "
                          "config, so put the values there (--config / --set), or give --host")
    command = [*_tlpipe_command(), "run"]
    if args.config:
        command += ["--config", os.path.abspath(args.config)]
    for override in args.overrides:
        command += ["--set", override]
    workdir = os.getcwd()
    shell = (f"cd {shlex.quote(workdir)} && {shlex.join(command)} "
             f">> {shlex.quote(os.path.join(workdir, 'tlpipe-cron.log'))} 2>&1")
    return "\n".join([
        f"# tlpipe schedule '{schedule.expression}' for this machine's crontab (add it with `crontab -e`).",
        "# Kubeflow reads the schedule in UTC; cron uses this machine's time zone.",
        crontab_line(schedule, shell),
    ])
