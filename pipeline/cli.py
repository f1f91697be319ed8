"""The `tlpipe` command line.

Every command takes `--config FILE` and repeatable `--set KEY=VALUE` overrides
(defaults < file < overrides). Errors a user can fix print one message and exit
with status 1, without a traceback. By default a run shows a line per step and
a bar per training phase; `-q` prints only errors and results, `-v` everything
(kfp's and TensorFlow's own output included, which otherwise only the run's
kfp.log keeps).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, Optional, Sequence

from tlpipe.models.plumbing import progress
from tlpipe.pipeline import cli_export, cli_kubeflow, cli_rank, cli_runs, cli_shift, cli_sweep
from tlpipe.pipeline.console import hide_startup_lines
from tlpipe.pipeline.run_record import Terminated
from tlpipe.models.plumbing.errors import TlpipeError

# The shell's conventions: 128 + the signal number (SIGINT 2, SIGTERM 15).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config file (overrides the built-in defaults)")
    parser.add_argument(
        "--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
        help="override one config value, e.g. --set trainer.head_epochs=3 (repeatable)",
    )


def _load(args: argparse.Namespace):
    from tlpipe.pipeline.config import load_config

    return load_config(args.config, args.overrides)


def _cmd_config(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.config import config_to_yaml

    print(config_to_yaml(_load(args)), end="")
    return 0


def _one_step(args: argparse.Namespace, spec: Any, inputs: dict[str, str]) -> dict:
    """Run one step of the pipeline in this process into `--output`, as the pipeline would; returns its result."""
    from tlpipe.pipeline.adapters import InProcessOps
    from tlpipe.pipeline.parameters import resolve_handle
    from tlpipe.pipeline.pipeline import SOURCE_SECTIONS

    config = _load(args)
    output = os.path.abspath(args.output)
    ops = InProcessOps(config, {}, os.path.dirname(output))
    if args.source_task:
        options = {"image_size": list(config.source.image_size), "channels": config.source.channels}
        sections = SOURCE_SECTIONS
    else:
        options = {"handle": "" if config.uses_source_module else resolve_handle(config)}
        sections = None
    # The geometry is the transform's option; ingest declares none.
    options = {name: value for name, value in options.items() if name in spec.options}
    ops.run(spec, os.path.basename(output), sections=sections, inputs=inputs, options=options)
    return ops.results[os.path.basename(output)]


def _cmd_ingest(args: argparse.Namespace) -> int:
    from tlpipe.components.ingest.spec import INGEST

    metadata = _one_step(args, INGEST, {})
    counts = ", ".join(f"{split}: {sum(per_class.values())}" for split, per_class in metadata["counts"].items())
    print(f"ingested {counts} examples of {metadata['num_classes']} classes into {os.path.abspath(args.output)}")
    return 0


def _cmd_transform(args: argparse.Namespace) -> int:
    from tlpipe.components.ingest.spec import EXAMPLES
    from tlpipe.components.transform.spec import TRANSFORM

    statistics = _one_step(args, TRANSFORM, {EXAMPLES: os.path.abspath(args.input)})
    splits = ", ".join(f"{split}: {stats['examples']}" for split, stats in statistics["splits"].items())
    print(f"transformed {splits} examples into {os.path.abspath(args.output)}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.headline import headline
    from tlpipe.pipeline.local_runner import run_local

    result = run_local(_load(args), mode=args.mode)
    print(headline(result))
    return 0


def _cmd_publish_source(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.local_runner import Paths, publish_source_module

    config = _load(args)
    module_dir = publish_source_module(config, Paths.from_config(config), args.mode or config.pipeline.mode)
    print(f"source feature extractor published as a TF-Hub module: {module_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `tlpipe` command."""
    parser = argparse.ArgumentParser(
        prog="tlpipe",
        description="Transfer learning as a production pipeline: ingest, transform, train "
        "(transfer and from-scratch baseline), evaluate with TFMA, push.",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print only errors and results")
    verbosity.add_argument("-v", "--verbose", action="store_true",
                           help="print everything: kfp's and TensorFlow's output, every epoch")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run", help="run the transfer pipeline (no arguments: the embedded Fashion-MNIST default)",
    )
    _add_config_arguments(run)
    run.add_argument("--mode", choices=("kfp_local", "in_process"), help="override pipeline.mode")
    run.set_defaults(handler=_cmd_run)

    publish = commands.add_parser(
        "publish-source", help="pre-train the source feature extractor and publish it as a TF-Hub module",
    )
    _add_config_arguments(publish)
    publish.add_argument("--mode", choices=("kfp_local", "in_process"), help="override pipeline.mode")
    publish.set_defaults(handler=_cmd_publish_source)

    show = commands.add_parser("config", help="print the effective configuration as YAML")
    _add_config_arguments(show)
    show.set_defaults(handler=_cmd_config)

    ingest = commands.add_parser("ingest", help="read a data source into split, sampled tf.Example shards (Beam)")
    _add_config_arguments(ingest)
    ingest.add_argument("--output", "-o", required=True, metavar="DIR", help="artifact folder to write")
    ingest.add_argument("--source-task", action="store_true", help="use the `source` section (pre-training data)")
    ingest.set_defaults(handler=_cmd_ingest)

    transform = commands.add_parser("transform", help="decode, resize and scale ingested examples (Beam)")
    _add_config_arguments(transform)
    transform.add_argument("--input", "-i", required=True, metavar="DIR", help="an ingest artifact folder")
    transform.add_argument("--output", "-o", required=True, metavar="DIR", help="artifact folder to write")
    transform.add_argument(
        "--source-task", action="store_true",
        help="use the `source` section's image geometry (default: transform.image_size, else the trainer's module's)",
    )
    transform.set_defaults(handler=_cmd_transform)

    cli_kubeflow.register(commands, _add_config_arguments)
    cli_rank.register(commands, _add_config_arguments)
    cli_shift.register(commands, _add_config_arguments)
    cli_runs.register(commands, _add_config_arguments)
    cli_sweep.register(commands, _add_config_arguments)
    cli_export.register(commands, _add_config_arguments)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `tlpipe` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = progress.verbosity()  # restored at the end: main() may be called in a process that goes on
    progress.set_verbosity(progress.QUIET if args.quiet else progress.VERBOSE if args.verbose else progress.NORMAL)
    try:
        with contextlib.nullcontext() if args.verbose else hide_startup_lines():
            return args.handler(args)
    except TlpipeError as error:
        one_line = " ".join(part.strip() for part in str(error).splitlines() if part.strip())  # e.g. YAML's errors
        print(f"tlpipe: error: {one_line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print("tlpipe: interrupted" + (" (SIGTERM)" if isinstance(interrupt, Terminated) else ""), file=sys.stderr)
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    finally:
        progress.set_verbosity(previous)


if __name__ == "__main__":
    sys.exit(main())
