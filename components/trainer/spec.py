"""The trainer's names and the source pre-training step.

The names a trained model's artifact is read by (`MODEL_DIR`, `saved_model_dir`,
`history_file`) and the train step's input and output names; the train step
itself, which needs the strategy registry, is components/strategies/train_step.py.
"""

from __future__ import annotations

import os
from typing import Any

from tlpipe.components.spec import ArtifactSpec, ComponentSpec, StepArgs
from tlpipe.components.trainer.config import SourceConfig
from tlpipe.components.transform.spec import TRANSFORMED
from tlpipe.models.plumbing.layout import HISTORY_FILE

MODEL = "model"
SELECTED = "selected"  # the rank step's choice of module (components/rank/spec.py), when it runs
MODULE = "module"
TEACHERS = "teachers"
SOURCE_DOMAIN = "source_domain"  # the labelled source domain's transformed data, for domain adaptation
MODEL_DIR = "model"

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


def run_pretrain(args: StepArgs) -> dict[str, Any]:
    """Pre-train the source feature extractor; with the `publish_dir` option, also publish it there."""
    import shutil

    from tlpipe.components.trainer.pretrain import pretrain_and_publish
    from tlpipe.models.plumbing.artifacts import atomic_output_dir
    from tlpipe.models.plumbing.progress import log

    summary = pretrain_and_publish(args.sections["source"], args.inputs[TRANSFORMED], args.output)
    publish_dir = args.options.get("publish_dir")
    if publish_dir:
        with atomic_output_dir(publish_dir) as tmp_dir:
            shutil.copytree(args.output, tmp_dir, dirs_exist_ok=True)
        log(f"pretrain: published the source module to {publish_dir}")
    return summary
