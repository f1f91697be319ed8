"""The pusher component's spec: where blessed models are served from."""

from __future__ import annotations

import dataclasses

from tlpipe.models.errors import ConfigError


@dataclasses.dataclass
class PusherConfig:
    """`serving_dir` gets one numbered sub-folder per pushed model (TF Serving's layout);
    a relative path is resolved under the pipeline root. After a push, only the
    newest `keep_versions` versions stay (0 keeps every version)."""

    serving_dir: str = "serving"
    keep_versions: int = 0

    def validate(self) -> None:
        if not self.serving_dir:
            raise ConfigError("serving_dir", self.serving_dir, "a folder path")
        if self.keep_versions < 0:
            raise ConfigError("keep_versions", self.keep_versions, "0 (keep all) or an integer >= 1")
