"""The layout rules of docs/architecture.md that import-linter cannot state: every top-level module has a
layer, every data-pipeline module is covered by the named-datasets contract, no file or function outgrows
its budget, and no module imports itself back through a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (CI's); 3.10 users skip the layout checks

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fromzero"
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _contract(prefix: str) -> dict:
    return next(c for c in CONTRACTS if c["name"].startswith(prefix))


def _layered() -> set[str]:
    names = set()
    for layer in _contract("Layers")["layers"]:
        names.update(part.strip().strip("()") for part in layer.split("|"))
    return names


def test_every_top_level_module_has_a_layer() -> None:
    top = {f"fromzero.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    top |= {f"fromzero.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(top - _layered())
    assert not missing, f"add {missing} to the layers contract in pyproject.toml (and docs/architecture.md)"


def test_every_pipeline_module_is_kept_from_named_datasets() -> None:
    pipeline = {f"fromzero.data.{p.stem}" for p in (PACKAGE / "data").glob("*.py") if p.stem != "__init__"}
    listed = set(_contract("The data pipeline")["source_modules"])
    assert pipeline == listed, f"update the named-datasets contract: {sorted(pipeline ^ listed)}"


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_and_functions_stay_readable(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_FILE_LINES, f"{path} has {text.count(chr(10))} lines; split it by concept"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path}:{node.lineno} {node.name} is {length} lines"


def _module_imports() -> dict[str, set[str]]:
    """fromzero module -> the fromzero modules it imports (at any depth of the file, lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for path in SOURCES:
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fromzero"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("fromzero"))
        graph[name] = deps
    return graph


def test_no_import_cycles_between_modules() -> None:
    graph = _module_imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep not in graph or node.startswith(dep + ".") or dep == node:
                continue  # a package's own __init__ re-exporting its modules is not a cycle
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [node, dep]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if state.get(dep) is None:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(graph):
        if state.get(module) is None:
            visit(module, [module])
