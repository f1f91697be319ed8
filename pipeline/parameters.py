"""Run-time parameters of the transfer pipeline.

These are the values a scheduled or submitted run may change without
recompiling: where the data is, which hub module, how many labels per class,
which span. An empty string / a negative number means "as in the config".
"""

from __future__ import annotations

import dataclasses

from tlpipe.pipeline.config import PipelineConfig
from tlpipe.components.config_schema import from_dict, to_dict
from tlpipe.models.plumbing.errors import ConfigError

LATEST_SPAN = -1


@dataclasses.dataclass(frozen=True)
class RunParameters:
    """Values that override the config at run time (Kubeflow run-time inputs)."""

    source_uri: str = ""
    hub_handle: str = ""
    shots_per_class: int = 0
    span: int = LATEST_SPAN

    def apply(self, config: PipelineConfig) -> PipelineConfig:
        """A validated copy of `config` with these parameters applied."""
        data = to_dict(config)
        if self.source_uri:
            data["ingest"]["source"] = self.source_uri
        if self.hub_handle:
            data["trainer"]["handle"] = self.hub_handle
            data["trainer"]["preset"] = None
        if self.shots_per_class > 0:
            data["ingest"]["shots"]["train"] = self.shots_per_class
        elif self.shots_per_class < 0:
            raise ConfigError("shots_per_class", self.shots_per_class, "0 (as configured) or an integer >= 1")
        if self.span >= 0:
            data["ingest"]["span"] = self.span
        return from_dict(PipelineConfig, data)


def resolve_handle(config: PipelineConfig) -> str:
    """The hub handle or preset name the trainer builds on."""
    if config.trainer.handle:
        return config.trainer.handle
    if config.trainer.preset:
        return config.trainer.preset
    if config.trainer.candidates:  # the rank step picks one; the first gives the transform's geometry
        return config.trainer.candidates[0]
    raise ConfigError(
        "trainer.handle", config.trainer.handle,
        "a TF-Hub handle or local module path, or trainer.preset; "
        "`tlpipe run` sets it to the published source module when both are empty",
    )
