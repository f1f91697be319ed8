"""`tlpipe sweep`: how many labels are needed, and when transfer stops paying off.

    tlpipe sweep [--config FILE] [--set K=V] --shots 2 5 10 50 100 all --seeds 0 1 2 [--output DIR]
                 [--mode kfp_local|in_process]

Runs the pipeline for every (labels per class, seed) pair on this machine
(pipeline/sweep.py), printing a line per run with an estimate of the time left,
and writes the learning-curve report. `tlpipe compile --sweep` (the grid
arguments below, `add_grid_arguments`) compiles the same grid for Kubeflow.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

DEFAULT_SHOTS = ("2", "5", "10", "50", "100", "all")
DEFAULT_SEEDS = ("0", "1", "2")


def register(commands: Any, add_config_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `sweep` to the `tlpipe` sub-command parsers."""
    sweep = commands.add_parser(
        "sweep", help="run the pipeline for every (labels per class, seed) pair and report the learning curve",
    )
    add_config_arguments(sweep)
    add_grid_arguments(sweep)
    sweep.add_argument("--output", "-o", metavar="DIR",
                       help="folder for the points and the report (default: <pipeline.root>/sweep)")
    sweep.add_argument("--mode", choices=("kfp_local", "in_process"), help="override pipeline.mode")
    sweep.set_defaults(handler=_cmd_sweep)


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """`--shots` and `--seeds`, shared by `sweep` and `compile --sweep`."""
    parser.add_argument("--shots", nargs="+", metavar="K", default=list(DEFAULT_SHOTS),
                        help="labels per class of the training split: integers >= 1 and 'all' "
                             f"(default: {' '.join(DEFAULT_SHOTS)})")
    parser.add_argument("--seeds", nargs="+", metavar="S", default=list(DEFAULT_SEEDS),
                        help=f"sampling and training seeds (default: {' '.join(DEFAULT_SEEDS)})")


def grid_from_args(args: argparse.Namespace) -> list:
    """The grid points `--shots` and `--seeds` name."""
    from tlpipe.pipeline.sweep import grid, parse_seeds, parse_shots

    return grid(parse_shots(args.shots), parse_seeds(args.seeds))


def _cmd_sweep(args: argparse.Namespace) -> int:
    from tlpipe.components.sweep.report import INDEX_FILE
    from tlpipe.models.plumbing import progress
    from tlpipe.pipeline.config import load_config
    from tlpipe.pipeline.sweep import DEFAULT_OUTPUT, run_sweep

    config = load_config(args.config, args.overrides)
    points = grid_from_args(args)
    output = os.path.abspath(args.output or os.path.join(config.pipeline.root, DEFAULT_OUTPUT))
    progress.note(f"sweep: {len(points)} runs into {output}")
    result = run_sweep(config, points, output, mode=args.mode,
                       report=lambda line: print(line, file=sys.stderr, flush=True))
    for entries in result.curve["break_even"].values():
        for verdict in entries.values():
            print(verdict["text"])
    print(f"report: {os.path.join(result.report_dir, INDEX_FILE)}")
    return 0


def compile_sweep_from_args(args: argparse.Namespace, config: Any) -> int:
    """`tlpipe compile --sweep`: the grid as one Kubeflow pipeline."""
    from tlpipe.pipeline.kubeflow_runner import PipelinePackage
    from tlpipe.pipeline.sweep_pipeline import compile_sweep

    points = grid_from_args(args)
    package = PipelinePackage.read(compile_sweep(config, points, args.output, parallelism=args.parallelism))
    print(f"compiled sweep pipeline {package.name!r} ({len(points)} grid points in parallel, then "
          f"sweep-gather) into {package.path}")
    return 0
