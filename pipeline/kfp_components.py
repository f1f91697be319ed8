"""Kubeflow Pipelines components: thin wrappers that hand artifact paths to `steps`.

kfp ships each function's source into its container, so every function imports
what it needs inside its body. `make_components(image)` turns them into kfp
components that run `image` on Kubeflow; locally (kfp.local,
SubprocessRunner(use_venv=False)) they run in this environment. Nothing is
pip-installed at run time: the image (see the Dockerfile) carries tlpipe.
"""


import dataclasses
from typing import Callable

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output


def ingest(
    config_json: str, task: str, source_uri: str, hub_handle: str, shots_per_class: int, span: int,
    examples: Output[Dataset],
):
    from tlpipe.pipeline.parameters import RunParameters
    from tlpipe.pipeline.steps import ingest_step, reporting_errors

    with reporting_errors(examples.path):
        parameters = RunParameters(source_uri, hub_handle, shots_per_class, span)
        ingest_step(config_json, examples.path, task=task, parameters=parameters)


def transform(
    config_json: str, task: str, source_uri: str, hub_handle: str, shots_per_class: int, span: int,
    examples: Input[Dataset], transformed: Output[Dataset],
):
    from tlpipe.pipeline.parameters import RunParameters
    from tlpipe.pipeline.steps import reporting_errors, transform_step

    with reporting_errors(transformed.path):
        parameters = RunParameters(source_uri, hub_handle, shots_per_class, span)
        transform_step(config_json, examples.path, transformed.path, task=task, parameters=parameters)


def train(
    config_json: str, strategy: str, source_uri: str, hub_handle: str, shots_per_class: int, span: int,
    transformed: Input[Dataset], trained: Output[Model],
):
    from tlpipe.pipeline.parameters import RunParameters
    from tlpipe.pipeline.steps import reporting_errors, train_step

    with reporting_errors(trained.path):
        parameters = RunParameters(source_uri, hub_handle, shots_per_class, span)
        train_step(config_json, transformed.path, trained.path, strategy=strategy, parameters=parameters)


def pretrain(config_json: str, publish_dir: str, transformed: Input[Dataset], module: Output[Model]):
    from tlpipe.pipeline.steps import pretrain_step, reporting_errors

    with reporting_errors(module.path):
        pretrain_step(config_json, transformed.path, module.path, publish_dir=publish_dir)


def evaluate(
    config_json: str, serving_dir: str, transformed: Input[Dataset], baseline: Input[Model],
    evaluation: Output[Artifact],
    feature_extraction: Input[Model] = None, fine_tune_top: Input[Model] = None, fine_tune_all: Input[Model] = None,
):
    from tlpipe.pipeline.steps import artifact_paths, evaluate_step, reporting_errors

    model_dirs = artifact_paths(baseline=baseline, feature_extraction=feature_extraction,
                                fine_tune_top=fine_tune_top, fine_tune_all=fine_tune_all)
    with reporting_errors(evaluation.path):
        evaluate_step(config_json, transformed.path, model_dirs, evaluation.path, serving_dir=serving_dir)


def push(
    config_json: str, serving_dir: str, evaluation: Input[Artifact], baseline: Input[Model],
    pushed: Output[Artifact],
    feature_extraction: Input[Model] = None, fine_tune_top: Input[Model] = None, fine_tune_all: Input[Model] = None,
):
    from tlpipe.pipeline.steps import artifact_paths, push_step, reporting_errors

    model_dirs = artifact_paths(baseline=baseline, feature_extraction=feature_extraction,
                                fine_tune_top=fine_tune_top, fine_tune_all=fine_tune_all)
    with reporting_errors(pushed.path):
        push_step(config_json, evaluation.path, model_dirs, pushed.path, serving_dir=serving_dir)


@dataclasses.dataclass(frozen=True)
class Components:
    """The kfp components of one container image."""

    ingest: Callable
    transform: Callable
    train: Callable
    pretrain: Callable
    evaluate: Callable
    push: Callable


def make_components(image: str) -> Components:
    """kfp components running `image`, with no run-time pip installs."""

    def component(function: Callable) -> Callable:
        return dsl.component(function, base_image=image, install_kfp_package=False)

    return Components(
        ingest=component(ingest), transform=component(transform), train=component(train),
        pretrain=component(pretrain), evaluate=component(evaluate), push=component(push),
    )
