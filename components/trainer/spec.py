"""The trainer's steps: one train step per strategy, and source pre-training.

Artifact layout of a trained model (what the evaluator and pusher read):

    model/          the exported SavedModel (`MODEL_DIR`)
    history.json    per-epoch history (`HISTORY_FILE`)
    summary.json    written last: its presence means the training completed
    work_key.txt    the name of the step's work folder (what a student of this model is keyed by)

A train step is resumable: its checkpoints live in a work folder keyed by the
step's cache key under the pipeline root (inputs by what they hold:
`components.spec.input_identity`), so a rerun of the same work after a kill or
Ctrl-C, in any mode, continues from the last finished epoch. The output folder
appears only complete (`run_train`).
"""

from __future__ import annotations

import os
from typing import Any

from tlpipe.components.spec import (
    WORK_KEY_FILE, ArtifactSpec, ComponentSpec, ParameterSpec, StepArgs, import_function,
)
from tlpipe.components.trainer.config import SourceConfig, TrainerConfig
from tlpipe.components.trainer.strategies import get_strategy
from tlpipe.components.transform.spec import HANDLE_PARAMETER, TRANSFORMED
from tlpipe.models.artifacts import atomic_output_dir, write_json, write_text
from tlpipe.models.layout import HISTORY_FILE, LOG_DIR, SUMMARY_FILE

MODEL = "model"
SELECTED = "selected"  # the rank step's choice of module (components/rank/spec.py), when it runs
MODULE = "module"
TEACHERS = "teachers"
SOURCE_DOMAIN = "source_domain"  # the labelled source domain's transformed data, for domain adaptation
MODEL_DIR = "model"

TRAIN = ComponentSpec(
    name="train",
    executor="tlpipe.components.trainer.spec:run_train",
    sections={"trainer": TrainerConfig},
    options={"strategy": str, "handle": str},  # which registered strategy trains, on which module
    parameters=(HANDLE_PARAMETER, ParameterSpec("seed", int, "trainer.seed", unset=-1)),  # seed: set by a sweep
    inputs=(ArtifactSpec(TRANSFORMED, "dataset"), ArtifactSpec(TEACHERS, "model", many=True),
            ArtifactSpec(SOURCE_DOMAIN, "dataset", many=True)),
    outputs=(ArtifactSpec(MODEL, "model"),),
    value_inputs=(SELECTED,),
    resumable=True,
)

PRETRAIN = ComponentSpec(
    name="pretrain",
    executor="tlpipe.components.trainer.spec:run_pretrain",
    sections={"source": SourceConfig},
    options={"publish_dir": str},  # where the pre-trained module is also published (empty: only the artifact)
    inputs=(ArtifactSpec(TRANSFORMED, "dataset"),),
    outputs=(ArtifactSpec(MODULE, "model"),),
)


def saved_model_dir(trained_dir: str) -> str:
    """The exported SavedModel inside a train step's artifact folder."""
    return os.path.join(trained_dir, MODEL_DIR)


def history_file(trained_dir: str) -> str:
    """The training history inside a train step's artifact folder."""
    return os.path.join(trained_dir, HISTORY_FILE)


def run_train(args: StepArgs) -> dict[str, Any]:
    """Train the strategy named by the `strategy` option with its registered executor.

    The training writes into a temporary sibling of the output folder, which becomes the output only once the
    model is exported: a failed or interrupted step leaves no output folder (config.json, history.json and
    logs without a model looked finished). Its TensorBoard logs move to the work folder, beside the checkpoints
    the next run of the same work resumes from."""
    strategy = get_strategy(args.options["strategy"])
    train = import_function(strategy.train)
    extra = {"teacher_model_dir": saved_model_dir(path) for path in args.group(TEACHERS).values()}
    extra.update({"source_transformed_dir": path for path in args.group(SOURCE_DOMAIN).values()})
    selected = args.values.get(SELECTED)
    handle = selected["handle"] if selected else args.options["handle"]
    with atomic_output_dir(args.output) as tmp_dir:
        try:
            summary = train(args.sections["trainer"], args.inputs[TRANSFORMED], tmp_dir, strategy=strategy.name,
                            handle=handle, work_dir=args.work_dir or None, **extra)
        except BaseException:
            _keep_logs(tmp_dir, args.work_dir)
            raise
        summary["model_dir"] = saved_model_dir(os.path.abspath(args.output))
        if args.work_dir:  # a student of this model is keyed by it (components.spec.input_identity)
            write_text(os.path.join(tmp_dir, WORK_KEY_FILE), os.path.basename(args.work_dir))
        if selected:
            summary["module_selection"] = selected
        write_json(os.path.join(tmp_dir, SUMMARY_FILE), summary)
    return summary


def _keep_logs(tmp_dir: str, work_dir: str) -> None:
    """Move a failed training's TensorBoard logs into its work folder (replacing an earlier attempt's)."""
    import shutil

    logs = os.path.join(tmp_dir, LOG_DIR)
    if work_dir and os.path.isdir(logs):
        kept = os.path.join(work_dir, LOG_DIR)
        shutil.rmtree(kept, ignore_errors=True)
        os.makedirs(work_dir, exist_ok=True)
        shutil.move(logs, kept)


def run_pretrain(args: StepArgs) -> dict[str, Any]:
    """Pre-train the source feature extractor; with the `publish_dir` option, also publish it there."""
    import shutil

    from tlpipe.components.trainer.pretrain import pretrain_and_publish
    from tlpipe.models.artifacts import atomic_output_dir
    from tlpipe.models.progress import log

    summary = pretrain_and_publish(args.sections["source"], args.inputs[TRANSFORMED], args.output)
    publish_dir = args.options.get("publish_dir")
    if publish_dir:
        with atomic_output_dir(publish_dir) as tmp_dir:
            shutil.copytree(args.output, tmp_dir, dirs_exist_ok=True)
        log(f"pretrain: published the source module to {publish_dir}")
    return summary
