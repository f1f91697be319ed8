"""The rank step's declaration: pick the module to transfer from, before training.

With `trainer.candidates`, the pipeline ranks the candidates on the labelled
target examples (`rank_candidates`: LogME, H-score, k-NN, LEEP/NCE) and hands
the trainers the recommended one as a value (`selected`: handle, score, reason),
so the choice and its reason travel with every trained model.
"""

from __future__ import annotations

from typing import Any

from tlpipe.components.spec import ArtifactSpec, ComponentSpec, StepArgs
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.spec import SELECTED
from tlpipe.components.transform.spec import TRANSFORMED

RANKING = "ranking"

RANK = ComponentSpec(
    name="rank",
    executor="tlpipe.components.rank.spec:run",
    sections={"trainer": TrainerConfig},
    inputs=(ArtifactSpec(TRANSFORMED, "dataset"),),
    outputs=(ArtifactSpec(RANKING, "artifact"),),
    output_value=SELECTED,
)


def run(args: StepArgs) -> dict[str, Any]:
    from tlpipe.components.rank.executor import rank_candidates

    trainer = args.sections["trainer"]
    ranking = rank_candidates(trainer.candidates, args.inputs[TRANSFORMED], args.outputs[RANKING],
                              select=trainer.select, seed=trainer.seed)
    return {"handle": ranking["recommended"], "select": ranking["select"], "reason": ranking["reason"],
            "ranking": args.outputs[RANKING]}
