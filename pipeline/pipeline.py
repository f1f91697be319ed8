"""The tlpipe pipelines, defined once.

`transfer_graph` is the target pipeline: ingest -> transform -> (one trainer per
transfer strategy, and the from-scratch baseline) -> evaluate -> push.
`source_graph` pre-trains a feature extractor on a source task and publishes it
as a TF-Hub module. Both are written against `Ops`, so the same definition runs
as a Kubeflow pipeline (`KfpOps`: compiled to YAML or run with kfp.local) and
in this process for debugging (`InProcessOps`). Runners only work out paths and
options, then call `build_*_pipeline` or the graphs.
"""


import dataclasses
import os
from typing import Any, Callable, NamedTuple, Protocol

from tlpipe.pipeline.config import PipelineConfig, config_to_json
from tlpipe.pipeline.parameters import LATEST_SPAN, RunParameters
from tlpipe.pipeline.steps import (
    BASELINE, SOURCE, TARGET, evaluate_step, ingest_step, pretrain_step, push_step, train_step, transform_step,
)

SOURCE_PIPELINE_SUFFIX = "-source"


class Ops(Protocol):
    """What a pipeline graph can do; each call returns a handle on the step's output."""

    def ingest(self, task: str) -> Any: ...
    def transform(self, examples: Any, task: str) -> Any: ...
    def train(self, transformed: Any, strategy: str) -> Any: ...
    def pretrain(self, transformed: Any) -> Any: ...
    def evaluate(self, transformed: Any, models: dict[str, Any]) -> Any: ...
    def push(self, evaluation: Any, models: dict[str, Any]) -> Any: ...


def transfer_graph(ops: Ops, strategies: list[str]) -> dict[str, Any]:
    """The target pipeline; returns every step's output by name."""
    examples = ops.ingest(TARGET)
    transformed = ops.transform(examples, TARGET)
    models = {strategy: ops.train(transformed, strategy) for strategy in [*strategies, BASELINE]}
    evaluation = ops.evaluate(transformed, models)
    pushed = ops.push(evaluation, models)
    return {"examples": examples, "transformed": transformed, **models, "evaluation": evaluation, "pushed": pushed}


def source_graph(ops: Ops) -> dict[str, Any]:
    """The source pipeline: pre-train a feature extractor and publish it as a hub module."""
    examples = ops.ingest(SOURCE)
    transformed = ops.transform(examples, SOURCE)
    module = ops.pretrain(transformed)
    return {"examples": examples, "transformed": transformed, "module": module}


class InProcessOps:
    """Runs each step immediately in this process; handles are artifact folders under `run_dir`."""

    def __init__(self, config: PipelineConfig, parameters: RunParameters, run_dir: str, *,
                 serving_dir: str = "", publish_dir: str = ""):
        self.config_json = config_to_json(config)
        self.parameters = parameters
        self.run_dir = run_dir
        self.serving_dir = serving_dir
        self.publish_dir = publish_dir

    def _out(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def ingest(self, task: str) -> str:
        output = self._out(f"ingest-{task}")
        ingest_step(self.config_json, output, task=task, parameters=self.parameters)
        return output

    def transform(self, examples: str, task: str) -> str:
        output = self._out(f"transform-{task}")
        transform_step(self.config_json, examples, output, task=task, parameters=self.parameters)
        return output

    def train(self, transformed: str, strategy: str) -> str:
        output = self._out(f"train-{strategy}")
        train_step(self.config_json, transformed, output, strategy=strategy, parameters=self.parameters)
        return output

    def pretrain(self, transformed: str) -> str:
        output = self._out("pretrain")
        pretrain_step(self.config_json, transformed, output, publish_dir=self.publish_dir)
        return output

    def evaluate(self, transformed: str, models: dict[str, str]) -> str:
        output = self._out("evaluate")
        evaluate_step(self.config_json, transformed, models, output, serving_dir=self.serving_dir)
        return output

    def push(self, evaluation: str, models: dict[str, str]) -> str:
        output = self._out("push")
        push_step(self.config_json, evaluation, models, output, serving_dir=self.serving_dir)
        return output


class KfpOps:
    """Adds kfp tasks to the pipeline being defined; handles are kfp output channels."""

    def __init__(self, config: PipelineConfig, parameters: dict[str, Any], *,
                 serving_dir: str = "", publish_dir: str = ""):
        from tlpipe.pipeline.kfp_components import make_components

        self.config = config
        self.config_json = config_to_json(config)
        self.parameters = parameters
        self.serving_dir = serving_dir
        self.publish_dir = publish_dir
        self.components = make_components(config.kubeflow.image)

    def _task(self, component: Callable, display_name: str, **arguments: Any) -> Any:
        kubeflow = self.config.kubeflow
        kind = display_name.split("-")[0]
        task = component(config_json=self.config_json, **arguments)
        task.set_display_name(display_name)
        task.set_caching_options(kubeflow.caching.get(kind, self.config.pipeline.enable_caching))
        if kubeflow.retries:
            task.set_retry(num_retries=kubeflow.retries)
        resources = kubeflow.resources_for(kind)
        for setter, value in (
            (task.set_cpu_request, resources.cpu_request), (task.set_cpu_limit, resources.cpu_limit),
            (task.set_memory_request, resources.memory_request), (task.set_memory_limit, resources.memory_limit),
            (task.set_accelerator_type, resources.accelerator_type),
        ):
            if value is not None:
                setter(value)
        if resources.accelerator_count:
            task.set_accelerator_limit(resources.accelerator_count)
        return task

    def ingest(self, task: str) -> Any:
        step = self._task(self.components.ingest, f"ingest-{task}", task=task, **self.parameters)
        return step.outputs["examples"]

    def transform(self, examples: Any, task: str) -> Any:
        step = self._task(self.components.transform, f"transform-{task}", task=task, examples=examples,
                          **self.parameters)
        return step.outputs["transformed"]

    def train(self, transformed: Any, strategy: str) -> Any:
        step = self._task(self.components.train, f"train-{strategy}", strategy=strategy, transformed=transformed,
                          **self.parameters)
        return step.outputs["trained"]

    def pretrain(self, transformed: Any) -> Any:
        step = self._task(self.components.pretrain, "pretrain", publish_dir=self.publish_dir, transformed=transformed)
        return step.outputs["module"]

    def evaluate(self, transformed: Any, models: dict[str, Any]) -> Any:
        step = self._task(self.components.evaluate, "evaluate", serving_dir=self.serving_dir,
                          transformed=transformed, **models)
        return step.outputs["evaluation"]

    def push(self, evaluation: Any, models: dict[str, Any]) -> Any:
        step = self._task(self.components.push, "push", serving_dir=self.serving_dir, evaluation=evaluation,
                          **models)
        return step.outputs["pushed"]


def _outputs_type(names: list[str], artifact_type: Any) -> type:
    return NamedTuple("Outputs", [(name, artifact_type) for name in names])


def build_transfer_pipeline(config: PipelineConfig, *, serving_dir: str, hub_handle: str = "") -> Callable:
    """The target pipeline as a kfp pipeline function; its run-time inputs default to the config.

    Run-time inputs: source_uri, hub_handle, shots_per_class, span (-1: latest).
    """
    from kfp import dsl
    from kfp.dsl import Artifact

    output_names = ["examples", "transformed", *config.trainer.strategies, BASELINE, "evaluation", "pushed"]
    outputs_type = _outputs_type(output_names, Artifact)
    default_span = config.ingest.span if config.ingest.span is not None else LATEST_SPAN

    def transfer_pipeline(
        source_uri: str = config.ingest.source,
        hub_handle: str = hub_handle,
        shots_per_class: int = config.ingest.shots.get("train", 0),
        span: int = default_span,
    ):
        parameters = {"source_uri": source_uri, "hub_handle": hub_handle,
                      "shots_per_class": shots_per_class, "span": span}
        outputs = transfer_graph(KfpOps(config, parameters, serving_dir=serving_dir), config.trainer.strategies)
        return outputs_type(**outputs)

    transfer_pipeline.__annotations__["return"] = outputs_type
    return dsl.pipeline(name=config.pipeline.name,
                        description="tlpipe transfer pipeline")(transfer_pipeline)


def build_source_pipeline(config: PipelineConfig, *, publish_dir: str = "") -> Callable:
    """The source pre-training pipeline as a kfp pipeline function; it publishes into `publish_dir` when given."""
    from kfp import dsl
    from kfp.dsl import Artifact

    outputs_type = _outputs_type(["examples", "transformed", "module"], Artifact)
    as_configured = dataclasses.asdict(RunParameters())

    def source_pipeline():
        return outputs_type(**source_graph(KfpOps(config, as_configured, publish_dir=publish_dir)))

    source_pipeline.__annotations__["return"] = outputs_type
    return dsl.pipeline(name=config.pipeline.name + SOURCE_PIPELINE_SUFFIX,
                        description="tlpipe source pre-training")(source_pipeline)

