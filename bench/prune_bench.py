"""Forget and prune, side by side: ten snapshots down to the latest two (``bench/run.py --only prune``).

For each tool, in a fresh repository and a fresh copy of the source: ten backups of one path
(v1, v2, then days 1-8 of bench/days.py applied in place), then, timed, what frees the space of
all but the latest two:

- snapvault: ``forget --prune --max-repack 100%`` (a stored policy with ``--keep-last 2``;
  restic repacks with no size limit by default, so the comparable run lifts snapvault's 10% per
  run), again with ``--max-unused 0%`` as well (the smallest repository a prune leaves), and
  once more at its defaults (``--max-repack 10%``), each a separate column;
- restic: ``forget --keep-last 2 --prune`` (its defaults: max-unused 5%, no repack limit);
- borg: ``prune --keep-last 2``, then ``compact`` (its defaults: segments with 10% or more to
  free are compacted).

Reported per tool: the wall time and peak RSS of those commands (summed and maxed for borg's
two), the repository size before and after, and the snapshots left (a check that every tool
kept the same two).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from days import DAYS, apply_day

#: snapvault's columns and the options of each: the comparable run, the run that leaves no
#: unused space, and the run at the library's defaults.
VARIANTS: dict[str, list[str]] = {
    "snapvault": ["--max-repack", "100%"],
    "snapvault-unused-0": ["--max-repack", "100%", "--max-unused", "0%"],
    "snapvault-defaults": ["--max-repack", "10%"],
}
#: Their headings in the table.
NAMES = {
    "snapvault": "snapvault",
    "snapvault-unused-0": "snapvault at 0% unused",
    "snapvault-defaults": "snapvault at 10%",
}
KEYS = ("prune", "prune_rss", "size_before", "size_after", "snapshots_left")


class Measured(Protocol):
    seconds: float
    max_rss_kib: int


Runner = Callable[..., Measured]


def _snapshots_left(tool: Any, repo: Path) -> int:
    env = {**os.environ, **tool.env()}
    if tool.name == "borg":
        out = subprocess.run(
            ["borg", "list", "--short", str(repo)], env=env, capture_output=True, text=True, check=True
        )
        return len(out.stdout.split())
    if tool.name == "restic":
        cmd = ["restic", "-q", "-r", str(repo), "snapshots", "--json"]
    else:
        cmd = [tool.binary, "-r", str(repo), "snapshots", "--json"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return len(json.loads(out.stdout))


def _prune_commands(tool: Any, repo: Path, options: list[str]) -> list[list[str]]:
    if tool.name == "snapvault":
        return [[tool.binary, "-r", str(repo), "forget", "--prune", *options]]
    if tool.name == "restic":
        return [["restic", "-q", "-r", str(repo), "forget", "--keep-last", "2", "--prune"]]
    return [["borg", "prune", "--keep-last", "2", str(repo)], ["borg", "compact", str(repo)]]


def _backup_command(tool: Any, repo: Path, src: Path, n: int) -> list[str]:
    if tool.name == "snapvault":
        # A policy run, so that forget applies the policy's retention (keep the last 2).
        return [tool.binary, "-r", str(repo), "run", "bench"]
    return list(tool.backup(repo, src, n))


def bench_prune(
    tool: Any,
    data: Path,
    work: Path,
    *,
    run: Runner,
    sync_tree: Callable[[Path, Path], None],
    du: Callable[[Path], int],
    options: list[str] | None = None,
) -> dict[str, float | int]:
    """One repetition for one tool: ten snapshots, then forget down to two and prune (timed).

    ``tool`` is one of bench/run.py's tools; ``run``, ``sync_tree`` and ``du`` are its helpers
    (passed in: this module is imported by run.py, not the other way round); ``options`` are
    snapvault's prune options (default: the comparable column's).
    """
    base = Path(tempfile.mkdtemp(prefix=f"prune-{tool.name}-", dir=work))
    src, repo = base / "src", base / "repo"
    shutil.copytree(data / "v1", src, symlinks=True)
    env = tool.env()
    tool.init(repo)
    if tool.name == "snapvault":
        run([tool.binary, "-r", str(repo), "policy", "add", "bench", "--source", str(src), "--keep-last", "2"], env=env)
    for n in range(1, DAYS + 3):
        if n == 2:
            sync_tree(data / "v2", src)
        elif n > 2:
            apply_day(src, n - 2)
        run(_backup_command(tool, repo, src, n), env=env)
    out: dict[str, float | int] = {"size_before": du(repo)}
    seconds, rss = 0.0, 0
    for cmd in _prune_commands(tool, repo, VARIANTS["snapvault"] if options is None else options):
        m = run(cmd, env=env)
        seconds += m.seconds
        rss = max(rss, m.max_rss_kib)
    out.update(prune=seconds, prune_rss=rss, size_after=du(repo), snapshots_left=_snapshots_left(tool, repo))
    shutil.rmtree(base)
    return out


def render_prune(section: dict[str, Any]) -> list[str]:
    """The markdown lines of the forget-and-prune section."""
    tools: dict[str, dict[str, float]] = section["medians"]
    peers = [t for t in ("restic", "borg") if t in tools]
    sv = tools.get("snapvault", {})
    names = NAMES
    lines = [
        "",
        "## Forget and prune: ten snapshots down to the latest two",
        "",
        f"Measured by `bench/run.py --only prune` on {section['machine']}, {section['date']}; medians of "
        f"{section['reps']} repetitions, tools interleaved, fresh repositories and source copies each time.",
        "Each tool backs up one source path ten times: v1, v2, then days 1-8 of `bench/days.py` applied in place",
        "(a day: 3% of the small files edited, 1% deleted, 1% added; 4 KiB inserted into `random.bin`, 1 MiB",
        "appended to `app.log`, 16 pages of `pages.db` rewritten, an 8 MiB file replacing the previous day's).",
        "Timed: `snapvault forget --prune --max-repack 100%` (policy `--keep-last 2`), `restic forget --keep-last 2",
        "--prune`, `borg prune --keep-last 2` then `borg compact` (both commands summed). `snapvault at 0% unused`",
        "adds `--max-unused 0%` (repack every pack holding unused data: the smallest repository a prune leaves);",
        "`snapvault at 10%` is `snapvault forget --prune` at its defaults (`--max-repack 10%`). Ratio columns are",
        "the first snapvault column's.",
        "",
    ]
    head = "| measure | " + " | ".join(names.get(t, t) for t in tools) + " | "
    lines += [
        head + " | ".join(f"snapvault/{p}" for p in peers) + " |",
        "|" + "---|" * (1 + len(tools) + len(peers)),
    ]
    rows: tuple[tuple[str, str, Callable[[float], str]], ...] = (
        ("prune", "forget + prune (s)", lambda v: f"{v:.2f}"),
        ("prune_rss", "forget + prune peak RSS (MiB)", lambda v: f"{v / 1024:.0f}"),
        ("size_before", "repository size before (MiB)", lambda v: f"{v / 2**20:.0f}"),
        ("size_after", "repository size after (MiB)", lambda v: f"{v / 2**20:.0f}"),
        ("snapshots_left", "snapshots left", lambda v: f"{v:.0f}"),
    )
    for key, label, fmt in rows:
        cells = [fmt(tools[t][key]) for t in tools]
        rat = [f"{sv[key] / tools[p][key]:.2f}" if sv.get(key) and tools[p][key] else "-" for p in peers]
        if key == "snapshots_left":
            rat = ["" for _ in peers]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(rat) + " |")
    return lines + _goal_lines(tools, peers)


def _goal_lines(tools: dict[str, dict[str, float]], peers: list[str]) -> list[str]:
    """Each snapvault column against the goals: prune time <= 0.5x the faster peer's, size
    after <= the smaller peer's."""
    if not peers:
        return []
    fast = min(peers, key=lambda p: tools[p]["prune"])
    small = min(peers, key=lambda p: tools[p]["size_after"])
    lines = [
        "",
        "Against the goals (time <= 0.5x the faster peer, size after <= the smaller peer):",
        "",
        "| column | time | size after | both met? |",
        "|---|---|---|---|",
    ]
    for name, m in tools.items():
        if name not in NAMES:
            continue
        t = m["prune"] / tools[fast]["prune"]
        z = m["size_after"] / tools[small]["size_after"]
        met = "yes" if t <= 0.5 and z <= 1.0 else "no"
        lines.append(
            f"| {NAMES[name]} | {t:.2f}x {fast} ({m['prune']:.2f} s against {tools[fast]['prune']:.2f}) "
            f"| {z:.3f}x {small} ({m['size_after'] / 2**20:.1f} MiB against "
            f"{tools[small]['size_after'] / 2**20:.1f}) | {met} |"
        )
    return lines
