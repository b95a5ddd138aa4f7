"""CLI commands that look into snapshots without restoring: ``diff`` and ``find``."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import click

from snapvault.cli.common import Context

if TYPE_CHECKING:
    from snapvault.maintenance.diff import DiffStats
    from snapvault.maintenance.find import FindMatch

#: restic's letters: + added, - removed, M content modified, U metadata updated, T type changed.
_MARKS = {"added": "+", "removed": "-", "modified": "M", "metadata": "U", "type": "T"}


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _summary(s: DiffStats) -> str:
    return (
        f"files: {s.files_added} new, {s.files_removed} removed; "
        f"dirs: {s.dirs_added} new, {s.dirs_removed} removed; "
        f"others: {s.others_added} new, {s.others_removed} removed; "
        f"modified: {s.modified}, metadata: {s.metadata_changed}, type: {s.type_changed}; "
        f"{_size(s.bytes_added)} added, {_size(s.bytes_removed)} removed"
    )


@click.command()
@click.argument("before", metavar="SNAPSHOT_A")
@click.argument("after", metavar="SNAPSHOT_B")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: changes and summary.")
@click.pass_obj
def diff(obj: Context, before: str, after: str, as_json: bool) -> None:
    """Show what changed from SNAPSHOT_A to SNAPSHOT_B (IDs, unique prefixes or 'latest').

    One line per path, as restic: '+' added, '-' removed, 'M' content modified, 'U' metadata
    (mode, owner, mtime, xattrs) changed, 'T' type changed; directories end with '/'. Then a
    summary line. Unchanged directories are skipped without being read.
    """
    repo = obj.open()
    result = repo.diff(before, after)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    for c in result.changes:
        slash = "/" if c.type == "dir" else ""
        click.echo(f"{_MARKS[c.kind]}    {c.path}{slash}")
    click.echo(_summary(result.stats))


def _time_bound(text: str | None, option: str) -> datetime | None:
    """``--newer``/``--older``: ISO 8601 with an offset (or Z) as given, without one in the
    local zone; a date (2026-03-01) is the start of that day, local time."""
    if text is None:
        return None
    try:
        try:
            # A naive datetime's astimezone() takes the local zone's offset on that date.
            return datetime.combine(date.fromisoformat(text), time.min).astimezone()
        except ValueError:
            when = datetime.fromisoformat(text)
        return when if when.utcoffset() is not None else when.astimezone()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (2026-03-01T12:00+01:00) or date (2026-03-01)", param_hint=option
        ) from None


def _mtime(ns: int) -> datetime:
    # Built from whole seconds: a float of nanoseconds since 1970 has lost the microseconds.
    return datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=ns // 1000 % 10**6)


def _match_json(m: FindMatch) -> dict[str, Any]:
    node = m.node
    return {
        "snapshot_id": m.snapshot_id,
        "short_id": m.short_id,
        "path": m.path,
        "type": node.type,
        "size": node.size,
        "mode": node.mode,
        "mtime": _mtime(node.mtime_ns).isoformat(),
        "mtime_ns": node.mtime_ns,
        "target": node.target,
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user or None,
        "group": node.group or None,
    }


@click.command()
@click.argument("pattern")
@click.option(
    "--snapshot", "-s", "snapshot_ids", multiple=True, metavar="ID", help="Search this snapshot only; repeatable."
)
@click.option("--host", "hosts", multiple=True, help="Only snapshots of this host; repeatable: any.")
@click.option("--tag", "tags", multiple=True, help="Only snapshots with these tags (a,b: both); repeatable.")
@click.option("--path", "paths", multiple=True, help="Only snapshots holding this path; repeatable: all.")
@click.option("--policy", "policy_name", help="Only snapshots made by this policy.")
@click.option(
    "--latest", type=click.IntRange(min=1), help="Only the N newest of each host and paths group (as restic's)."
)
@click.option("--ignore-case", "-i", is_flag=True, help="Match case-insensitively.")
@click.option("--newer", metavar="TIME", help="Only entries modified at or after TIME (ISO 8601; a date: its start).")
@click.option("--older", metavar="TIME", help="Only entries modified before TIME (ISO 8601; a date: its start).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of matches.")
@click.pass_obj
def find(
    obj: Context,
    pattern: str,
    snapshot_ids: tuple[str, ...],
    hosts: tuple[str, ...],
    tags: tuple[str, ...],
    paths: tuple[str, ...],
    policy_name: str | None,
    latest: int | None,
    ignore_case: bool,
    newer: str | None,
    older: str | None,
    as_json: bool,
) -> None:
    """Find entries whose name matches PATTERN in every snapshot (or those selected).

    PATTERN is a glob ('*.jpg'); with a '/' it matches the path: from the root if it starts
    with '/', else the path's last components ('docs/*.md'); '**' matches any number of
    directories, and a trailing '/' matches directories only. Lines read
    'ID  /path  size  mtime', snapshots oldest first.
    """
    low, high = _time_bound(newer, "'--newer'"), _time_bound(older, "'--older'")
    repo = obj.open()
    matches = repo.find(
        pattern,
        snapshots=snapshot_ids or None,
        hosts=hosts,
        tags=tags,
        paths=[os.path.abspath(p) for p in paths],
        policy=policy_name,
        latest=latest,
        ignore_case=ignore_case,
        newer=low,
        older=high,
    )
    if as_json:
        # Streamed, one match a line: matches across many snapshots are never held whole. The
        # first is found before anything is printed, as ls does, so an early error prints no JSON.
        first = next(matches, None)
        click.echo("[")
        if first is not None:
            click.echo(json.dumps(_match_json(first)), nl=False)
            for m in matches:
                click.echo(",\n" + json.dumps(_match_json(m)), nl=False)
            click.echo()
        click.echo("]")
        return
    for m in matches:
        stamp = _mtime(m.node.mtime_ns).isoformat(timespec="seconds")
        click.echo(f"{m.short_id}  {m.path}  {m.node.size}  {stamp}")
