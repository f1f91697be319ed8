"""The train step: one per strategy of a run; it runs the strategy's registered train function.

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
import shutil
from typing import Any

from tlpipe.components.spec import WORK_KEY_FILE, ArtifactSpec, ComponentSpec, ParameterSpec, StepArgs
from tlpipe.components.strategies.plugin import TrainArgs
from tlpipe.components.strategies.registry import get_strategy, load_plugins
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.spec import MODEL, SELECTED, SOURCE_DOMAIN, TEACHERS, saved_model_dir
from tlpipe.components.transform.spec import HANDLE_PARAMETER, TRANSFORMED
from tlpipe.models.plumbing.artifacts import atomic_output_dir, write_json, write_text
from tlpipe.models.plumbing.layout import LOG_DIR, SUMMARY_FILE

TRAIN = ComponentSpec(
    name="train",
    executor="tlpipe.components.strategies.train_step:run_train",
    sections={"trainer": TrainerConfig},
    options={"strategy": str, "handle": str},  # which registered strategy trains, on which module
    parameters=(HANDLE_PARAMETER, ParameterSpec("seed", int, "trainer.seed", unset=-1)),  # seed: set by a sweep
    inputs=(ArtifactSpec(TRANSFORMED, "dataset"), ArtifactSpec(TEACHERS, "model", many=True),
            ArtifactSpec(SOURCE_DOMAIN, "dataset", many=True)),
    outputs=(ArtifactSpec(MODEL, "model"),),
    value_inputs=(SELECTED,),
    resumable=True,
)


def run_train(args: StepArgs) -> dict[str, Any]:
    """Train the strategy named by the `strategy` option with its registered train function.

    The training writes into a temporary sibling of the output folder, which becomes the output only once the
    model is exported: a failed or interrupted step leaves no output folder (config.json, history.json and
    logs without a model looked finished). Its TensorBoard logs move to the work folder, beside the checkpoints
    the next run of the same work resumes from."""
    load_plugins(args.sections["trainer"])
    strategy = get_strategy(args.options["strategy"])
    teachers = [saved_model_dir(path) for path in args.group(TEACHERS).values()]
    sources = list(args.group(SOURCE_DOMAIN).values())
    selected = args.values.get(SELECTED)
    with atomic_output_dir(args.output) as tmp_dir:
        train_args = TrainArgs(
            config=args.sections["trainer"], transformed_dir=args.inputs[TRANSFORMED], output_dir=tmp_dir,
            strategy=strategy.name, handle=selected["handle"] if selected else args.options["handle"],
            work_dir=args.work_dir or None, teacher_model_dir=teachers[0] if teachers else None,
            source_transformed_dir=sources[0] if sources else None,
        )
        try:
            summary = strategy.train(train_args)
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
    logs = os.path.join(tmp_dir, LOG_DIR)
    if work_dir and os.path.isdir(logs):
        kept = os.path.join(work_dir, LOG_DIR)
        shutil.rmtree(kept, ignore_errors=True)
        os.makedirs(work_dir, exist_ok=True)
        shutil.move(logs, kept)
