"""Which penalty regularised fine-tuning adds (see `regularizers.py`), as a config section.

Kept free of TensorFlow so that loading a config never imports it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tlpipe.models.plumbing.errors import ConfigError

NONE = "none"
L2_SP = "l2_sp"
BSS = "bss"
KINDS = (NONE, L2_SP, BSS)



@dataclasses.dataclass(frozen=True)
class Regularization:
    """Which penalty fine-tuning adds to the loss, and its strengths.

    `alpha` and `beta` are L2-SP's (base towards its pre-trained values; head
    kernels towards zero), `eta` and `k` BSS's (weight and number of smallest
    singular values). The defaults are the papers'.
    """

    kind: str = NONE
    alpha: float = 0.1
    beta: float = 0.01
    eta: float = 0.001
    k: int = 1

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError("kind", self.kind, KINDS)
        for name in ("alpha", "beta", "eta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(name, value, "a finite number >= 0")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError("k", self.k, "an integer >= 1")

    @property
    def active(self) -> bool:
        return self.kind != NONE

    def applies(self, base_trains: bool) -> bool:
        """Whether the penalty can change a phase's training: BSS only moves features a training base computes."""
        return self.kind == L2_SP or (self.kind == BSS and base_trains)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
