"""The pusher's steps: the production resolver and the push.

`resolve` is TFX's Resolver for "the model in production": it runs every time
(never cached) and hands the evaluator a small value (version, path,
fingerprint) instead of the evaluator scanning the serving folder itself. The
evaluator's cache key includes that value, so evaluation re-runs exactly when
production moved. `push` ships the blessed model and writes `push.json`.
"""

from __future__ import annotations

import os
from typing import Any

from tlpipe.components.evaluator.spec import BLESSING_FILE, EVALUATION, MODELS
from tlpipe.components.pusher.config import PusherConfig
from tlpipe.components.spec import ArtifactSpec, ComponentSpec, StepArgs
from tlpipe.components.trainer.spec import saved_model_dir

PUSHED = "pushed"
PUSH_FILE = "push.json"

RESOLVE_PRODUCTION = ComponentSpec(
    name="resolve",
    executor="tlpipe.components.pusher.spec:run_resolve",
    options={"serving_dir": str, "compare_with_production": bool},
    output_value="production",
    cacheable=False,
)

PUSH = ComponentSpec(
    name="push",
    executor="tlpipe.components.pusher.spec:run_push",
    sections={"pusher": PusherConfig},
    options={"serving_dir": str},
    inputs=(ArtifactSpec(EVALUATION, "artifact"), ArtifactSpec(MODELS, "model", many=True)),
    outputs=(ArtifactSpec(PUSHED, "artifact"),),
)


def run_resolve(args: StepArgs) -> dict[str, Any]:
    """The model now in production under the `serving_dir` option (empty when it is off or empty)."""
    from tlpipe.components.production import ProductionModel, describe_production

    if not args.options.get("compare_with_production", True):
        return ProductionModel(None, None, None).to_dict()
    return describe_production(args.options["serving_dir"]).to_dict()


def run_push(args: StepArgs) -> dict[str, Any]:
    """Push the blessed model, if any; record what happened either way."""
    from tlpipe.components.pusher.executor import run_pusher
    from tlpipe.models.plumbing.artifacts import atomic_output_dir, read_json, write_json
    from tlpipe.models.plumbing.progress import log

    blessing_path = os.path.join(args.inputs[EVALUATION], BLESSING_FILE)
    blessing = read_json(blessing_path)
    models = args.group(MODELS)
    with atomic_output_dir(args.output) as tmp_dir:
        if blessing.get("blessed"):
            model_dir = saved_model_dir(models[blessing["candidate"]])
            record = {"pushed": True, **run_pusher(args.sections["pusher"], model_dir, blessing_path,
                                                   args.options["serving_dir"])}
        else:
            record = {"pushed": False, "reason": blessing.get("reason", "not blessed")}
            log(f"push: skipped, the evaluator did not bless any model ({record['reason']})")
        write_json(os.path.join(tmp_dir, PUSH_FILE), record)
    return record
