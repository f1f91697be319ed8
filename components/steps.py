"""Every pipeline step's declaration in one place, and the step kinds derived from them.

Why: the `kubeflow` config section names steps by kind (resources, caching);
a list written by hand drifted from the declarations (rank and the sweep's
steps were missing, so `kubeflow.resources.rank` was refused). A new step is
its `ComponentSpec` plus its entry here.
"""

from __future__ import annotations

from tlpipe.components.evaluator.spec import EVALUATE
from tlpipe.components.ingest.spec import INGEST
from tlpipe.components.pusher.spec import PUSH, RESOLVE_PRODUCTION
from tlpipe.components.rank.spec import RANK
from tlpipe.components.spec import ComponentSpec
from tlpipe.components.strategies.train_step import TRAIN
from tlpipe.components.sweep.spec import SWEEP_GATHER, SWEEP_POINT
from tlpipe.components.trainer.spec import PRETRAIN
from tlpipe.components.transform.spec import TRANSFORM

STEPS: tuple[ComponentSpec, ...] = (
    INGEST, TRANSFORM, PRETRAIN, RANK, TRAIN, RESOLVE_PRODUCTION, EVALUATE, PUSH, SWEEP_POINT, SWEEP_GATHER,
)
STEP_KINDS: tuple[str, ...] = tuple(spec.name for spec in STEPS)
