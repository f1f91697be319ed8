"""The pusher component's spec: where blessed models are served from."""

from __future__ import annotations

import dataclasses

from tlpipe.models.edge import FORMATS, SAVED_MODEL
from tlpipe.models.plumbing.errors import ConfigError


@dataclasses.dataclass
class PusherConfig:
    """`serving_dir` gets one numbered sub-folder per pushed model (TF Serving's layout);
    a relative path is resolved under the pipeline root. After a push, only the
    newest `keep_versions` versions stay (0 keeps every version).

    `formats`: what each version holds. `saved_model` (always: the version is
    a SavedModel) and any edge formats of `tlpipe.models.edge` (`tflite`,
    `tflite_float16`, `tflite_dynamic`, `tflite_int8`), which the evaluator
    converts and checks and the pusher copies into `<version>/edge/`."""

    serving_dir: str = "serving"
    keep_versions: int = 0
    formats: list[str] = dataclasses.field(default_factory=lambda: [SAVED_MODEL])

    @property
    def edge_formats(self) -> list[str]:
        """The formats beyond the SavedModel, in the order given."""
        return [name for name in self.formats if name != SAVED_MODEL]

    def validate(self) -> None:
        if not self.serving_dir:
            raise ConfigError("serving_dir", self.serving_dir, "a folder path")
        if self.keep_versions < 0:
            raise ConfigError("keep_versions", self.keep_versions, "0 (keep all) or an integer >= 1")
        allowed = f"a list of distinct formats among {list(FORMATS)} that includes {SAVED_MODEL!r}"
        if SAVED_MODEL not in self.formats or len(set(self.formats)) != len(self.formats):
            raise ConfigError("formats", self.formats, allowed)
        for name in self.formats:
            if name not in FORMATS:
                raise ConfigError("formats", name, allowed)
