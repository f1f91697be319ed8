"""tlpipe.models: Keras 3 models over TF-Hub feature vectors.

The lowest layer: nothing here imports `tlpipe.components` or
`tlpipe.pipeline` (tests/models/test_layering.py checks it). Besides the hub
layer, builders, fits and export, its `plumbing` package holds what every
layer shares, without TensorFlow: errors, the example format, atomic artifact
I/O, artifact file names and what a person sees while tlpipe works.

The public API is imported lazily, so `import tlpipe.models` stays cheap and
TensorFlow loads only when a model is actually built.

    from tlpipe.models import HubFeatureVector, build_transfer_model, two_phase_fit
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HubFeatureVector": "tlpipe.models.hub_layer",
    "PRESETS": "tlpipe.models.presets",
    "Preset": "tlpipe.models.presets",
    "from_preset": "tlpipe.models.presets",
    "export_hub_module": "tlpipe.models.publish",
    "Classifier": "tlpipe.models.builders",
    "build_transfer_model": "tlpipe.models.builders",
    "build_baseline_model": "tlpipe.models.builders",
    "build_small_cnn": "tlpipe.models.builders",
    "two_phase_fit": "tlpipe.models.fit",
    "fit_baseline": "tlpipe.models.fit",
    "Unfreeze": "tlpipe.models.fit",
    "UNFREEZE_ALL": "tlpipe.models.fit",
    "make_schedule": "tlpipe.models.hyperrule",
    "Schedule": "tlpipe.models.hyperrule",
    "export_for_serving": "tlpipe.models.serving",
    "load_serving_metadata": "tlpipe.models.serving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tlpipe.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
