"""The evaluate step's declaration.

Inputs: the transformed data, every trained model (a `many` input keyed by
strategy), and the model now in production as a value the resolver step
produced (`components/pusher/spec.py`), so the cache and the run record see it.
Which models are candidates and which are references comes from the strategy
registry; which reference each candidate is judged against (its matched
reference) comes from the graph, as the `pairing` option.
The `edge_formats` option (the graph passes `pusher.formats` beyond
the SavedModel) says which edge exports of the blessed candidate to convert
and check (components/evaluator/edge_check.py).
"""

from __future__ import annotations

from typing import Any

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.spec import ArtifactSpec, ComponentSpec, StepArgs
from tlpipe.components.trainer.spec import history_file, saved_model_dir
from tlpipe.components.trainer.strategies import CANDIDATE, MULTI_TASK, get_strategy
from tlpipe.components.transform.spec import TRANSFORMED

EVALUATION = "evaluation"
BLESSING_FILE = "blessing.json"
MODELS = "models"
PRODUCTION = "production"

EVALUATE = ComponentSpec(
    name="evaluate",
    executor="tlpipe.components.evaluator.spec:run",
    sections={"evaluator": EvaluatorConfig, "beam": BeamConfig},
    options={"pairing": dict,  # Pairing.to_dict(): each candidate's matched reference, the gain decomposition
             "edge_formats": list},  # pusher.formats beyond the SavedModel: the edge exports to convert and check
    inputs=(ArtifactSpec(TRANSFORMED, "dataset"), ArtifactSpec(MODELS, "model", many=True)),
    value_inputs=(PRODUCTION,),
    outputs=(ArtifactSpec(EVALUATION, "artifact"),),
)


def run(args: StepArgs) -> dict[str, Any]:
    from tlpipe.components.evaluator.executor import run_evaluator
    from tlpipe.components.evaluator.pairing import Pairing
    from tlpipe.components.production import ProductionModel

    models = args.group(MODELS)
    candidates = {name: saved_model_dir(path) for name, path in models.items()
                  if get_strategy(name).role == CANDIDATE}
    references = {name: saved_model_dir(path) for name, path in models.items()
                  if get_strategy(name).role != CANDIDATE}
    production = ProductionModel.from_dict(args.values.get(PRODUCTION))
    if MULTI_TASK in candidates:  # compared per task with its single-task models and multi-head baseline
        from tlpipe.components.evaluator.multi_task import run_multi_task_evaluator

        return run_multi_task_evaluator(
            args.sections["evaluator"], args.inputs[TRANSFORMED], candidates, references, args.output,
            production=production, histories={name: history_file(path) for name, path in models.items()},
            beam_config=args.sections["beam"])
    return run_evaluator(
        args.sections["evaluator"], args.inputs[TRANSFORMED], candidates, references, args.output,
        production=production, histories={name: history_file(path) for name, path in models.items()},
        beam_config=args.sections["beam"],
        shift_dirs={name: path for name, path in models.items() if get_strategy(name).source_domain} or None,
        pairing=Pairing.from_dict(args.options.get("pairing")),
        edge_formats=args.options.get("edge_formats") or (),
    )
