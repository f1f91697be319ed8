"""Which model each candidate is judged against, and which differences say where its gain came from.

Why: a candidate that saw more data than its reference is credited with what
the data did. self_training learns from ~21,000 pseudo-labelled images, the
plain baseline from 50 labels; "+0.14 over the baseline" was mostly the
unlabelled images, not the module. So every candidate has a matched
reference that saw exactly the same data from scratch (the registry's
`reference`: self_training <-> baseline_self_training, multi_task <->
multi_task_baseline, domain strategies <-> source_only, the plain transfer
fits <-> baseline), and the transfer verdict is against that one.

The gain is then decomposed into paired differences the evaluator measures
with TFMA (each on the same test examples, with its interval):

- module: the candidate vs its matched reference (same data; what the
  pre-trained module added);
- extra data with transfer: the candidate vs the model it builds on (its
  teacher, e.g. self_training vs fine_tune_all: what the unlabelled images
  added to the transferred model);
- extra data from scratch: the matched reference vs the model it builds on
  (baseline_self_training vs baseline);
- total: the candidate vs that plain reference (self_training vs baseline).

The strategy registry computes a run's pairing
(components/strategies/registry.py: `pairing_for`, with the roles: which
models are candidates, which trained on a source domain) and the graph passes
it to the evaluate step as an option, so the evaluator names no strategy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

MODULE = "module"
DATA_WITH_TRANSFER = "data_with_transfer"
DATA_FROM_SCRATCH = "data_from_scratch"
TOTAL = "total"


@dataclasses.dataclass(frozen=True)
class Pairing:
    """A run's models as the evaluator sees them. `candidates`: the models that may be blessed (every other
    model is a reference); `matched`: candidate -> its matched reference; `builds_on`: model -> the model whose
    data it extends (its teacher); `extra_data`: model -> what data it adds, in words; `from_scratch`: the
    from-scratch references; `source_domain`: the models trained on a labelled source domain."""

    candidates: tuple[str, ...] = ()
    matched: Mapping[str, str] = dataclasses.field(default_factory=dict)
    builds_on: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extra_data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    from_scratch: tuple[str, ...] = ()
    source_domain: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "Pairing":
        data = data or {}
        return cls(candidates=tuple(data.get("candidates", ())), matched=dict(data.get("matched", {})),
                   builds_on=dict(data.get("builds_on", {})), extra_data=dict(data.get("extra_data", {})),
                   from_scratch=tuple(data.get("from_scratch", ())),
                   source_domain=tuple(data.get("source_domain", ())))

    def to_dict(self) -> dict[str, Any]:
        return {"candidates": list(self.candidates), "matched": dict(self.matched), "builds_on": dict(self.builds_on),
                "extra_data": dict(self.extra_data), "from_scratch": list(self.from_scratch),
                "source_domain": list(self.source_domain)}

    def gating_references(self, candidate: str, references: Mapping[str, str]) -> list[str]:
        """The references (name -> role) `candidate` must beat: its matched one and production when it is
        paired, else every reference (a run without pairing: the evaluator called on its own)."""
        matched = self.matched.get(candidate)
        if matched not in references:
            return list(references)
        return [name for name, role in references.items() if name == matched or role == "production"]

    def extra_pairs(self, candidates: list[str], references: list[str]) -> dict[str, list[str]]:
        """The differences the decomposition needs beyond 'every candidate vs every reference', as
        {compared-with: [models]}: a reference vs the reference it builds on, a candidate vs its teacher."""
        pairs: dict[str, list[str]] = {}
        for name, base in self.builds_on.items():
            if (name in references and base in references) or (name in candidates and base in candidates):
                pairs.setdefault(base, []).append(name)
        return pairs

    def gains(self, candidate: str, diffs: Mapping[str, Mapping[str, dict[str, float]]]) -> list[dict[str, Any]]:
        """Where `candidate`'s gain came from: each part's paired difference, read from `diffs`
        ({compared-with: {model: accuracy difference}}); parts whose difference was not measured are left out."""
        matched = self.matched.get(candidate)
        teacher = self.builds_on.get(candidate)
        plain = self.builds_on.get(matched) if matched else None
        extra = self.extra_data.get(candidate) or self.extra_data.get(matched or "") or "its extra training data"
        wanted = [
            (MODULE, candidate, matched, "what the module added (the same data, from scratch)"),
            (DATA_WITH_TRANSFER, candidate, teacher, f"what {extra} added to the transferred model"),
            (DATA_FROM_SCRATCH, matched, plain, f"what {extra} added from scratch"),
            (TOTAL, candidate, plain, "in all, against the plain reference"),
        ]
        return [
            {"part": part, "model": model, "compared_with": base, "says": says, "accuracy_diff": diffs[base][model]}
            for part, model, base, says in wanted
            if model and base and model in diffs.get(base, {})
        ]
