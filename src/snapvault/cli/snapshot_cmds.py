"""CLI commands that make and read snapshots: ``backup``, ``snapshots``, ``restore``, ``ls``."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from snapvault.cli.common import Context, clear_progress, exclude_file_patterns, manifest_json, progress, report_backup
from snapvault.cli.exits import Outcome

if TYPE_CHECKING:
    from snapvault.pipeline.tree import Node


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--exclude", "-e", multiple=True, help="gitignore-style pattern; repeatable.")
@click.option(
    "--exclude-file", multiple=True, metavar="FILE", help="Read --exclude patterns from FILE, one a line; repeatable."
)
@click.option(
    "--exclude-if-present",
    multiple=True,
    metavar="NAME[:HEADER]",
    help="Back up a directory holding such a file with that file only; repeatable.",
)
@click.option("--exclude-caches", is_flag=True, help="The same for CACHEDIR.TAG files (bford.info/cachedir).")
@click.option(
    "--exclude-larger-than", metavar="SIZE", help="Leave out files larger than SIZE (K, M, G, T: 1024-based)."
)
@click.option("--one-file-system", "-x", is_flag=True, help="Do not cross file systems; mount points are kept empty.")
@click.option("--tag", multiple=True, help="Tag for the snapshot; repeatable.")
@click.option("--host", default=None, help="Host name to record.")
@click.option("--full", is_flag=True, help="Read every file; do not trust the parent snapshot.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def backup(
    obj: Context,
    paths: tuple[str, ...],
    exclude: tuple[str, ...],
    exclude_file: tuple[str, ...],
    exclude_if_present: tuple[str, ...],
    exclude_caches: bool,
    exclude_larger_than: str | None,
    one_file_system: bool,
    tag: tuple[str, ...],
    host: str | None,
    full: bool,
    as_json: bool,
) -> Outcome:
    """Back up PATHS into a new snapshot."""
    from snapvault import Engine

    patterns = [*exclude, *exclude_file_patterns(exclude_file)]
    repo = obj.open()
    tty = sys.stderr.isatty() and not as_json
    m = Engine(repo).backup(
        list(paths),
        exclude=patterns,
        exclude_if_present=exclude_if_present,
        exclude_caches=exclude_caches,
        exclude_larger_than=exclude_larger_than,
        one_file_system=one_file_system,
        tags=tag,
        hostname=host,
        full=full,
        progress=progress(tty),
    )
    clear_progress(tty)
    return report_backup(m, as_json)


def _filter_options(f: Any) -> Any:
    """--host, --tag, --path (repeatable) and --policy: which snapshots a command looks at."""
    for decorate in (
        click.option("--policy", "policy_name", help="Only snapshots made by this policy."),
        click.option("--path", "paths", multiple=True, help="Only snapshots holding this path; repeatable: all."),
        click.option("--tag", "tags", multiple=True, help="Only snapshots with these tags (a,b: both); repeatable."),
        click.option("--host", "hosts", multiple=True, help="Only snapshots of this host; repeatable: any."),
    ):
        f = decorate(f)
    return f


def _find(
    repo: Any, ref: str, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...], policy: str | None
) -> Any:
    """The snapshot ``ref`` names; ``latest`` is the newest the filters select."""
    from snapvault.policy.selection import SnapshotFilter, find_snapshot

    return find_snapshot(repo, ref, SnapshotFilter(hosts, tags, [os.path.abspath(p) for p in paths], policy))


def _point_in_time(text: str) -> datetime:
    """``--at``: an ISO 8601 time with an offset (or Z) as given; one without an offset in the
    local zone; a date (2026-03-01) as the end of that day in the local zone."""
    from datetime import date, time

    try:
        # A naive datetime's astimezone() takes the local zone's offset on that date (DST included).
        try:
            return datetime.combine(date.fromisoformat(text), time.max).astimezone()
        except ValueError:
            when = datetime.fromisoformat(text)
        return when if when.utcoffset() is not None else when.astimezone()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (2026-03-01T12:00+01:00) or date (2026-03-01)", param_hint="'--at'"
        ) from None


def _find_at(
    repo: Any, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...], policy: str | None, at: datetime
) -> Any:
    """The newest snapshot the filters select taken at or before ``at``."""
    from snapvault.errors import SnapshotNotFound
    from snapvault.policy.selection import SnapshotFilter, select

    where = SnapshotFilter(hosts, tags, [os.path.abspath(p) for p in paths], policy)
    chosen = [m for m in select(repo.snapshots(), where) if m.time <= at]
    if not chosen:
        which = "" if where.empty else " that matches the filters"
        raise SnapshotNotFound(f"no snapshot{which} at or before {at.isoformat()}")
    # Newest by time: the listing is oldest first, but a clock set back must not fool us.
    return max(reversed(chosen), key=lambda m: m.time)


@click.command()
@_filter_options
@click.option(
    "--latest", type=click.IntRange(min=1), help="Only the N newest of each host and paths group (as restic's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def snapshots(
    obj: Context,
    hosts: tuple[str, ...],
    tags: tuple[str, ...],
    paths: tuple[str, ...],
    policy_name: str | None,
    latest: int | None,
    as_json: bool,
) -> Outcome:
    """List snapshots, oldest first (one that cannot be read is named on stderr; exit code 1).

    --host, --tag, --path and --policy select; --latest N then keeps the N newest of each
    group of snapshots sharing host and paths.
    """
    from snapvault.policy.selection import SnapshotFilter, latest_per_group, select

    where = SnapshotFilter(hosts, tags, [os.path.abspath(p) for p in paths], policy_name)
    repo = obj.open()
    snaps = select(repo.snapshots(), where)
    if latest is not None:
        snaps = latest_per_group(snaps, latest)
    unreadable = repo.unreadable_snapshots()
    for sid, err in unreadable:
        click.echo(f"snapshot {sid}: error: cannot be read: {' '.join(str(err).split())}", err=True)
    outcome = Outcome.SNAPSHOTS_UNREADABLE if unreadable else Outcome.DONE
    if as_json:
        click.echo(json.dumps([manifest_json(m) for m in snaps], indent=2))
        return outcome
    click.echo(f"{'ID':<10}{'Time':<27}{'Host':<16}{'Tags':<16}Paths")
    for m in snaps:
        click.echo(
            f"{m.short_id:<10}{m.time.isoformat(timespec='seconds'):<27}{m.hostname[:15]:<16}"
            f"{','.join(m.tags)[:15]:<16}{' '.join(m.paths)}"
        )
    click.echo(f"{len(snaps)} snapshots")
    return outcome


@click.command()
@click.argument("snapshot", required=False)
@click.option(
    "--target", "-t", required=True, type=click.Path(file_okay=False), help="Local directory to restore into."
)
@click.option("--include", "-i", multiple=True, help="Restore only matching paths; repeatable.")
@click.option("--exclude", "-e", multiple=True, help="Leave out matching paths; repeatable.")
@click.option("--stop-on-error", is_flag=True, help="Stop at the first damaged file instead of restoring the rest.")
@click.option("--devices", is_flag=True, help="Make device nodes (as root); without it they are skipped.")
@click.option("--setuid", is_flag=True, help="Keep setuid and setgid bits; without it they are dropped.")
@click.option("--numeric-owner", is_flag=True, help="Keep the recorded user and group IDs; do not map them by name.")
@_filter_options
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help="Restore the newest selected snapshot taken at or before TIME: ISO 8601 with an offset "
    "(2026-03-01T12:00+01:00, ...Z), a local time without one, or a date (its end, local time).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def restore(
    obj: Context,
    snapshot: str | None,
    target: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    stop_on_error: bool,
    devices: bool,
    setuid: bool,
    numeric_owner: bool,
    hosts: tuple[str, ...],
    tags: tuple[str, ...],
    paths: tuple[str, ...],
    policy_name: str | None,
    at_text: str | None,
    as_json: bool,
) -> Outcome:
    """Restore SNAPSHOT (ID, unique prefix or 'latest') into --target.

    With --at TIME, SNAPSHOT is left out (or 'latest'): the newest snapshot that --host, --tag,
    --path and --policy select, taken at or before TIME, is restored.

    Damaged files are left out and listed, the rest is restored, and the exit code is 1.
    """
    from snapvault.restore.restorer import Restorer, local_target

    at = _point_in_time(at_text) if at_text is not None else None
    if at is None and snapshot is None:
        raise click.UsageError("Missing argument 'SNAPSHOT' (or give --at TIME).")
    if at is not None and snapshot not in (None, "latest"):
        raise click.UsageError("--at chooses the snapshot by time: give no SNAPSHOT, or 'latest'.")
    local_target(target)  # a URL is refused before anything is opened or asked for
    repo = obj.open()
    if at is not None:
        chosen = _find_at(repo, hosts, tags, paths, policy_name, at)
    else:
        assert snapshot is not None
        chosen = _find(repo, snapshot, hosts, tags, paths, policy_name)
    tty = sys.stderr.isatty() and not as_json
    r = Restorer(repo).restore(
        chosen,
        target,
        include=include,
        exclude=exclude,
        progress=progress(tty),
        stop_on_error=stop_on_error,
        devices=devices,
        setuid=setuid,
        numeric_owner=numeric_owner,
    )
    clear_progress(tty)
    if as_json:
        doc: dict[str, Any] = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
        doc["ok"] = r.ok
        doc["errors"] = [e.model_dump() for e in r.errors]
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(
            f"restored snapshot {r.snapshot_id[:8]} into {r.target}: {r.files} files, {r.dirs} dirs, "
            f"{r.symlinks} symlinks, {r.hardlinks} hardlinks, {r.bytes_written / 2**20:.1f} MiB"
        )
    for err in r.errors:
        click.echo(f"{'warning' if err.kind == 'skipped' else 'error'}: {err.path}: {err.error}", err=True)
    if r.devices_skipped:
        click.echo(f"warning: {r.devices_skipped} device nodes skipped (made as root with --devices)", err=True)
    if r.setuid_dropped:
        click.echo(
            f"warning: setuid/setgid bits dropped from {r.setuid_dropped} entries (kept with --setuid)", err=True
        )
    if r.ok:
        return Outcome.DONE
    lost = sum(1 for e in r.errors if e.kind != "skipped")
    click.echo(f"snapvault: error: {lost} paths could not be restored", err=True)
    return Outcome.PATHS_NOT_RESTORED


def _node_json(rel: str, node: Node) -> dict[str, Any]:
    from datetime import datetime

    ns = node.mtime_ns
    # Built from whole seconds: a float of nanoseconds since 1970 has lost the microseconds.
    mtime = datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=ns // 1000 % 10**6)
    return {
        "path": f"/{rel}",
        "type": node.type,
        "size": node.size,
        "mode": node.mode,
        "mtime": mtime.isoformat(),
        "mtime_ns": ns,
        "target": node.target,
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user or None,
        "group": node.group or None,
    }


@click.command(name="ls")
@click.argument("snapshot")
@click.argument("path", required=False, default="")
@click.option("--long", "-l", "long_", is_flag=True, help="Show type, mode, size and time.")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of entries.")
@click.pass_obj
def ls_cmd(
    obj: Context,
    snapshot: str,
    path: str,
    long_: bool,
    hosts: tuple[str, ...],
    tags: tuple[str, ...],
    paths: tuple[str, ...],
    policy_name: str | None,
    as_json: bool,
) -> None:
    """List the files of SNAPSHOT, optionally below PATH."""
    from snapvault.maintenance.browse import walk_snapshot

    repo = obj.open()
    m = _find(repo, snapshot, hosts, tags, paths, policy_name)
    entries = walk_snapshot(repo, m, path)
    if as_json:
        # Streamed, one entry a line: a snapshot of millions of files is never held whole. The
        # first entry is read before anything is printed, so a bad PATH prints no JSON.
        first = next(entries, None)
        click.echo("[")
        if first is not None:
            click.echo(json.dumps(_node_json(*first)), nl=False)
            for rel, node in entries:
                click.echo(",\n" + json.dumps(_node_json(rel, node)), nl=False)
            click.echo()
        click.echo("]")
        return
    for rel, node in entries:
        if long_:
            from datetime import datetime

            t = datetime.fromtimestamp(node.mtime_ns / 1e9, UTC).isoformat(timespec="seconds")
            extra = f" -> {node.target}" if node.target else ""
            click.echo(f"{node.type:<8} {node.mode:04o} {node.size:>12} {t} /{rel}{extra}")
        else:
            click.echo(f"/{rel}")
