"""The `kubeflow` config section: image, per-step resources, retries and caching.

Steps are named by kind, the `name` of their declaration (`components.steps.STEP_KINDS`:
ingest, transform, pretrain, rank, train, resolve, evaluate, push, sweep-point, sweep-gather).
`resources.default` applies to every step a more specific entry does not name.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from tlpipe.components.steps import STEP_KINDS
from tlpipe.models.plumbing.errors import ConfigError

_CPU = re.compile(r"^\d+(\.\d+)?m?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([EPTGMK]i?)?$")


@dataclasses.dataclass
class StepResources:
    """Kubernetes requests/limits of one step (CPU as '2' or '500m', memory as '8G' or '512Mi')."""

    cpu_request: Optional[str] = None
    cpu_limit: Optional[str] = None
    memory_request: Optional[str] = None
    memory_limit: Optional[str] = None
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0

    def validate(self) -> None:
        for name in ("cpu_request", "cpu_limit"):
            value = getattr(self, name)
            if value is not None and not _CPU.match(value):
                raise ConfigError(name, value, "a CPU quantity such as '2', '0.5' or '500m'")
        for name in ("memory_request", "memory_limit"):
            value = getattr(self, name)
            if value is not None and not _MEMORY.match(value):
                raise ConfigError(name, value, "a memory quantity such as '8G', '512Mi' or '1Gi'")
        if self.accelerator_count < 0:
            raise ConfigError("accelerator_count", self.accelerator_count, "an integer >= 0")
        if self.accelerator_count and not self.accelerator_type:
            raise ConfigError("accelerator_type", self.accelerator_type,
                              "an accelerator type (e.g. 'nvidia.com/gpu' or 'NVIDIA_TESLA_T4') when accelerator_count > 0")


def _default_resources() -> dict[str, StepResources]:
    return {
        "default": StepResources(cpu_request="1", memory_request="2G"),
        "train": StepResources(cpu_request="4", memory_request="8G"),
        "pretrain": StepResources(cpu_request="4", memory_request="8G"),
        "evaluate": StepResources(cpu_request="2", memory_request="4G"),
    }


@dataclasses.dataclass
class KubeflowConfig:
    """How the compiled pipeline runs on a Kubeflow cluster."""

    image: str = "tlpipe:0.1.0"
    host: Optional[str] = None
    experiment: str = "tlpipe"
    retries: int = 0
    resources: dict[str, StepResources] = dataclasses.field(default_factory=_default_resources)
    caching: dict[str, bool] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if not self.image:
            raise ConfigError("image", self.image, "a container image reference, e.g. 'gcr.io/my-project/tlpipe:0.1.0'")
        if self.retries < 0:
            raise ConfigError("retries", self.retries, "an integer >= 0")
        for mapping, name in ((self.resources, "resources"), (self.caching, "caching")):
            for step in mapping:
                allowed = ("default", *STEP_KINDS) if name == "resources" else STEP_KINDS
                if step not in allowed:
                    raise ConfigError(f"{name}.{step}", mapping[step], "steps " + ", ".join(allowed))

    def resources_for(self, step_kind: str) -> StepResources:
        """The step's own resources, else the default ones."""
        return self.resources.get(step_kind) or self.resources.get("default") or StepResources()
