"""The transform component's spec: image geometry, text normalisation, tolerance for bad records."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from tlpipe.models.plumbing.errors import ConfigError


@dataclasses.dataclass
class TransformConfig:
    """How raw examples become model-ready ones.

    `image_size` is [height, width]; null takes the input size of the trainer's
    hub module or preset. `channels` 3 turns grey images into RGB, 1 turns colour
    into grey, null keeps what the data has. `resize_method` has the meaning it has
    for `tf.image.resize(..., antialias=True)`. Texts are NFKC-normalised with
    whitespace collapsed, and lowercased when `text_lowercase`. A split whose
    fraction of bad records (undecodable, label outside the label set, feature
    missing) exceeds `max_bad_fraction` fails the run; within it, bad records are
    set aside in the output's `bad_records/<split>.jsonl`.
    """

    image_size: Optional[list[int]] = None
    channels: Optional[int] = None
    resize_method: Literal["bilinear", "nearest", "area", "bicubic"] = "bilinear"
    text_lowercase: bool = True
    max_bad_fraction: float = 0.0

    def validate(self) -> None:
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ConfigError("image_size", self.image_size, "null or [height, width] with both >= 1")
        if self.channels not in (None, 1, 3):
            raise ConfigError("channels", self.channels, [None, 1, 3])
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ConfigError("max_bad_fraction", self.max_bad_fraction, "a number in [0, 1]")
