"""The data-efficiency sweep as one Kubeflow pipeline: the grid in parallel, then the curve.

    tlpipe compile --sweep --shots 2 5 10 50 100 all --seeds 0 1 2 [--parallelism N] -o sweep.yaml

One `dsl.ParallelFor` iteration per grid point runs the transfer pipeline
(`transfer_graph`, the same definition as every other run) with the point's
labels per class and seed as the ingest and train steps' run-time parameters,
then the `sweep-point` step; the `sweep-gather` step takes every point
(`dsl.Collected`) and writes the learning-curve report as its output artifact.
The points' settings are `sweep.sweep_config`'s: no comparison with production,
blessed models pushed into `<pipeline.root>/sweep/serving`.
"""

from __future__ import annotations

import posixpath
from typing import Callable, Sequence

from tlpipe.pipeline.config import PipelineConfig
from tlpipe.pipeline.sweep import DEFAULT_OUTPUT, SERVING_DIR, GridPoint, sweep_config

SWEEP_SUFFIX = "-sweep"


def grid_items(points: Sequence[GridPoint]) -> list[dict[str, int]]:
    """The ParallelFor items: the ingest/train run-time parameters of each point (0 labels: all)."""
    return [{"shots_per_class": point.shots or 0, "seed": point.seed} for point in points]


def build_sweep_pipeline(config: PipelineConfig, points: Sequence[GridPoint], *, parallelism: int = 0) -> Callable:
    """The sweep as a kfp pipeline function (paths as for a cluster: under an absolute `pipeline.root`)."""
    from kfp import dsl
    from kfp.dsl import Artifact

    from tlpipe.components.evaluator.spec import EVALUATION
    from tlpipe.components.sweep.spec import POINTS, SWEEP_GATHER, SWEEP_POINT
    from tlpipe.components.transform.spec import TRANSFORMED
    from tlpipe.pipeline.adapters import KfpOps
    from tlpipe.pipeline.kubeflow_runner import WORK_DIR, ClusterPaths
    from tlpipe.pipeline.parameters import resolve_handle
    from tlpipe.pipeline.pipeline import Locations, transfer_graph

    base = sweep_config(config, posixpath.join(DEFAULT_OUTPUT, SERVING_DIR))
    paths = ClusterPaths.from_config(base)
    handle = paths.hub_handle or resolve_handle(base)
    locations = Locations(serving_dir=paths.serving_dir,
                          work_root=posixpath.join(base.pipeline.root.rstrip("/"), WORK_DIR))
    items = grid_items(points)

    def sweep_pipeline():
        with dsl.ParallelFor(items, parallelism=parallelism) as item:
            ops = KfpOps(base, {"shots_per_class": item.shots_per_class, "seed": item.seed},
                         work_root=locations.work_root)
            outputs = transfer_graph(ops, base, locations, handle)
            point = ops.run(SWEEP_POINT, "sweep-point",
                            inputs={TRANSFORMED: outputs[TRANSFORMED], EVALUATION: outputs[EVALUATION]})
        return KfpOps(base, {}).run(SWEEP_GATHER, "sweep-gather", inputs={POINTS: dsl.Collected(point)},
                                    options={"title": config.pipeline.name})

    sweep_pipeline.__annotations__["return"] = Artifact  # the report folder
    return dsl.pipeline(name=config.pipeline.name + SWEEP_SUFFIX,
                        description="tlpipe data-efficiency sweep")(sweep_pipeline)


def compile_sweep(config: PipelineConfig, points: Sequence[GridPoint], package_path: str, *,
                  parallelism: int = 0) -> str:
    """Compile the sweep to Kubeflow's YAML at `package_path` (atomically); returns its absolute path."""
    from tlpipe.pipeline.kubeflow_runner import write_package

    return write_package(build_sweep_pipeline(config, points, parallelism=parallelism), package_path)
