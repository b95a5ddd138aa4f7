"""The example uses snapvault's public API only: ``import snapvault`` and names of ``__all__``."""

from __future__ import annotations

import ast
from pathlib import Path

import snapvault as sv

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "service"
BENCH = Path(__file__).resolve().parents[2] / "bench" / "service_load.py"


def _uses(path: Path) -> tuple[set[str], set[str]]:
    """The snapvault modules ``path`` imports, and the attributes it reads of ``snapvault``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "snapvault":
                    modules.add(a.name)
                    aliases.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "snapvault":
            modules.add(f"{node.module}:{','.join(a.name for a in node.names)}")
    names = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
    }
    return modules, names


def test_the_service_and_its_benchmark_import_only_the_facade_and_use_only_public_names() -> None:
    files = [*sorted(SERVICE.glob("*.py")), BENCH]
    assert len(files) > 10
    used: set[str] = set()
    for path in files:
        modules, names = _uses(path)
        assert modules <= {"snapvault"}, (path.name, modules)
        used |= names
    assert used <= set(sv.__all__), sorted(used - set(sv.__all__))
    # The scan sees what the service relies on.
    assert {"Engine", "Restorer", "SnapshotFileSystem", "DRPlan", "forget", "JobStatus"} <= used
