"""The transform step's declaration.

The image geometry is the step's own: `transform.image_size` when set, else the
`image_size`/`channels` options (the source network's, for pre-training), else
the input size of the module named by the `handle` option (the run-time
`hub_handle`).
"""

from __future__ import annotations

from typing import Any, Optional

from tlpipe.components.beam import BeamConfig
from tlpipe.components.ingest.spec import EXAMPLES
from tlpipe.components.spec import ArtifactSpec, ComponentSpec, ParameterSpec, StepArgs
from tlpipe.components.transform.config import TransformConfig

TRANSFORMED = "transformed"
HANDLE_PARAMETER = ParameterSpec("hub_handle", str, "option:handle", unset="")

TRANSFORM = ComponentSpec(
    name="transform",
    executor="tlpipe.components.transform.spec:run",
    sections={"transform": TransformConfig, "beam": BeamConfig},
    # handle: the trainer's module (its input geometry); image_size/channels: a fixed geometry (the source
    # pipeline's)
    options={"handle": str, "image_size": list, "channels": int},
    parameters=(HANDLE_PARAMETER,),
    inputs=(ArtifactSpec(EXAMPLES, "dataset"),),
    outputs=(ArtifactSpec(TRANSFORMED, "dataset"),),
)


def image_geometry(config: TransformConfig, options: dict[str, Any]) -> tuple[Optional[tuple[int, int]], Optional[int]]:
    """Image size and channels the model expects: the config's, the options', else the module's own.

    A configured `image_size` with `channels` null still takes the module's
    channels (an RGB module fed grey images needs them turned into RGB).
    """
    if not config.image_size and options.get("image_size"):
        return tuple(options["image_size"]), options.get("channels")
    if config.image_size and config.channels is not None:
        return tuple(config.image_size), config.channels
    module_size, module_channels = _module_geometry(options.get("handle"))
    size = tuple(config.image_size) if config.image_size else module_size
    return size, config.channels or module_channels


def _module_geometry(handle: Optional[str]) -> tuple[Optional[tuple[int, int]], Optional[int]]:
    """(height, width) and channels the trainer's preset or hub module declares; Nones when unknown."""
    if not handle:
        return None, None
    from tlpipe.models.presets import PRESETS

    if handle in PRESETS:
        preset = PRESETS[handle]
        size = tuple(preset.input_size) if preset.input_size else None
        return size, (3 if preset.modality == "image" else None)
    from tlpipe.models.hub_layer import HubFeatureVector

    input_size = HubFeatureVector(handle).input_size
    if input_size is None:
        return None, None
    height, width, channels = input_size
    return (height, width), channels


def run(args: StepArgs) -> dict[str, Any]:
    from tlpipe.components.transform.executor import run_transform

    config = args.sections["transform"]
    size, channels = image_geometry(config, args.options)
    return run_transform(config, args.sections["beam"], args.inputs[EXAMPLES], args.output,
                         image_size=size, channels=channels)
