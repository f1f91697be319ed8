"""The pipeline's steps as plain functions over artifact folders.

Both executions of the one pipeline definition call these: the Kubeflow /
kfp.local components (`tlpipe.pipeline.kfp_components`) and the in-process
debugging mode. Each step receives the whole config as JSON, so a step's cache
key changes exactly when its inputs or the config change.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from tlpipe.models import progress
from tlpipe.models.artifacts import write_json
from tlpipe.pipeline.config import PipelineConfig, config_from_json
from tlpipe.models.errors import TlpipeError
from tlpipe.pipeline.parameters import RunParameters, resolve_handle

TARGET = "target"
SOURCE = "source"
BASELINE = "baseline"


ERROR_FILE = "tlpipe_error.txt"


@contextlib.contextmanager
def reporting_errors(output_path: str) -> Iterator[None]:
    """Leave a user error's message beside a step's output, where the local runner finds it.

    Steps run as subprocesses under kfp.local, which only says that a task
    failed; the message in `<task folder>/tlpipe_error.txt` lets the runner
    show the user what went wrong instead of a traceback.
    """
    try:
        yield
    except TlpipeError as error:
        with open(os.path.join(os.path.dirname(output_path), ERROR_FILE), "w", encoding="utf-8") as handle:
            handle.write(f"{type(error).__name__}: {error}\n")
        raise


def artifact_paths(**artifacts) -> dict[str, str]:
    """Name -> local path of the kfp artifacts that were given (optional inputs may be None)."""
    return {name: artifact.path for name, artifact in artifacts.items() if artifact is not None}


def _config(config_json: str, parameters: Optional[RunParameters]) -> PipelineConfig:
    config = config_from_json(config_json)
    return parameters.apply(config) if parameters is not None else config


def ingest_step(config_json: str, output_dir: str, *, task: str, parameters: Optional[RunParameters] = None) -> dict:
    """Ingest the target task's data (or, with task='source', the pre-training data)."""
    from tlpipe.components.ingest.executor import run_ingest

    config = _config(config_json, parameters)
    section = config.source.ingest if task == SOURCE else config.ingest
    progress.log(f"ingest ({task}): {section.source}")
    return run_ingest(section, config.beam, output_dir)


def image_geometry(config: PipelineConfig, handle: str) -> tuple[Optional[tuple[int, int]], Optional[int]]:
    """Image size and channels the model expects: the config's, else the preset's or module's own."""
    if config.transform.image_size:
        return tuple(config.transform.image_size), config.transform.channels
    from tlpipe.models.presets import PRESETS

    if handle in PRESETS:
        preset = PRESETS[handle]
        size = tuple(preset.input_size) if preset.input_size else None
        return size, (3 if preset.modality == "image" else None)
    from tlpipe.models.hub_layer import HubFeatureVector

    input_size = HubFeatureVector(handle).input_size
    if input_size is None:
        return None, config.transform.channels
    height, width, channels = input_size
    return (height, width), config.transform.channels or channels


def transform_step(
    config_json: str, raw_dir: str, output_dir: str, *, task: str, parameters: Optional[RunParameters] = None
) -> dict:
    """Transform ingested examples to the geometry of the source network or the target's hub module."""
    from tlpipe.components.transform.executor import run_transform

    config = _config(config_json, parameters)
    if task == SOURCE:
        size, channels = tuple(config.source.image_size), config.source.channels
    else:
        size, channels = image_geometry(config, resolve_handle(config))
    return run_transform(config.transform, config.beam, raw_dir, output_dir, image_size=size, channels=channels)


def train_step(
    config_json: str, transformed_dir: str, output_dir: str, *, strategy: str,
    parameters: Optional[RunParameters] = None,
) -> dict:
    """Train one transfer strategy, or the from-scratch baseline (strategy='baseline')."""
    from tlpipe.components.trainer.executor import train_baseline, train_transfer

    config = _config(config_json, parameters)
    handle = resolve_handle(config)
    if strategy == BASELINE:
        return train_baseline(config.trainer, transformed_dir, output_dir, handle=handle)
    return train_transfer(config.trainer, transformed_dir, output_dir, strategy=strategy, handle=handle)


def pretrain_step(config_json: str, transformed_dir: str, module_dir: str, *, publish_dir: str = "") -> dict:
    """Pre-train the source feature extractor into `module_dir` (a TF-Hub module).

    With `publish_dir`, the module is also copied there atomically: the models
    folder that transfer pipelines take their hub handle from.
    """
    import shutil

    from tlpipe.models.artifacts import atomic_output_dir
    from tlpipe.components.trainer.pretrain import pretrain_and_publish

    config = config_from_json(config_json)
    summary = pretrain_and_publish(config.source, transformed_dir, module_dir)
    if publish_dir:
        with atomic_output_dir(publish_dir) as tmp_dir:
            shutil.copytree(module_dir, tmp_dir, dirs_exist_ok=True)
        progress.log(f"pretrain: published the source module to {publish_dir}")
    return summary


def evaluate_step(
    config_json: str, transformed_dir: str, model_dirs: dict[str, str], output_dir: str, *, serving_dir: str,
) -> dict:
    """Compare every transfer model with the baseline (and production) on the test split."""
    from tlpipe.components.evaluator.executor import run_evaluator
    from tlpipe.components.pusher.executor import latest_pushed_model

    config = config_from_json(config_json)
    candidates = {name: os.path.join(path, "model") for name, path in model_dirs.items() if name != BASELINE}
    baseline = {BASELINE: os.path.join(model_dirs[BASELINE], "model")}
    histories = {name: os.path.join(path, "history.json") for name, path in model_dirs.items()}
    production = latest_pushed_model(serving_dir) if config.evaluator.compare_with_production else None
    return run_evaluator(
        config.evaluator, transformed_dir, candidates, baseline, output_dir,
        production_model_dir=production, histories=histories, beam_config=config.beam,
    )


def push_step(
    config_json: str, evaluation_dir: str, model_dirs: dict[str, str], output_dir: str, *, serving_dir: str,
) -> dict:
    """Push the blessed model, if any; record what happened either way."""
    from tlpipe.models.artifacts import atomic_output_dir, read_json
    from tlpipe.components.pusher.executor import run_pusher

    config = config_from_json(config_json)
    blessing_path = os.path.join(evaluation_dir, "blessing.json")
    blessing = read_json(blessing_path)
    with atomic_output_dir(output_dir) as tmp_dir:
        if blessing.get("blessed"):
            model_dir = os.path.join(model_dirs[blessing["candidate"]], "model")
            record = {"pushed": True, **run_pusher(config.pusher, model_dir, blessing_path, serving_dir)}
        else:
            record = {"pushed": False, "reason": blessing.get("reason", "not blessed")}
            progress.log(f"push: skipped, the evaluator did not bless any model ({record['reason']})")
        write_json(os.path.join(tmp_dir, "push.json"), record)
    return record
