"""The package's import structure: no module imports itself back, and no layer imports a layer
above it (ARCHITECTURE.md, "What may import what"). Lazy imports inside functions count too: a
circle that only closes at run time still ties the modules together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clipsieve"

# Lowest first. A module may import its own layer (without circles) and the layers below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "errors", "redact", "registry", "table", "runfolder", "vectors", "runlock",
            "storage", "stage", "labels", "version",
        ),
    ),
    ("media and models", ("media", "models")),
    ("executors and the step runner", ("engine", "steps")),
    ("ingest and detection", ("ingest", "shots")),
    ("scoring", ("score",)),
    ("captions", ("caption",)),
    ("classification", ("classify",)),
    ("selection", ("select",)),
    ("labelling page", ("annotate",)),
    ("training-set export", ("export",)),
    ("evaluation", ("evaluate",)),
    ("report", ("report",)),
    ("threshold explorer", ("explore",)),
    ("the run", ("config", "pipeline", "pipeline_run", "recipe", "recipes", "demo", "api", "data")),
    ("command line", ("cli", "__main__")),
    ("test helpers", ("testing",)),
]  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module → the clipsieve modules it imports anywhere (top level or inside functions)."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                found = resolve(target) if target.startswith("clipsieve") else None
                if found and found != name:
                    graph[name].add(found)
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    if not top:
        return len(LAYERS) - 2  # the package root is the public API facade (lazy imports)
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(
        f"{module} belongs to no layer: add its package to LAYERS and ARCHITECTURE.md"
    )


def test_every_package_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_no_import_circle() -> None:
    graph = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_no_layer_imports_a_layer_above_it() -> None:
    graph = _imports(_modules())
    upward = [
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
        for a, targets in sorted(graph.items())
        for b in sorted(targets)
        if _layer(b) > _layer(a)
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("package", ["cli", "testing"])
def test_nothing_below_imports_the_top(package: str) -> None:
    """The command line and the test helpers are leaves: no runtime module needs them."""
    graph = _imports(_modules())
    users = [
        a
        for a, targets in graph.items()
        if not a.startswith((f"clipsieve.{package}", "clipsieve.__main__"))
        and any(t.startswith(f"clipsieve.{package}") for t in targets)
    ]
    assert not users, users
