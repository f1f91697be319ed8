"""`tlpipe rank`: rank candidate modules on the target data before training any of them.

    tlpipe rank [--config FILE] [--set K=V] --candidates A B C [--output DIR] [--select logme]

Ingests and transforms the target data with the ingest and transform
executors, as `tlpipe ingest` / `tlpipe transform` do (the images take the
geometry of `transform.image_size`, else of the first candidate that loads;
each candidate then gets its own size),
then runs `tlpipe.components.rank.executor.rank_candidates` on the labelled
training split. Prints the table and the recommended module.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Optional, Sequence


def register(commands: Any, add_config_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `rank` to the `tlpipe` sub-command parsers."""
    from tlpipe.components.rank.executor import LOGME, SCORES

    rank = commands.add_parser(
        "rank", help="score candidate modules (presets, folders, hub handles) on the target's labelled examples",
    )
    add_config_arguments(rank)
    rank.add_argument("--candidates", nargs="+", metavar="MODULE",
                      help="preset names, module folders or hub handles (default: the trainer's handle or preset)")
    rank.add_argument("--output", "-o", metavar="DIR", help="folder for the data and the ranking "
                      "(default: <pipeline.root>/rank)")
    rank.add_argument("--select", choices=SCORES, default=LOGME, help="the score that picks the recommendation")
    rank.set_defaults(handler=_cmd_rank)


def _cmd_rank(args: argparse.Namespace) -> int:
    from tlpipe.components.rank.executor import SCORES
    from tlpipe.components.rank.report import RANK_HTML, markdown
    from tlpipe.pipeline.config import load_config
    from tlpipe.pipeline.parameters import resolve_handle

    config = load_config(args.config, args.overrides)
    candidates = args.candidates or [resolve_handle(config)]
    output = os.path.abspath(args.output or os.path.join(config.pipeline.root, "rank"))
    ranking = rank_target(config, candidates, output, select=args.select)
    print(markdown(ranking, SCORES), end="")
    print(f"recommended: {ranking['recommended']}")
    print(f"report: {os.path.join(output, RANK_HTML)}")
    return 0


def rank_target(config: Any, candidates: Sequence[str], output_dir: str, *, select: str) -> dict:
    """Ingest and transform the target data under `output_dir/data`, then rank `candidates` into `output_dir`."""
    from tlpipe.components.ingest.executor import run_ingest
    from tlpipe.components.rank.executor import rank_candidates
    from tlpipe.components.transform.executor import run_transform

    raw_dir = os.path.join(output_dir, "data", "ingest")
    transformed_dir = os.path.join(output_dir, "data", "transform")
    run_ingest(config.ingest, config.beam, raw_dir)
    size, channels = _geometry(config, candidates)
    run_transform(config.transform, config.beam, raw_dir, transformed_dir, image_size=size, channels=channels)
    return rank_candidates(candidates, transformed_dir, output_dir, select=select, seed=config.trainer.seed)


def _geometry(config: Any, candidates: Sequence[str]) -> tuple[Optional[tuple[int, int]], Optional[int]]:
    """`transform.image_size`, else the geometry of the first candidate that loads (the others are resized
    to theirs when ranked; one that cannot load is reported by the ranking itself, with its error)."""
    from tlpipe.components.transform.spec import image_geometry

    if config.transform.image_size:
        return image_geometry(config.transform, {})
    for candidate in candidates:
        try:
            return image_geometry(config.transform, {"handle": candidate})
        except Exception:  # the ranking reports this candidate's error
            continue
    return image_geometry(config.transform, {})
