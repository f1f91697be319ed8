"""The evaluate step's declaration.

Inputs: the transformed data, every trained model (a `many` input keyed by
strategy), and the model now in production as a value the resolver step
produced (`components/pusher/spec.py`), so the cache and the run record see it.
Which models are candidates and which are references, which reference each
candidate is judged against (its matched reference) and which models trained
on a source domain come from the graph, as the `pairing` option (the strategy
registry's `pairing_for`): the evaluator names no strategy. A strategy the
standard evaluation cannot judge declares its own evaluate step
(`EVALUATE_MULTI_TASK`: the same declaration, another executor).
The `edge_formats` option (the graph passes `pusher.formats` beyond
the SavedModel) says which edge exports of the blessed candidate to convert
and check (components/evaluator/edge_check.py).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.pairing import Pairing
from tlpipe.components.spec import ArtifactSpec, ComponentSpec, StepArgs
from tlpipe.components.trainer.spec import history_file, saved_model_dir
from tlpipe.components.transform.spec import TRANSFORMED

if TYPE_CHECKING:
    from tlpipe.components.production import ProductionModel

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
    """The standard evaluation: each candidate against its matched reference and production (TFMA)."""
    from tlpipe.components.evaluator.executor import run_evaluator

    pairing = Pairing.from_dict(args.options.get("pairing"))
    candidates, references = _models_by_role(args, pairing)
    models = args.group(MODELS)
    return run_evaluator(
        args.sections["evaluator"], args.inputs[TRANSFORMED], candidates, references, args.output,
        production=_production(args), histories=_histories(args), beam_config=args.sections["beam"],
        shift_dirs={name: models[name] for name in pairing.source_domain if name in models} or None,
        pairing=pairing, edge_formats=args.options.get("edge_formats") or (),
    )


def run_multi_task(args: StepArgs) -> dict[str, Any]:
    """Multi-task evaluation: each head against its single-task model and the multi-head baseline."""
    from tlpipe.components.evaluator.multi_task import run_multi_task_evaluator

    candidates, references = _models_by_role(args, Pairing.from_dict(args.options.get("pairing")))
    return run_multi_task_evaluator(
        args.sections["evaluator"], args.inputs[TRANSFORMED], candidates, references, args.output,
        production=_production(args), histories=_histories(args), beam_config=args.sections["beam"])


# A strategy whose model the standard evaluation cannot judge declares this one as its own (Strategy.evaluate).
EVALUATE_MULTI_TASK = dataclasses.replace(EVALUATE, executor="tlpipe.components.evaluator.spec:run_multi_task")


def _models_by_role(args: StepArgs, pairing: Pairing) -> tuple[dict[str, str], dict[str, str]]:
    """(candidates, references): each trained model's SavedModel, by the pairing's roles."""
    models = {name: saved_model_dir(path) for name, path in args.group(MODELS).items()}
    candidates = {name: path for name, path in models.items() if name in pairing.candidates}
    return candidates, {name: path for name, path in models.items() if name not in candidates}


def _production(args: StepArgs) -> "ProductionModel":
    from tlpipe.components.production import ProductionModel

    return ProductionModel.from_dict(args.values.get(PRODUCTION))


def _histories(args: StepArgs) -> dict[str, str]:
    return {name: history_file(path) for name, path in args.group(MODELS).items()}
