"""The scale section of bench/run.py: many small files, first backup and unchanged re-backup.

For each size (200,000 and 1,000,000 files by default) the tree of bench/trees.py's
``make_scale_tree`` comes from the cache (built there once), and each tool backs it up twice
into a fresh repository: the first backup, then the unchanged re-backup, with the peak RSS of
each. One repetition (a 1M-file backup takes minutes).

The results are kept per size, ``results["scales"]["1000000"] = {"date", "files", "tools"}``;
:func:`scales_of` also reads the single-size form of earlier runs (``"scale"`` and
``"scale_files"``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from trees import scale_tree


class Measured(Protocol):
    seconds: float
    max_rss_kib: int


Runner = Callable[..., Measured]


class BenchTool(Protocol):
    """What the runners need of bench/run.py's tools."""

    name: str

    def env(self) -> dict[str, str]: ...
    def init(self, repo: Path) -> None: ...
    def backup(self, repo: Path, src: Path, n: int) -> list[str]: ...
    def restore(self, repo: Path, target: Path, n: int) -> tuple[list[str], Path | None]: ...


PEERS = ("restic", "borg")


def bench_scale(tool: BenchTool, tree: Path, work: Path, *, run: Runner) -> dict[str, float | int]:
    """First backup and unchanged re-backup of ``tree`` by ``tool`` into a fresh repository."""
    base = Path(tempfile.mkdtemp(prefix=f"scale-{tool.name}-", dir=work))
    repo = base / "repo"
    tool.init(repo)
    env = tool.env()
    # A tool that starts processes of its own has its memory summed over them.
    tree_rss = bool(getattr(tool, "tree_rss", False))
    first = run(tool.backup(repo, tree, 1), env=env, tree=tree_rss)
    again = run(tool.backup(repo, tree, 2), env=env, tree=tree_rss)
    shutil.rmtree(base)
    return {
        "first": first.seconds,
        "first_rss": first.max_rss_kib,
        "rebackup": again.seconds,
        "rebackup_rss": again.max_rss_kib,
    }


def warm(tree: Path) -> int:
    """Read every file of ``tree`` once (its bytes, inodes and directories into the page cache),
    so that the first tool measured does not pay for a cold cache the others then find warm;
    the bytes read."""
    total = 0
    for folder, _dirs, names in os.walk(tree):
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    total += len(f.read())
    return total


def bench_scale_size(tools: list[Any], files: int, cache: Path, work: Path, *, run: Runner) -> dict[str, Any]:
    """The scale rows of one size: the cached tree, read once to warm the cache, then each tool
    in turn."""
    tree = scale_tree(cache, files)
    warm(tree)
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "files": files, "tools": {}}
    for t in tools:
        print(f"scale {files}: {t.name} ...", flush=True)
        out["tools"][t.name] = bench_scale(t, tree, work, run=run)
    return out


def scales_of(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scale sections of ``results`` by size, reading the single-size form of earlier runs."""
    if "scales" in results:
        return dict(results["scales"])
    if not results.get("scale"):
        return {}
    date = results.get("date", "?")
    for entry in results.get("carried", []):
        if str(entry).startswith("scale ("):
            date = str(entry)[len("scale (") : -1]
    files = int(results.get("scale_files") or 200_000)
    return {str(files): {"date": date, "files": files, "tools": results["scale"]}}


def faster_peer(values: dict[str, dict[str, float]], key: str) -> tuple[str, float] | None:
    """The peer with the smallest ``key`` among those measured, and that value."""
    have = [(p, float(values[p][key])) for p in PEERS if p in values and values[p].get(key)]
    return min(have, key=lambda pv: pv[1]) if have else None


def table(
    tools: dict[str, dict[str, float]], rows: list[tuple[str, str, Callable[[float], str]]], first: str = "measure"
) -> list[str]:
    """A markdown table: a row per ``(key, label, format)``, a column per tool, then the ratios
    of each snapvault configuration (``snapvault``, ``snapvault-p2``...) to each peer."""
    peers = [p for p in PEERS if p in tools]
    ours = [t for t in tools if t.startswith("snapvault")]
    pairs = [(o, p) for o in ours for p in peers]
    lines = [
        f"| {first} | " + " | ".join(tools) + " | " + " | ".join(f"{o}/{p}" for o, p in pairs) + " |",
        "|" + "---|" * (1 + len(tools) + len(pairs)),
    ]
    for key, label, fmt in rows:
        cells = [fmt(float(tools[t][key])) if key in tools[t] else "-" for t in tools]
        rat = [
            f"{tools[o][key] / tools[p][key]:.2f}" if tools[o].get(key) and tools[p].get(key) else "-" for o, p in pairs
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(rat) + " |")
    return lines


def per_file(kib: float, files: int) -> float:
    """Bytes of a peak RSS (in KiB) per file of the tree."""
    return kib * 1024 / files


def _wide(files: int) -> str:
    """How the scale tree's wide half is laid out (bench/trees.py, WIDE_MAX files a directory)."""
    half = files // 2
    if half <= 100_000:
        return "one wide directory"
    return f"{-(-half // 100_000)} wide directories of up to 100,000 files"


def _pooled_words(tools: dict[str, dict[str, float]]) -> list[str]:
    """What the ``snapvault-pN`` column is, when the section has one."""
    pooled = [t for t in tools if t.startswith("snapvault-p")]
    if not pooled:
        return []
    names = ", ".join(f"`{t}` is `snapvault backup --processes {t.removeprefix('snapvault-p')}`" for t in pooled)
    return [
        f"{names}: its peak RSS is the largest sum over its processes, sampled every 100 ms (the other",
        "tools run in one process; their peak is GNU time's).",
    ]


def render_scales(results: dict[str, Any]) -> list[str]:
    """The markdown lines of the scale sections, smallest tree first."""
    shared: dict[str, dict[str, float]] = results.get("medians", {})
    lines: list[str] = []
    for section in sorted(scales_of(results).values(), key=lambda v: int(v["files"])):
        n = int(section["files"])
        tools = {t: dict(v) for t, v in section["tools"].items()}
        for t, v in tools.items():
            v["rss_per_file"] = per_file(v["rebackup_rss"], n)
            if "rebackup_v1_rss" in shared.get(t, {}):
                # Above what the tool needs for the 7,736-file v1 re-backup: the cost of each
                # further file, without the interpreter or binary that any tree pays for.
                v["rss_per_file_marginal"] = per_file(v["rebackup_rss"] - shared[t]["rebackup_v1_rss"], n)
        lines += [
            "",
            f"## Scale: {n:,} small files (1-4 KiB; half in {_wide(n)}, half in chains of 40 directories)",
            "",
            f"Measured {section.get('date', '?')}, one run per tool, fresh repositories; the tree is generated once",
            "(seeded) and kept in the bench cache, and read once before the first tool runs.",
            *_pooled_words(tools),
            "",
        ]
        secs, mib, whole = (lambda v: f"{v:.2f}"), (lambda v: f"{v / 1024:.0f}"), (lambda v: f"{v:.0f}")
        rows = [
            ("first", "first backup (s)", secs),
            ("rebackup", "unchanged re-backup (s)", secs),
            ("first_rss", "first backup peak RSS (MiB)", mib),
            ("rebackup_rss", "re-backup peak RSS (MiB)", mib),
            ("rss_per_file", "re-backup peak RSS per file (bytes)", whole),
        ]
        if any("rss_per_file_marginal" in v for v in tools.values()):
            rows.append(("rss_per_file_marginal", "re-backup peak RSS per file above the v1 re-backup (bytes)", whole))
        lines += table(tools, rows)
    return lines
