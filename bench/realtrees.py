"""Real trees, side by side (bench/run.py): a copy of site-packages and a generated text tree.

For each tree, each repetition and each tool (interleaved, the order reversed every other
repetition), in a fresh copy of the tree and a fresh repository: first backup, unchanged
re-backup, the change set of bench/trees.py's ``apply_changes`` (3% of the files edited, 1%
deleted, 1% added; untimed), the changed backup, and a restore of that latest snapshot into an
empty directory (checked to hold as many files as the source). Once a repetition, before the
tools, ``cp -a`` of the same changed tree is timed as the disk's pace for it. Peak RSS of
every step; medians over repetitions.

- ``site-packages``: a copy of the running interpreter's ``purelib``, taken once a run (so
  that bytecode the harness itself writes there does not change the tree between tools);
- ``text``: 100,000 text files of 1-8 KiB from bench/trees.py, kept in the bench cache.

``limit`` shrinks both (a sample of that many site-packages files, a text tree of that many
files) for trying the harness.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scale import BenchTool, Runner, table
from trees import ChangeSet, apply_changes, copy_site_packages, listing, text_tree

REAL_TREES = ("site-packages", "text")
STEPS = ("first", "rebackup", "changed", "restore")
TEXT_FILES = 100_000
Du = Callable[[Path], int]


def _copy(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def _describe(tree: Path) -> tuple[int, int]:
    names = listing(tree)
    return len(names), sum((tree / n).lstat().st_size for n in names)


def prepare(name: str, cache: Path, work: Path, limit: int | None) -> tuple[Path, str]:
    """The tree ``name`` ready to copy from, and a line describing what it is."""
    if name == "site-packages":
        tree = Path(tempfile.mkdtemp(prefix="real-site-packages-", dir=work)) / "site-packages"
        copy_site_packages(tree, limit)
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        what = f"a copy of the bench environment's site-packages (Python {py}: sources, bytecode, shared libraries)"
    else:
        tree = text_tree(cache, limit or TEXT_FILES)
        what = "text files of 1-8 KiB (bench/trees.py, seeded): half in folders of 2,000, half six levels deep"
    files, size = _describe(tree)
    return tree, f"{files:,} files, {size / 2**20:,.0f} MiB: {what}"


def backup_steps(
    tool: BenchTool,
    repo: Path,
    src: Path,
    target: Path,
    change: Callable[[], object],
    names: tuple[str, str, str, str],
    *,
    run: Runner,
) -> dict[str, float | int]:
    """Time (and take the peak RSS of) the first backup of ``src`` into the initialised ``repo``,
    the unchanged re-backup, ``change()`` (untimed) and the changed backup, and the restore of
    that last snapshot into ``target`` (created here); ``names`` are the four steps' keys."""
    env = tool.env()
    out: dict[str, float | int] = {}
    for step, n in zip(names[:3], (1, 2, 3), strict=True):
        if n == 3:
            change()
        m = run(tool.backup(repo, src, n), env=env)
        out[step], out[f"{step}_rss"] = m.seconds, m.max_rss_kib
    target.mkdir()
    cmd, cwd = tool.restore(repo, target, 3)
    m = run(cmd, env=env, cwd=cwd)
    out[names[3]], out[f"{names[3]}_rss"] = m.seconds, m.max_rss_kib
    return out


def bench_real_tool(tool: BenchTool, tree: Path, work: Path, *, run: Runner, du: Du) -> dict[str, float | int]:
    """One repetition of every step for one tool, in a fresh copy of ``tree``."""
    base = Path(tempfile.mkdtemp(prefix=f"real-{tool.name}-", dir=work))
    src, repo, target = base / "src", base / "repo", base / "restore"
    _copy(tree, src)
    tool.init(repo)
    out = backup_steps(tool, repo, src, target, lambda: apply_changes(src), STEPS, run=run)
    want, got = len(listing(src)), len(listing(target))
    if want != got:
        raise RuntimeError(f"{tool.name} restored {got} files of {want}")
    out["repo_bytes"] = du(repo)
    shutil.rmtree(base)
    return out


def cp_reference(tree: Path, work: Path, *, run: Runner) -> tuple[float, ChangeSet]:
    """Seconds of ``cp -a`` of ``tree`` after the change set (the tree a restore writes), and
    what the change set changed."""
    base = Path(tempfile.mkdtemp(prefix="real-cp-", dir=work))
    _copy(tree, base / "src")
    changes = apply_changes(base / "src")
    m = run(["cp", "-a", str(base / "src"), str(base / "copy")])
    shutil.rmtree(base)
    return m.seconds, changes


def bench_real(
    name: str,
    tools: list[Any],
    cache: Path,
    work: Path,
    reps: int,
    *,
    run: Runner,
    du: Du,
    limit: int | None,
) -> dict[str, Any]:
    """The section of one real tree: ``reps`` interleaved repetitions of every tool."""
    tree, what = prepare(name, cache, work, limit)
    rows: dict[str, list[dict[str, float | int]]] = {t.name: [] for t in tools}
    cps = []
    changes = ChangeSet(0, 0, 0)
    for rep in range(reps):
        seconds, changes = cp_reference(tree, work, run=run)
        cps.append(seconds)
        for t in tools if rep % 2 == 0 else list(reversed(tools)):
            print(f"{name} rep {rep + 1}/{reps}: {t.name} ...", flush=True)
            rows[t.name].append(bench_real_tool(t, tree, work, run=run, du=du))
    if name == "site-packages":
        shutil.rmtree(tree.parent)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "reps": reps,
        "tree": what,
        "limit": limit,
        "changes": asdict(changes),
        "cp_a": statistics.median(cps),
        "cp_a_runs": cps,
        "medians": {t: {k: statistics.median(float(r[k]) for r in rs) for k in rs[0]} for t, rs in rows.items() if rs},
        "runs": rows,
    }


def render_real(results: dict[str, Any]) -> list[str]:
    """The markdown lines of the real-tree sections."""
    lines: list[str] = []
    for name, section in results.get("real", {}).items():
        tools = {t: dict(v) for t, v in section["medians"].items()}
        for v in tools.values():
            v["restore_cp"] = v["restore"] / section["cp_a"]
        ch, reps = section["changes"], section["reps"]
        lines += [
            "",
            f"## Real tree: {name}",
            "",
            f"{section['tree']}.",
            f"Measured {section['date']}; medians of {reps} repetitions, tools interleaved, a fresh copy of the",
            "tree and a fresh repository each time. The changed backup follows the change set of `bench/trees.py`:",
            f"{ch['edited']:,} files edited (a line inserted), {ch['deleted']:,} deleted, {ch['added']:,} text files",
            "added. Restore: that changed snapshot into an empty directory. `cp -a` of the same changed tree, once a",
            f"repetition between the tools' runs: {section['cp_a']:.2f} s (median).",
            "",
        ]
        secs, mib = (lambda v: f"{v:.2f}"), (lambda v: f"{v / 1024:.0f}")
        lines += table(
            tools,
            [
                ("first", "first backup (s)", secs),
                ("rebackup", "unchanged re-backup (s)", secs),
                ("changed", "changed backup (s)", secs),
                ("restore", "restore (s)", secs),
                ("restore_cp", "restore / `cp -a`", secs),
                ("first_rss", "first backup peak RSS (MiB)", mib),
                ("rebackup_rss", "re-backup peak RSS (MiB)", mib),
                ("changed_rss", "changed backup peak RSS (MiB)", mib),
                ("restore_rss", "restore peak RSS (MiB)", mib),
                ("repo_bytes", "repository size (MiB)", lambda v: f"{v / 2**20:.0f}"),
            ],
        )
    return lines
