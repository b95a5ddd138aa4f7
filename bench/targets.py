"""The "Against the targets" table of docs/benchmarks.md, computed from bench/results.json.

One row per target of the performance issue: the ratio measured (snapvault against the faster
of restic and borg unless the target names another), the goal, and whether it is met. Rows of
sections a run did not measure (and no earlier run left) say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scale import faster_peer, per_file, scales_of

Row = tuple[str, str, str, str, str]  # target, goal, measured, met, date
NOT_MEASURED = ("not measured", "-")


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _against_faster(
    tools: dict[str, dict[str, float]], key: str, unit: str = "s", who: str = "snapvault"
) -> tuple[float, str] | None:
    """``who``'s ``key`` (snapvault's, or a configuration's such as ``snapvault-p2``) over the
    faster peer's, and the words that say it."""
    peer = faster_peer(tools, key)
    sv = tools.get(who, {}).get(key)
    if peer is None or not sv:
        return None
    name, value = peer
    fmt: Callable[[float], str] = (lambda v: f"{v:.2f} s") if unit == "s" else (lambda v: f"{v / 1024:.0f} MiB")
    return sv / value, f"{sv / value:.2f}x {name} ({fmt(sv)} against {fmt(value)})"


def _time_row(
    label: str, tools: dict[str, dict[str, float]] | None, key: str, goal: float, date: str, who: str = "snapvault"
) -> Row:
    got = _against_faster(tools, key, who=who) if tools else None
    if got is None:
        return (label, f"<= {goal}x the faster peer", *NOT_MEASURED, date)
    return (label, f"<= {goal}x the faster peer", got[1], _met(got[0] <= goal), date)


def _rss_vs_borg(label: str, tools: dict[str, dict[str, float]] | None, key: str, date: str) -> Row:
    goal = "<= 1.0x borg"
    if not tools or not tools.get("snapvault", {}).get(key) or not tools.get("borg", {}).get(key):
        return (label, goal, *NOT_MEASURED, date)
    sv, borg = tools["snapvault"][key], tools["borg"][key]
    return (label, goal, f"{sv / borg:.2f}x ({sv / 1024:.0f} MiB against {borg / 1024:.0f})", _met(sv <= borg), date)


def _per_rep(runs: dict[str, list[dict[str, float]]] | None, cps: list[float] | None) -> str:
    """snapvault's restore over ``cp -a`` in each repetition (they run interleaved)."""
    if not runs or not cps or len(runs.get("snapvault", [])) != len(cps):
        return ""
    each = [r["restore"] / c for r, c in zip(runs["snapvault"], cps, strict=True)]
    return f"; per repetition {', '.join(f'{x:.2f}' for x in each)}"


def _restore_row(label: str, section: dict[str, Any] | None, cp_key: str, runs_key: str, date: str) -> Row:
    goal = "<= 0.7x the faster peer, <= 1.0x `cp -a`"
    tools = section.get("medians") if section else None
    got = _against_faster(tools, "restore") if tools else None
    cp = float(section.get(cp_key) or 0) if section else 0.0
    if got is None or not cp or section is None:
        return (label, goal, *NOT_MEASURED, date)
    sv = tools["snapvault"]["restore"]  # type: ignore[index]
    to_cp = sv / cp
    measured = f"{got[1]}; {to_cp:.2f}x `cp -a` ({cp:.2f} s){_per_rep(section.get('runs'), section.get(runs_key))}"
    return (label, goal, measured, _met(got[0] <= 0.7 and to_cp <= 1.0), date)


def _rss_per_file_row(scales: dict[str, dict[str, Any]]) -> Row:
    label, goal = "peak RSS per file at 1M files, re-backup", "<= 300 B, and <= borg's"
    section = scales.get("1000000")
    tools = section["tools"] if section else {}
    if "snapvault" not in tools:
        return (label, goal, *NOT_MEASURED, "-")
    n = int(section["files"])  # type: ignore[index]
    sv = per_file(tools["snapvault"]["rebackup_rss"], n)
    borg = per_file(tools["borg"]["rebackup_rss"], n) if "borg" in tools else None
    measured = f"{sv:.0f} B" + (f" (borg {borg:.0f} B, {sv / borg:.2f}x)" if borg else " (borg not measured)")
    return (label, goal, measured, _met(sv <= 300 and borg is not None and sv <= borg), section["date"])  # type: ignore[index]


def target_rows(results: dict[str, Any]) -> list[Row]:
    """Every target's row, in the order of the issue, then the real trees'."""
    scales = scales_of(results)
    s200, s1m = scales.get("200000", {}), scales.get("1000000", {})
    t200, d200 = s200.get("tools"), s200.get("date", "-")
    t1m, d1m = s1m.get("tools"), s1m.get("date", "-")
    shared: dict[str, dict[str, float]] | None = results.get("medians")
    date = str(results.get("date", "-"))
    check_goal = "keep (<= 0.5x was the earlier target)"
    check = _against_faster(shared, "check_read_data") if shared else None
    check_row: Row = (
        ("check --read-data", check_goal, *NOT_MEASURED, date)
        if check is None
        else ("check --read-data", check_goal, check[1], _met(check[0] <= 0.5), date)
    )
    shared_section = {
        "medians": shared,
        "cp_a_v1": results.get("cp_a_v1"),
        "cp_a_v1_runs": results.get("cp_a_v1_runs"),
        "runs": results.get("runs"),
    }
    rows: list[Row] = [
        _time_row("200k small files, first backup", t200, "first", 0.5, d200),
        _time_row("200k small files, unchanged re-backup", t200, "rebackup", 0.5, d200),
        _time_row("1,000,000 files, unchanged re-backup", t1m, "rebackup", 0.5, d1m),
        *_pooled_rows(t200, t1m, d200, d1m),
        _rss_per_file_row(scales),
        _time_row("shared datasets: v2 (changed) backup", shared, "backup_v2", 0.5, date),
        _rss_vs_borg("shared datasets: first backup peak RSS", shared, "backup_v1_rss", date),
        _restore_row("restore of the shared tree", shared_section, "cp_a_v1", "cp_a_v1_runs", date),
        check_row,
    ]
    for name, section in results.get("real", {}).items():
        tools, when = section["medians"], section["date"]
        rows += [
            _time_row(f"{name}: first backup", tools, "first", 0.5, when),
            _time_row(f"{name}: unchanged re-backup", tools, "rebackup", 0.5, when),
            _time_row(f"{name}: changed backup", tools, "changed", 0.5, when),
            _restore_row(f"{name}: restore", section, "cp_a", "cp_a_runs", when),
            _rss_vs_borg(f"{name}: first backup peak RSS", tools, "first_rss", when),
        ]
    return rows


def _pooled_rows(
    t200: dict[str, dict[str, float]] | None, t1m: dict[str, dict[str, float]] | None, d200: str, d1m: str
) -> list[Row]:
    """The first backups of the scale trees by ``backup --processes N`` (tools ``snapvault-pN``),
    where a run measured them."""
    rows: list[Row] = []
    for size, tools, when in (("200k small files", t200, d200), ("1,000,000 files", t1m, d1m)):
        for who in sorted(t for t in (tools or {}) if t.startswith("snapvault-p")):
            n = who.removeprefix("snapvault-p")
            rows.append(_time_row(f"{size}, first backup, `--processes {n}`", tools, "first", 0.5, when, who=who))
    return rows


def render_targets(results: dict[str, Any]) -> list[str]:
    """The markdown lines of the "Against the targets" table."""
    rows = target_rows(results)
    met = sum(r[3] == "met" for r in rows)
    measured = sum(r[3] != "-" for r in rows)
    return [
        "## Against the targets",
        "",
        "Computed from the measurements on this page: snapvault against the faster of restic and borg unless the",
        "goal names another. Restores against `cp -a` are medians of interleaved repetitions (`cp -a` once in each,",
        f"between the tools' runs). Each row's date is its section's. {met} of {measured} measured targets met.",
        "",
        "| target | goal | measured | met? | measured on |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]
