"""CLI commands that make and read snapshots: ``backup``, ``snapshots``, ``restore``, ``ls``."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import click

from snapvault.cli import output
from snapvault.cli.common import (
    Context,
    exclude_file_patterns,
    filter_options,
    json_list,
    manifest_json,
    mtime_utc,
    node_json,
    parse_options,
    parse_time,
    report_backup,
)
from snapvault.cli.exits import Outcome

if TYPE_CHECKING:
    from snapvault.cli.progress_bar import Bar


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
@click.option(
    "--source-option", "source_option", multiple=True, metavar="KEY=VALUE", help="fsspec option of URL sources."
)
@click.option(
    "--dask-scheduler",
    metavar="ADDRESS",
    help="Run on the workers of this Dask cluster (tcp://host:8786; needs snapvault[dask]).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Back up local sources with this many processes (for many small files).",
)
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
    source_option: tuple[str, ...],
    dask_scheduler: str | None,
    processes: int,
    as_json: bool,
) -> Outcome:
    """Back up PATHS (local paths, or fsspec URLs of one protocol: s3://bucket/prefix) into a
    new snapshot."""
    from snapvault import Engine
    from snapvault.cli.progress import bar

    patterns = [*exclude, *exclude_file_patterns(exclude_file)]
    repo = obj.open()
    with _dask_client(dask_scheduler) as client, bar("backup") as b:
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
            source_options=parse_options(source_option) or None,
            callback=b,
            on_file=_file_done(b),
            executor=client,
            processes=processes,
        )
    return report_backup(m, as_json)


@contextlib.contextmanager
def _dask_client(address: str | None) -> Iterator[Any]:
    """A Dask client of the scheduler at ``address`` for the command's duration (None: none)."""
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise click.UsageError("--dask-scheduler needs Dask: python -m pip install 'snapvault[dask]'") from None
    # Any: distributed ships no types the strict check could rely on in every environment.
    client: Any = cast(Any, Client)(address)
    with client:
        yield client


def _file_done(b: Bar | None) -> Any:
    """The files done on the bar; with -v a line per file read (new or changed), with -vv per
    unchanged file as well. None when there is neither."""
    if b is None and output.verbosity() <= 0:
        return None

    def say(path: str, size: int, unchanged: bool) -> None:
        if b is not None:
            b.file_done(path)
        level = 2 if unchanged else 1
        if output.verbosity() >= level:
            with b.above() if b is not None else contextlib.nullcontext():
                output.detail(f"{'unchanged' if unchanged else 'read':<10} {path} ({size} bytes)", level)

    return say


def _find(
    repo: Any, ref: str, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...], policy: str | None
) -> Any:
    """The snapshot ``ref`` names; ``latest`` is the newest the filters select."""
    from snapvault.policy.selection import SnapshotFilter, find_snapshot

    return find_snapshot(repo, ref, SnapshotFilter(hosts, tags, [os.path.abspath(p) for p in paths], policy))


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
@filter_options
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
        output.error(f"cannot be read: {err}", subject=f"snapshot {sid}")
    outcome = Outcome.SNAPSHOTS_UNREADABLE if unreadable else Outcome.DONE
    if as_json:
        output.document([manifest_json(m) for m in snaps])
        return outcome
    click.echo(f"{'ID':<10}{'Time':<27}{'Host':<16}{'Tags':<16}Paths")
    for m in snaps:
        click.echo(
            f"{m.short_id:<10}{m.time.isoformat(timespec='seconds'):<27}{m.hostname[:15]:<16}"
            f"{','.join(m.tags)[:15]:<16}{' '.join(m.paths)}"
        )
    output.info(f"{len(snaps)} snapshots")
    return outcome


@click.command()
@click.argument("snapshot", required=False)
@click.option(
    "--target", "-t", required=True, help="Local directory, or any fsspec URL (s3://bucket/prefix), to restore into."
)
@click.option(
    "--target-option", "target_option", multiple=True, metavar="KEY=VALUE", help="fsspec option of a URL target."
)
@click.option("--include", "-i", multiple=True, help="Restore only matching paths; repeatable.")
@click.option("--exclude", "-e", multiple=True, help="Leave out matching paths; repeatable.")
@click.option("--stop-on-error", is_flag=True, help="Stop at the first damaged file instead of restoring the rest.")
@click.option("--devices", is_flag=True, help="Make device nodes (as root); without it they are skipped.")
@click.option("--setuid", is_flag=True, help="Keep setuid and setgid bits; without it they are dropped.")
@click.option("--numeric-owner", is_flag=True, help="Keep the recorded user and group IDs; do not map them by name.")
@click.option(
    "--sparse/--no-sparse",
    default=True,
    show_default=True,
    help="Leave runs of zeros as holes (sparse files come back sparse); --no-sparse writes every byte.",
)
@click.option(
    "--skip-existing/--no-skip-existing",
    default=True,
    show_default=True,
    help="Local target: skip files already there with the snapshot's size and mtime, so an interrupted "
    "restore resumes; --no-skip-existing writes every file again.",
)
@click.option(
    "--verify-existing",
    is_flag=True,
    help="Skip an existing file only when its content hashes to the snapshot's chunks (reads it), "
    "not on size and mtime alone.",
)
@click.option(
    "--dask-scheduler",
    metavar="ADDRESS",
    help="Run on the workers of this Dask cluster (tcp://host:8786; needs snapvault[dask]).",
)
@filter_options
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
    target_option: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    stop_on_error: bool,
    devices: bool,
    setuid: bool,
    numeric_owner: bool,
    sparse: bool,
    skip_existing: bool,
    verify_existing: bool,
    dask_scheduler: str | None,
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
    from snapvault.cli.progress import bar
    from snapvault.restore.restorer import Restorer, local_target

    at = None if at_text is None else parse_time(at_text, option="'--at'", date_means_end=True)
    if at is None and snapshot is None:
        raise click.UsageError("Missing argument 'SNAPSHOT' (or give --at TIME).")
    if at is not None and snapshot not in (None, "latest"):
        raise click.UsageError("--at chooses the snapshot by time: give no SNAPSHOT, or 'latest'.")
    options = parse_options(target_option)
    if local_target(target) is not None and options:
        raise click.UsageError("--target-option is for a URL target, not a local directory.")
    repo = obj.open()
    if at is not None:
        chosen = _find_at(repo, hosts, tags, paths, policy_name, at)
    else:
        assert snapshot is not None
        chosen = _find(repo, snapshot, hosts, tags, paths, policy_name)
    if dask_scheduler is not None and (include or stop_on_error or devices):
        raise click.UsageError("--dask-scheduler takes no --include, --stop-on-error or --devices.")
    with _dask_client(dask_scheduler) as client, bar("restore") as b:
        r = Restorer(repo).restore(
            chosen,
            target,
            include=include,
            exclude=exclude,
            callback=b,
            on_file=None if client is not None else _restored(b),
            executor=client,
            stop_on_error=stop_on_error,
            devices=devices,
            setuid=setuid,
            numeric_owner=numeric_owner,
            sparse=sparse,
            skip_existing=skip_existing or verify_existing,
            verify_existing=verify_existing,
            target_options=options or None,
        )
    if as_json:
        doc: dict[str, Any] = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
        doc["ok"] = r.ok
        doc["errors"] = [e.model_dump() for e in r.errors]
        output.document(doc)
    else:
        output.info(
            f"restored snapshot {r.snapshot_id[:8]} into {r.target}: {r.files} files, {r.dirs} dirs, "
            f"{r.symlinks} symlinks, {r.hardlinks} hardlinks, {r.bytes_written / 2**20:.1f} MiB"
            + (f", {r.files_skipped} files already there" if r.files_skipped else "")
        )
    for err in r.errors:
        (output.warning if err.kind == "skipped" else output.error)(f"{err.path}: {err.error}")
    if r.devices_skipped:
        output.warning(f"{r.devices_skipped} device nodes skipped (made as root with --devices)")
    if r.setuid_dropped:
        output.warning(f"setuid/setgid bits dropped from {r.setuid_dropped} entries (kept with --setuid)")
    if r.metadata_dropped:
        kinds = ", ".join(f"{kind} ({n})" for kind, n in sorted(r.metadata_dropped.items()))
        output.warning(f"the target cannot hold: {kinds}")
    if r.ok:
        return Outcome.DONE
    if not output.json_mode():
        lost = sum(1 for e in r.errors if e.kind != "skipped")
        click.echo(f"snapvault: error: {lost} paths could not be restored", err=True)
    return Outcome.PATHS_NOT_RESTORED


def _restored(b: Bar | None) -> Any:
    """The files done on the bar; with -v a line per file restored. None when there is neither."""
    if b is None and output.verbosity() <= 0:
        return None

    def say(path: str) -> None:
        if b is not None:
            b.file_done(path)
        if output.verbosity() > 0:
            with b.above() if b is not None else contextlib.nullcontext():
                output.detail(f"restored   {path}")

    return say


@click.command(name="ls")
@click.argument("snapshot")
@click.argument("path", required=False, default="")
@click.option("--long", "-l", "long_", is_flag=True, help="Show type, mode, size and time.")
@filter_options
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
        json_list(node_json(f"/{rel}", node) for rel, node in entries)
        return
    for rel, node in entries:
        if long_:
            t = mtime_utc(node.mtime_ns).isoformat(timespec="seconds")
            extra = f" -> {node.target}" if node.target else ""
            click.echo(f"{node.type:<8} {node.mode:04o} {node.size:>12} {t} /{rel}{extra}")
        else:
            click.echo(f"/{rel}")
