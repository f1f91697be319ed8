"""tlpipe.models is the lowest layer: it works alone, without components or pipeline."""

import pkgutil
import subprocess
import sys

import pytest

import tlpipe.models

pytestmark = pytest.mark.quick


def test_every_models_module_imports_without_components_or_pipeline():
    modules = sorted(f"tlpipe.models.{info.name}" for info in pkgutil.iter_modules(tlpipe.models.__path__))
    code = "\n".join([
        "import importlib, sys",
        *(f"importlib.import_module({name!r})" for name in modules),
        "from tlpipe.models import build_transfer_model, two_phase_fit, export_for_serving",
        "higher = sorted(m for m in sys.modules if m.startswith(('tlpipe.components', 'tlpipe.pipeline')))",
        "print(len(higher), higher)",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert len(modules) > 10
    assert result.stdout.strip() == "0 []", result.stdout


def test_plumbing_needs_only_the_standard_library_and_itself():
    import ast
    import pathlib

    folder = pathlib.Path(tlpipe.models.__path__[0]) / "plumbing"
    imported = set()
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module)
    outside = sorted(name for name in imported
                     if not name.startswith("tlpipe.models.plumbing") and name.split(".")[0] not in sys.stdlib_module_names)
    assert len(list(folder.glob("*.py"))) >= 6 and "tlpipe.models.plumbing.errors" in imported
    assert outside == []
