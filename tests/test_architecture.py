"""The package's layers, enforced: imports point down, and no module imports itself back.

The graph is read from the source with ``ast``, so it includes imports inside functions and
under ``TYPE_CHECKING``: a cycle hidden there is still a cycle (it only moves the failure from
import time to run time). The map and the allowed directions are drawn in docs/design.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "snapvault"

# Lowest first. A module may import modules of its own layer or of a lower one; within the
# middle layers (archiver, restore, maintenance) only its own package and the sideways edges
# listed below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("snapvault.errors", "snapvault._version", "snapvault.jobs")),
    ("pipeline", ("snapvault.pipeline",)),
    ("storage", ("snapvault.storage",)),
    ("repository", ("snapvault.repository",)),
    ("archiver", ("snapvault.archiver",)),
    ("restore", ("snapvault.restore",)),
    ("maintenance", ("snapvault.maintenance",)),
    ("policy", ("snapvault.policy", "snapvault.dr.model", "snapvault.dr.records")),
    ("distributed", ("snapvault.distributed",)),
    ("engine", ("snapvault.engine", "snapvault.handle")),
    ("dr", ("snapvault.dr", "snapvault.snapfs")),
    ("facade", ("snapvault", "snapvault.retention", "snapvault.cron")),
    ("cli", ("snapvault.cli",)),
]
RANK = {
    "foundation": 0,
    "pipeline": 1,
    "storage": 2,
    "repository": 3,
    "archiver": 4,
    "restore": 4,
    "maintenance": 4,
    "policy": 5,
    "distributed": 5,
    "engine": 6,
    "dr": 7,
    "facade": 8,
    "cli": 9,
}
# Same-rank edges that are allowed: a copy writes the blobs it transfers through the
# archiver's sink (the one writer of packs).
SIDEWAYS = {("maintenance", "archiver")}
# What the pure pipeline may import from the standard library's I/O, clock and network side.
PIPELINE_FORBIDDEN = {"os", "fsspec", "time", "socket", "subprocess", "pathlib", "shutil"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every snapvault module and every top-level external package ``name`` imports, anywhere."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name if alias.name in modules else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("snapvault"):
                out.add(target.split(".")[0])
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in modules else target)
    out.discard(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> str:
    best = ""
    found = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, found = prefix, layer
    if found is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/design.md")
    return found


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_no_import_cycle() -> None:
    graph = {m: {d for d in deps if d.startswith("snapvault")} for m, deps in _graph().items()}
    # Iterative DFS with colours; report the first cycle found, as a path.
    colour: dict[str, int] = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        colour[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if nxt not in graph:
                continue
            if colour[nxt] == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if colour[nxt] == 0:
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))


def test_imports_point_down() -> None:
    bad = []
    for module, deps in sorted(_graph().items()):
        here = _layer(module)
        for dep in sorted(d for d in deps if d.startswith("snapvault")):
            there = _layer(dep)
            if there == here:
                continue
            if RANK[there] > RANK[here]:
                bad.append(f"{module} ({here}) imports {dep} ({there}), a higher layer")
            elif RANK[there] == RANK[here] and (here, there) not in SIDEWAYS:
                bad.append(f"{module} ({here}) imports {dep} ({there}), a sibling")
    assert not bad, "\n".join(bad)


def test_the_pipeline_is_pure() -> None:
    bad = []
    for module, deps in sorted(_graph().items()):
        if _layer(module) != "pipeline":
            continue
        for dep in sorted(deps):
            if dep in PIPELINE_FORBIDDEN:
                bad.append(f"{module} imports {dep}")
            elif dep.startswith("snapvault") and _layer(dep) not in ("pipeline",) and dep != "snapvault.errors":
                bad.append(f"{module} imports {dep}: the pipeline uses only itself and the errors")
    assert not bad, "\n".join(bad)


def test_the_graph_sees_hidden_imports(tmp_path: Path) -> None:
    """The reader finds imports in functions and under TYPE_CHECKING (what hid the old cycles)."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from snapvault.engine import Engine\n"
        "def f():\n    from snapvault.policy import run\n    import os\n"
    )
    modules = {"snapvault.engine": source, "snapvault.policy.run": source}
    found = _imports("snapvault.x", source, modules)
    assert {"snapvault.engine", "snapvault.policy.run", "os"} <= found
