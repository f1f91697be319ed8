"""The ingest step's declaration: its config sections, run-time parameters and output."""

from __future__ import annotations

from typing import Any

from tlpipe.components.beam import BeamConfig
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.spec import ArtifactSpec, ComponentSpec, ParameterSpec, StepArgs

EXAMPLES = "examples"
LATEST_SPAN = -1

INGEST = ComponentSpec(
    name="ingest",
    executor="tlpipe.components.ingest.spec:run",
    sections={"ingest": IngestConfig, "beam": BeamConfig},
    parameters=(
        ParameterSpec("source_uri", str, "ingest.source", unset=""),
        ParameterSpec("shots_per_class", int, "ingest.shots.train", unset=0),
        ParameterSpec("span", int, "ingest.span", unset=LATEST_SPAN),
        ParameterSpec("seed", int, "ingest.seed", unset=-1),  # set per grid point by a sweep (pipeline/sweep.py)
    ),
    outputs=(ArtifactSpec(EXAMPLES, "dataset"),),
)


def run(args: StepArgs) -> dict[str, Any]:
    from tlpipe.components.ingest.executor import run_ingest
    from tlpipe.models.plumbing.progress import log

    section = args.sections["ingest"]
    log(f"{args.step}: {section.source}")
    return run_ingest(section, args.sections["beam"], args.output)
