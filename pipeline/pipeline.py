"""The tlpipe pipelines, defined once.

`transfer_graph` is the target pipeline: ingest -> transform -> (rank the
candidate modules, when `trainer.candidates` lists them; ingest and transform
the labelled source domain, for domain adaptation) -> one train step
per strategy (the registry's order: teachers first, the from-scratch baseline
last) -> resolve the model in production -> evaluate -> push. `source_graph`
pre-trains a feature extractor on a source task and publishes it as a TF-Hub
module. Both are written against `ops.run(spec, name, ...)`, so the same
definition runs as a Kubeflow pipeline (`KfpOps`: compiled to YAML or run with
kfp.local) and in this process (`InProcessOps`). Runners only work out paths
and options, then call `build_*_pipeline` or the graphs. Adding a step is its
declaration (components/<component>/spec.py) plus one line here.
"""


import dataclasses
from typing import Any, Callable, NamedTuple

from tlpipe.components.evaluator.spec import EVALUATION, MODELS, PRODUCTION
from tlpipe.components.ingest.spec import EXAMPLES, INGEST, LATEST_SPAN
from tlpipe.components.pusher.spec import PUSH, PUSHED, RESOLVE_PRODUCTION
from tlpipe.components.rank.spec import RANK
from tlpipe.components.strategies.registry import (
    evaluation_for, get_strategy, needs_source_domain, pairing_for, teacher_of, train_steps,
)
from tlpipe.components.strategies.train_step import TRAIN
from tlpipe.components.trainer.spec import PRETRAIN, SELECTED, SOURCE_DOMAIN, TEACHERS
from tlpipe.components.transform.spec import TRANSFORM, TRANSFORMED
from tlpipe.pipeline.config import PipelineConfig
from tlpipe.pipeline.parameters import RunParameters

SOURCE_PIPELINE_SUFFIX = "-source"
SOURCE_SECTIONS = {"ingest": "source.ingest"}


@dataclasses.dataclass(frozen=True)
class Locations:
    """Folders outside the step artifacts: serving, published module, resumable work."""

    serving_dir: str = ""
    publish_dir: str = ""
    work_root: str = ""


def transfer_graph(ops: Any, config: PipelineConfig, locations: Locations, handle: str) -> dict[str, Any]:
    """The target pipeline; returns every step's output by name (`handle`: the module trained on)."""
    examples = ops.run(INGEST, "ingest-target")
    transformed = ops.run(TRANSFORM, "transform-target", inputs={EXAMPLES: examples}, options={"handle": handle})
    selection = {}
    if config.trainer.candidates:
        selection = {SELECTED: ops.run(RANK, "rank", inputs={TRANSFORMED: transformed})}
    source_domain = {}
    if needs_source_domain(config.trainer.strategies):
        source_examples = ops.run(INGEST, "ingest-source", sections=SOURCE_SECTIONS, runtime=False)
        source_domain = {TRANSFORMED: ops.run(TRANSFORM, "transform-source", inputs={EXAMPLES: source_examples},
                                              options={"handle": handle})}
    models: dict[str, Any] = {}
    for name in train_steps(config.trainer):
        strategy = get_strategy(name)
        teacher = teacher_of(name, config.trainer)
        models[name] = ops.run(TRAIN, f"train-{name}", options={"strategy": name, "handle": handle}, values=selection,
                               inputs={TRANSFORMED: transformed,
                                       TEACHERS: {teacher: models[teacher]} if teacher else {},
                                       SOURCE_DOMAIN: source_domain if strategy.source_domain else {}})
    production = ops.run(RESOLVE_PRODUCTION, "resolve", options={
        "serving_dir": locations.serving_dir, "compare_with_production": config.evaluator.compare_with_production})
    pairing = pairing_for(list(models), config.trainer)
    evaluation = ops.run(evaluation_for(list(models)), "evaluate", inputs={TRANSFORMED: transformed, MODELS: models},
                         values={PRODUCTION: production},
                         options={"pairing": pairing.to_dict(), "edge_formats": config.pusher.edge_formats})
    pushed = ops.run(PUSH, "push", inputs={EVALUATION: evaluation, MODELS: models},
                     options={"serving_dir": locations.serving_dir})
    return {EXAMPLES: examples, TRANSFORMED: transformed, **models, EVALUATION: evaluation, PUSHED: pushed}


def source_graph(ops: Any, config: PipelineConfig, locations: Locations) -> dict[str, Any]:
    """The source pipeline: pre-train a feature extractor and publish it as a hub module."""
    geometry = {"image_size": list(config.source.image_size), "channels": config.source.channels}
    examples = ops.run(INGEST, "ingest-source", sections=SOURCE_SECTIONS, runtime=False)
    transformed = ops.run(TRANSFORM, "transform-source", inputs={EXAMPLES: examples}, options=geometry,
                          runtime=False)
    module = ops.run(PRETRAIN, "pretrain", inputs={TRANSFORMED: transformed},
                     options={"publish_dir": locations.publish_dir})
    return {EXAMPLES: examples, TRANSFORMED: transformed, "module": module}


def transfer_output_names(config: PipelineConfig) -> list[str]:
    """The names `transfer_graph` returns, in order."""
    return [EXAMPLES, TRANSFORMED, *train_steps(config.trainer), EVALUATION, PUSHED]


def _outputs_type(names: list[str], artifact_type: Any) -> type:
    return NamedTuple("Outputs", [(name, artifact_type) for name in names])


def build_transfer_pipeline(config: PipelineConfig, *, locations: Locations, hub_handle: str) -> Callable:
    """The target pipeline as a kfp pipeline function; its run-time inputs default to the config.

    Run-time inputs: source_uri, hub_handle, shots_per_class, span (-1: latest).
    """
    from kfp import dsl
    from kfp.dsl import Artifact

    from tlpipe.pipeline.adapters import KfpOps

    outputs_type = _outputs_type(transfer_output_names(config), Artifact)
    configured_handle = hub_handle
    default_span = config.ingest.span if config.ingest.span is not None else LATEST_SPAN

    def transfer_pipeline(
        source_uri: str = config.ingest.source,
        hub_handle: str = hub_handle,
        shots_per_class: int = config.ingest.shots.get("train", 0),
        span: int = default_span,
    ):
        parameters = {"source_uri": source_uri, "hub_handle": hub_handle,
                      "shots_per_class": shots_per_class, "span": span}
        ops = KfpOps(config, parameters, work_root=locations.work_root)
        return outputs_type(**transfer_graph(ops, config, locations, configured_handle))

    transfer_pipeline.__annotations__["return"] = outputs_type
    return dsl.pipeline(name=config.pipeline.name, description="tlpipe transfer pipeline")(transfer_pipeline)


def build_source_pipeline(config: PipelineConfig, *, locations: Locations) -> Callable:
    """The source pre-training pipeline as a kfp pipeline function; it publishes into `locations.publish_dir`."""
    from kfp import dsl
    from kfp.dsl import Artifact

    from tlpipe.pipeline.adapters import KfpOps

    outputs_type = _outputs_type([EXAMPLES, TRANSFORMED, "module"], Artifact)

    def source_pipeline():
        ops = KfpOps(config, dataclasses.asdict(RunParameters()), work_root=locations.work_root)
        return outputs_type(**source_graph(ops, config, locations))

    source_pipeline.__annotations__["return"] = outputs_type
    return dsl.pipeline(name=config.pipeline.name + SOURCE_PIPELINE_SUFFIX,
                        description="tlpipe source pre-training")(source_pipeline)
