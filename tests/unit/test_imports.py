"""The import graph of ``app/``: no cycles between packages, and a kernel that imports no feature.

Every import counts, wherever it sits: at the top of a module, inside a function (a "late"
import hides a cycle, it does not remove it) and under ``if TYPE_CHECKING:``. Each imported module
maps to a node: ``app.<package>`` for anything inside a package, ``app.<module>`` for a top-level
module (``app.factory``, ``app.container``, ``app.cli``, ``app.dev``, ``app.settings``, …).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

APP_ROOT = Path(__file__).resolve().parents[2] / "app"

# Cycles the project knows about and has scheduled for removal. Each entry is the exact set of
# packages of one strongly connected component; anything else that forms a cycle fails.

# What the kernel may import from app.
CORE_MAY_IMPORT = ("app.core", "app.settings")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(path: Path) -> list[tuple[str, int]]:
    return _imports_in(path.read_text(encoding="utf-8"), _module_name(path), is_package=_is_package(path))


def _imports_in(source: str, module: str, *, is_package: bool) -> list[tuple[str, int]]:
    """Every absolute module name ``source`` imports (relative imports resolved), with line numbers.

    ``from X import Y`` yields both X and X.Y: Y may be a submodule (``from app import container``).
    """
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):  # walks function bodies and TYPE_CHECKING blocks alike
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*")
    return found


def _node(module: str) -> str | None:
    """``app.chips.service`` → ``app.chips``; ``app.factory`` → ``app.factory``; non-app → None."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    top = parts[1]
    if (APP_ROOT / top).is_dir() or (APP_ROOT / f"{top}.py").is_file():
        return f"app.{top}"
    return None  # ``from app.x import Name`` also yields ``app.x.Name``: not a module


def _app_files() -> list[Path]:
    return sorted(p for p in APP_ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _graph() -> dict[str, dict[str, list[str]]]:
    """package → imported package → ["file:line", …] (the imports that make the edge)."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in _app_files():
        source = _node(_module_name(path))
        if source is None:
            continue  # app/__init__.py
        for module, line in _imports(path):
            target = _node(module)
            if target is None or target == source:
                continue
            where = f"{path.relative_to(APP_ROOT.parent)}:{line}"
            if where not in graph[source][target]:
                graph[source][target].append(where)
    return graph


def _strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[set[str]]:
    """Tarjan's algorithm; only components with more than one node (self-edges are dropped above)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _a_cycle(graph: dict[str, dict[str, list[str]]], component: set[str]) -> list[str]:
    """One concrete cycle through the component (start → … → start), for the failure message."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to start
        nxt = []
        for node in frontier:
            for succ in sorted(graph[node]):
                if succ not in component:
                    continue
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if succ not in parents:
                    parents[succ] = node
                    nxt.append(succ)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {component}")  # pragma: no cover


def _describe(graph: dict[str, dict[str, list[str]]], component: set[str]) -> str:
    cycle = _a_cycle(graph, component)
    lines = [" -> ".join(cycle) + f"  (component: {', '.join(sorted(component))})"]
    for a in sorted(component):
        for b in sorted(graph[a]):
            if b in component:
                lines.append(f"    {a} -> {b}: " + ", ".join(graph[a][b]))
    return "\n".join(lines)


def test_no_import_cycles_between_packages():
    graph = _graph()
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles between packages of app/:\n" + "\n".join(_describe(graph, c) for c in cycles)


def test_core_imports_no_feature():
    offending: dict[str, str] = {}
    for path in _app_files():
        if not _module_name(path).startswith("app.core"):
            continue
        for module, line in _imports(path):
            if _node(module) is None:
                continue
            if not any(module == allowed or module.startswith(allowed + ".") for allowed in CORE_MAY_IMPORT):
                offending.setdefault(f"{path.relative_to(APP_ROOT.parent)}:{line}", module)  # the module, not X.Name
    assert not offending, "app/core imports outside app.core and app.settings:\n" + "\n".join(
        f"{where} imports {module}" for where, module in offending.items()
    )


def test_the_checker_sees_late_and_type_checking_imports():
    # The checker itself: a TYPE_CHECKING import and a relative import inside a function both count.
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from app.users.service import X\n"
        "def f():\n    from ..instances import service\n"
        "    from app import container\n"
    )
    targets = {_node(m) for m, _ in _imports_in(source, "app.chips.probe", is_package=False)}
    assert targets >= {"app.users", "app.instances", "app.container"}


def test_no_feature_reads_another_features_queries():
    # design.md: a feature may call another feature's service, never its queries
    offending = []
    for path in _app_files():
        own = _node(_module_name(path))
        for target, line in _imports(path):
            parts = target.split(".")
            if len(parts) >= 3 and parts[2] == "queries" and _node(target) not in (own, None):
                offending.append(f"{path.relative_to(APP_ROOT.parent)}:{line} imports {target}")
    assert offending == [], "\n".join(offending)
