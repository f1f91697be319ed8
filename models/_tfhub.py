"""Import `tensorflow_hub` on current setuptools.

tensorflow_hub 0.16.1 checks the TensorFlow version at import time with
`pkg_resources.parse_version`, and setuptools 81+ no longer ships
`pkg_resources`, so a plain `import tensorflow_hub` fails in a fresh
environment. When `pkg_resources` is missing, a stand-in that provides only
`parse_version` (from `packaging`, which TensorFlow depends on) is installed
for the duration of the import and removed again, so no other library ever
sees the stand-in.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any


def _import_hub() -> Any:
    if importlib.util.find_spec("pkg_resources") is not None:
        import tensorflow_hub

        return tensorflow_hub
    from packaging.version import parse as parse_version

    stand_in = types.ModuleType("pkg_resources")
    stand_in.parse_version = parse_version  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stand_in
    try:
        import tensorflow_hub
    finally:
        if sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]
    return tensorflow_hub


hub = _import_hub()
