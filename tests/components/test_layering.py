"""The layers: models <- components <- pipeline. No module imports a layer above its own, not even lazily
inside a function (read from the source, so imports that run only on some paths are checked too)."""

import ast
import pathlib

import pytest

pytestmark = pytest.mark.quick

ROOT = pathlib.Path(__file__).resolve().parents[2]
# package folder -> the tlpipe packages its modules must not import
FORBIDDEN = {"models": ("tlpipe.components", "tlpipe.pipeline"), "components": ("tlpipe.pipeline",)}


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_higher_layer(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert len(modules) > 10
    violations = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                  for path in modules for line, name in _imports(path)
                  if name.startswith(FORBIDDEN[package])]
    assert violations == []


def test_the_check_sees_lazy_imports(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from tlpipe.pipeline.config import load_config\n    import tlpipe.pipeline.cli\n")
    assert _imports(module) == [(2, "tlpipe.pipeline.config"), (3, "tlpipe.pipeline.cli")]


def _component_graph() -> dict[str, set[str]]:
    """Component package -> the sibling component packages its modules import."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "components").glob("*/*.py")):
        package = path.parent.name
        for _, name in _imports(path):
            parts = name.split(".")
            if name.startswith("tlpipe.components.") and len(parts) > 3 and parts[2] != package:
                graph.setdefault(package, set()).add(parts[2])
    return graph


def test_sibling_components_import_each_other_in_one_direction_only():
    graph = _component_graph()
    assert "evaluator" in graph.get("pusher", set())  # the pusher reads the evaluator's blessing

    def cycle_from(start: str, path: list[str]) -> list[str]:
        for following in sorted(graph.get(path[-1], ())):
            if following == start:
                return [*path, start]
            if following not in path:
                found = cycle_from(start, [*path, following])
                if found:
                    return found
        return []

    cycles = [cycle_from(package, [package]) for package in sorted(graph)]
    assert [cycle for cycle in cycles if cycle] == []


def test_no_module_imports_another_modules_private_names():
    private = []
    for package in ("models", "components", "pipeline"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tlpipe."):
                    private += [f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{alias.name}"
                                for alias in node.names if alias.name.startswith("_")]
    assert private == []
