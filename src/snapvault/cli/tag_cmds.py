"""CLI command ``tag``: change the tags of snapshots (each gets a new manifest)."""

from __future__ import annotations

import os
from typing import Any

import click

from snapvault.cli import output
from snapvault.cli.common import Context, fail


def _split(values: tuple[str, ...]) -> list[str]:
    # "a,b" is two tags, as in restic; an empty value (--set '') adds none.
    return [t for v in values for t in v.split(",") if t]


@click.command(name="tag")
@click.argument("snapshot_ids", nargs=-1, metavar="[SNAPSHOT]...")
@click.option("--add", multiple=True, help="Tag to add (a,b: both); repeatable.")
@click.option("--remove", multiple=True, help="Tag to remove (a,b: both); repeatable.")
@click.option("--set", "set_", multiple=True, help="Replace every tag with these (--set '' clears them).")
@click.option("--host", "hosts", multiple=True, help="Without IDs: only snapshots of this host; repeatable.")
@click.option("--tag", "tags", multiple=True, help="Without IDs: only snapshots with these tags (a,b: both).")
@click.option("--path", "paths", multiple=True, help="Without IDs: only snapshots holding this path; repeatable.")
@click.option("--policy", "policy_name", help="Without IDs: only snapshots made by this policy.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {old_id, new_id, tags}.")
@click.pass_obj
def tag(
    obj: Context,
    snapshot_ids: tuple[str, ...],
    add: tuple[str, ...],
    remove: tuple[str, ...],
    set_: tuple[str, ...],
    hosts: tuple[str, ...],
    tags: tuple[str, ...],
    paths: tuple[str, ...],
    policy_name: str | None,
    as_json: bool,
) -> None:
    """Add, remove or set the tags of SNAPSHOTs (IDs, prefixes or 'latest'); without IDs, of
    every snapshot --host/--tag/--path/--policy select.

    A snapshot is never edited: a new one with the new tags (and ``retagged_from``, its first
    ID) is saved, then the old one is deleted. Snapshots whose tags do not change are left as
    they are.
    """
    from snapvault.errors import ConfigError
    from snapvault.policy.selection import SnapshotFilter, find_snapshot, select

    if not (add or remove or set_):
        fail("give --add, --remove or --set")
    new_set = _split(set_) if set_ else None
    if new_set is not None and (add or remove):
        raise ConfigError("--set replaces every tag; it cannot be combined with --add or --remove")
    where = SnapshotFilter(hosts, tags, [os.path.abspath(p) for p in paths], policy_name)
    repo = obj.open()
    if snapshot_ids:
        targets = list({m.id: m for m in (find_snapshot(repo, ref, where) for ref in snapshot_ids)}.values())
    else:
        targets = select(repo.snapshots(), where)
    rows: list[dict[str, Any]] = []
    for m in targets:
        new = repo.tag(m, add=_split(add), remove=_split(remove), set=new_set)
        rows.append({"old_id": m.id, "new_id": new.id, "tags": list(new.tags), "changed": new.id != m.id})
        if new.id == m.id:
            output.info(f"snapshot {m.short_id}: tags unchanged ({','.join(new.tags) or '-'})")
        else:
            output.info(f"snapshot {m.short_id} -> {new.short_id}: tags {','.join(new.tags) or '-'}")
    if as_json:
        output.document(rows)
    elif not targets:
        output.info("no snapshot selected")
