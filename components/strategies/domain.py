"""Domain adaptation: a labelled source domain, an unlabelled target domain (components/trainer/domain_adaptation.py).

Each strategy is one method of `train_domain_adaptation`, under the
literature's name: `domain_adaptation` is DANN (a gradient-reversed domain
discriminator), `bn_adapt` is AdaBN (the source-only model with its batch-norm
statistics re-estimated on target images; it reuses source_only's training as
its teacher), and `source_only` the same loop on the source labels alone: the
matched reference both are judged against.
"""

from __future__ import annotations

from typing import Any, Optional

from tlpipe.components.strategies.plugin import CANDIDATE, REFERENCE, Strategy, TrainArgs

DOMAIN_ADAPTATION = "domain_adaptation"
BN_ADAPT = "bn_adapt"
SOURCE_ONLY = "source_only"


def _train(args: TrainArgs, method: str, teacher_model_dir: Optional[str] = None) -> dict[str, Any]:
    from tlpipe.components.trainer.domain_adaptation import train_domain_adaptation

    return train_domain_adaptation(args.config, args.source_domain(), args.transformed_dir, args.output_dir,
                                   handle=args.handle, method=method, strategy=args.strategy, work_dir=args.work_dir,
                                   teacher_model_dir=teacher_model_dir)


def train_dann(args: TrainArgs) -> dict[str, Any]:
    """DANN on the source labels and the unlabelled target images."""
    from tlpipe.models.domain import DANN

    return _train(args, DANN)


def train_bn_adapt(args: TrainArgs) -> dict[str, Any]:
    """AdaBN on the source_only model (the teacher): batch-norm statistics re-estimated on target images."""
    from tlpipe.components.trainer.domain_adaptation import BN_ADAPT as METHOD

    return _train(args, METHOD, teacher_model_dir=args.teacher())


def train_source_only(args: TrainArgs) -> dict[str, Any]:
    """The same loop and budget on the source labels alone."""
    from tlpipe.models.domain import SOURCE_ONLY as METHOD

    return _train(args, METHOD)


STRATEGIES = (
    Strategy(DOMAIN_ADAPTATION, train_dann, CANDIDATE,
             "DANN: labelled source domain, unlabelled target domain, a gradient-reversed domain discriminator",
             reference=SOURCE_ONLY, source_domain=True),
    Strategy(BN_ADAPT, train_bn_adapt, CANDIDATE,
             "AdaBN: the source-only model with its batch-norm statistics re-estimated on target images",
             reference=SOURCE_ONLY, source_domain=True, teacher=SOURCE_ONLY),
    Strategy(SOURCE_ONLY, train_source_only, REFERENCE,
             "trained on the source domain's labels, no adaptation: what domain adaptation must beat",
             source_domain=True),
)
