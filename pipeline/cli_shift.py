"""`tlpipe shift`: how far apart the source and target domains are, before any training.

    tlpipe shift [--config FILE] [--set K=V] [--output DIR]

The labelled source domain is `source.ingest`, the target domain `ingest`
(its `trainer.domain.unlabeled_split` is read without labels). Both are
ingested and transformed with the ingest and transform executors, as
`tlpipe rank` does, at the geometry of the trainer's module (the pipeline's
own source module is published first when the config uses it and it is not
there yet), then `tlpipe.components.evaluator.shift.measure_domain_shift`
computes the proxy A-distance and MMD on the module's frozen features. Prints
the numbers and what they mean; writes `shift.json` into the output folder.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from tlpipe.models.plumbing.layout import SHIFT_FILE


def register(commands: Any, add_config_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `shift` to the `tlpipe` sub-command parsers."""
    shift = commands.add_parser(
        "shift", help="measure how far apart the source and target domains are (proxy A-distance, MMD)",
    )
    add_config_arguments(shift)
    shift.add_argument("--output", "-o", metavar="DIR",
                       help="folder for the data and shift.json (default: <pipeline.root>/shift)")
    shift.set_defaults(handler=_cmd_shift)


def _cmd_shift(args: argparse.Namespace) -> int:
    from tlpipe.pipeline.config import load_config

    config = load_config(args.config, args.overrides)
    output = os.path.abspath(args.output or os.path.join(config.pipeline.root, "shift"))
    result = measure_config_shift(config, output)
    before = result["before"]
    print(f"domain shift on the features of {result['handle']} ({before['num_source']} source / "
          f"{before['num_target']} target examples):")
    print(f"  proxy A-distance  {before['proxy_a_distance']:.3f}  ({before['level']}; 0 = indistinguishable, "
          f"2 = perfectly separable; linear probe error {before['probe_error']:.3f})")
    print(f"  MMD^2             {before['mmd2']:.4f}  (Gaussian kernel, width {before['mmd_bandwidth']:.3g})")
    print(result["verdict"])
    print(f"written: {os.path.join(output, SHIFT_FILE)}")
    return 0


def measure_config_shift(config: Any, output_dir: str) -> dict[str, Any]:
    """Ingest and transform both domains under `output_dir/data`, measure the shift, write `shift.json`."""
    from tlpipe.components.evaluator.shift import measure_domain_shift
    from tlpipe.components.ingest.executor import run_ingest
    from tlpipe.components.transform.executor import run_transform
    from tlpipe.components.transform.spec import image_geometry
    from tlpipe.models.plumbing.artifacts import write_json

    handle = _handle(config)
    size, channels = image_geometry(config.transform, {"handle": handle})
    transformed = {}
    for domain, section in (("source", config.source.ingest), ("target", config.ingest)):
        raw_dir = os.path.join(output_dir, "data", f"ingest-{domain}")
        transformed[domain] = os.path.join(output_dir, "data", f"transform-{domain}")
        run_ingest(section, config.beam, raw_dir)
        run_transform(config.transform, config.beam, raw_dir, transformed[domain], image_size=size, channels=channels)
    domain = config.trainer.domain
    result = measure_domain_shift(handle, transformed["source"], transformed["target"],
                                  unlabeled_split=domain.unlabeled_split, samples=domain.shift_samples,
                                  seed=config.trainer.seed)
    write_json(os.path.join(output_dir, SHIFT_FILE), result)
    return result


def _handle(config: Any) -> str:
    """The trainer's module; the pipeline's own source module, published first if needed, when none is set."""
    from tlpipe.pipeline.parameters import resolve_handle

    if not config.uses_source_module:
        return resolve_handle(config)
    from tlpipe.pipeline.local_runner import Paths, publish_source_module

    return publish_source_module(config, Paths.from_config(config), config.pipeline.mode)
