"""The layer rules of ``src/metrana``, over every import (lazy ones inside functions too):

- the lower layers (identity, errors, config, enums, files, logging, retry, ring, session,
  storage, proto) never import the writer, the dispatcher, the server, the CLI, the test
  helpers or the framework integrations;
- the dispatcher never imports the writer;
- no two modules import each other, directly or through others (no import cycles).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import metrana

PACKAGE = Path(metrana.__file__).parent
LOWER = (
    "_identity",
    "_errors",
    "_config",
    "_config_parse",
    "_enums",
    "_files",
    "_logging",
    "_retry",
    "ring",
    "session",
    "storage",
    "proto",
)
UPPER = ("writer", "dispatcher", "server", "cli", "testing", "integrations")


def _module_name(path: Path) -> str:
    parts = ["metrana", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """The metrana modules ``path`` imports (``from .x import y`` counts as ``x``, or ``x.y``
    when that is a module)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("metrana"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if not source.startswith("metrana"):
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in MODULES else source)
    return found


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path, name) & set(MODULES) for name, path in MODULES.items()}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_lower_layers_never_import_the_upper_ones() -> None:
    broken = sorted(
        f"{module} imports {imported}"
        for module, imported_set in GRAPH.items()
        if _part(module) in LOWER
        for imported in imported_set
        if _part(imported) in UPPER
    )
    assert broken == []


def test_the_dispatcher_never_imports_the_writer() -> None:
    broken = sorted(
        f"{module} imports {imported}"
        for module, imported_set in GRAPH.items()
        if _part(module) == "dispatcher"
        for imported in imported_set
        if _part(imported) == "writer"
    )
    assert broken == []


@pytest.mark.slow
def test_there_is_no_import_cycle() -> None:
    """Tarjan's strongly connected components of the import graph: each has one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in GRAPH[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_graph_sees_lazy_imports() -> None:
    # (a check of the checker: make_target imports the HTTP target inside the function)
    assert "metrana.dispatcher.targets._http" in GRAPH["metrana.dispatcher.targets"]
