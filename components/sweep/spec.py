"""The sweep's two steps: condense one grid point, and gather the points into the learning curve.

`SWEEP_POINT` runs after each grid point's evaluation (inside Kubeflow's
ParallelFor, or by the local sweep after each run); `SWEEP_GATHER` takes every
point (a `collected` group: one list input under kfp) and writes the report
(`report.py`). Neither reads a config section: the grid coordinates come as
options or run-time parameters, the numbers from the artifacts.
"""

from __future__ import annotations

from typing import Any

from tlpipe.components.evaluator.spec import EVALUATION
from tlpipe.components.spec import OPTION_PREFIX, ArtifactSpec, ComponentSpec, ParameterSpec, StepArgs
from tlpipe.components.transform.spec import TRANSFORMED

POINT = "point"
POINTS = "points"
REPORT = "report"
UNSET_SEED = -1

SWEEP_POINT = ComponentSpec(
    name="sweep-point",
    executor="tlpipe.components.sweep.spec:run_point",
    options={"shots": int, "seed": int},  # labels per class of the point (0: all), its seed
    parameters=(
        ParameterSpec("shots_per_class", int, OPTION_PREFIX + "shots", unset=0),
        ParameterSpec("seed", int, OPTION_PREFIX + "seed", unset=UNSET_SEED),
    ),
    inputs=(ArtifactSpec(TRANSFORMED, "dataset"), ArtifactSpec(EVALUATION, "artifact")),
    outputs=(ArtifactSpec(POINT, "artifact"),),
)

SWEEP_GATHER = ComponentSpec(
    name="sweep-gather",
    executor="tlpipe.components.sweep.spec:run_gather",
    options={"title": str, "margin": float},
    inputs=(ArtifactSpec(POINTS, "artifact", many=True, collected=True),),
    outputs=(ArtifactSpec(REPORT, "artifact"),),
)


def run_point(args: StepArgs) -> dict[str, Any]:
    """Options: `shots` (absent or 0: every labelled example), `seed`."""
    from tlpipe.components.sweep.point import write_point
    from tlpipe.models.plumbing.errors import ConfigError

    seed = args.options.get("seed", UNSET_SEED)
    if seed == UNSET_SEED:
        raise ConfigError("seed", seed, "the grid point's seed, an integer >= 0")
    return write_point(args.inputs[TRANSFORMED], args.inputs[EVALUATION], args.output,
                       shots=args.options.get("shots") or None, seed=seed)


def run_gather(args: StepArgs) -> dict[str, Any]:
    """Options: `title` (the report's), `margin` (what "surely better" must exceed, default 0)."""
    from tlpipe.components.sweep.point import read_point
    from tlpipe.components.sweep.report import write_report
    from tlpipe.models.plumbing.progress import log

    points = [read_point(path) for path in args.group(POINTS).values()]
    curve = write_report(points, args.output, title=args.options.get("title", "sweep"),
                         margin=float(args.options.get("margin", 0.0)))
    for entries in curve["break_even"].values():
        for verdict in entries.values():
            log(f"{args.step}: {verdict['text']}")
    return curve
