"""CLI commands that look into snapshots without restoring: ``diff`` and ``find``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from snapvault.cli import output
from snapvault.cli.common import Context, filter_options, json_list, mtime_utc, node_json, parse_time

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
        output.document(result.to_json())
        return
    for c in result.changes:
        slash = "/" if c.type == "dir" else ""
        click.echo(f"{_MARKS[c.kind]}    {c.path}{slash}")
    click.echo(_summary(result.stats))


def _match_json(m: FindMatch) -> dict[str, Any]:
    return {"snapshot_id": m.snapshot_id, "short_id": m.short_id, **node_json(m.path, m.node)}


@click.command()
@click.argument("pattern")
@click.option(
    "--snapshot", "-s", "snapshot_ids", multiple=True, metavar="ID", help="Search this snapshot only; repeatable."
)
@filter_options
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
    low = None if newer is None else parse_time(newer, option="'--newer'", date_means_end=False)
    high = None if older is None else parse_time(older, option="'--older'", date_means_end=False)
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
        json_list(_match_json(m) for m in matches)
        return
    for m in matches:
        stamp = mtime_utc(m.node.mtime_ns).isoformat(timespec="seconds")
        click.echo(f"{m.short_id}  {m.path}  {m.node.size}  {stamp}")
