"""``snapvault repair``: rebuild the index from the packs, and repair snapshots around lost data."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import click

from snapvault.cli import output
from snapvault.cli.common import Context
from snapvault.cli.exits import Outcome

if TYPE_CHECKING:
    from snapvault.maintenance.repair import SnapshotRepair


@click.group()
def repair() -> None:
    """Rebuild the index or repair snapshots."""


@repair.command("index")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def index_cmd(obj: Context, as_json: bool) -> None:
    """Rebuild the index from the pack headers.

    Packs whose header is missing, truncated or fails authentication are left out, each named
    on stderr; the index files that existed at the start are then replaced.
    """
    result = obj.open().repair_index()
    for name, reason in result.unreadable:
        output.warning(f"pack {name}: {reason}; left out of the index")
    if as_json:
        doc = dataclasses.asdict(result)
        doc["unreadable"] = [{"pack": name, "error": reason} for name, reason in result.unreadable]
        output.document(doc)
        return
    left_out = f", {len(result.unreadable)} unreadable packs left out" if result.unreadable else ""
    output.info(
        f"indexed {result.packs_indexed} packs ({result.blobs_indexed} blobs) in "
        f"{len(result.index_files_written)} new index files, removed {len(result.index_files_removed)} old ones"
        + left_out
    )


@repair.command("snapshots")
@click.option("--forget-broken", is_flag=True, help="Delete each damaged snapshot once its repaired copy is saved.")
@click.option("--dry-run", is_flag=True, help="Show what would be repaired; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def snapshots_cmd(obj: Context, forget_broken: bool, dry_run: bool, as_json: bool) -> Outcome:
    """Write repaired copies of snapshots that reference missing data.

    A file whose data is partly lost is cut at its last good chunk, one whose first chunk is
    lost is left out, as is a directory whose tree is lost; each is named on stderr and in the
    new snapshot's errors. The new snapshot is tagged "repaired"; the original stays unless
    --forget-broken.
    """
    result = obj.open().repair_snapshots(forget_broken=forget_broken, dry_run=dry_run)
    for sid, reason in result.unreadable:
        output.warning(f"snapshot {sid}: {reason}; not repaired")
    for s in result.snapshots:
        for p in s.paths:
            output.warning(f"snapshot {s.original_id[:8]}: {p.path}: {p.error}")
    if as_json:
        doc: dict[str, Any] = dataclasses.asdict(result)
        doc["time"] = result.time.isoformat()
        doc["unreadable"] = [{"snapshot": sid, "error": reason} for sid, reason in result.unreadable]
        output.document(doc)
    else:
        for s in result.snapshots:
            output.info(_line(s, dry_run))
        would = "would be " if dry_run else ""
        output.info(
            f"checked {result.snapshots_checked} snapshots: {len(result.snapshots)} damaged, "
            f"{sum(len(s.paths) for s in result.snapshots)} paths {would}truncated or removed"
            + (f", {len(result.unreadable)} unreadable" if result.unreadable else "")
            + ("; dry run, nothing written" if dry_run else "")
        )
    # An unreadable manifest could not be repaired: the same code as `snapshots` gives it.
    return Outcome.SNAPSHOTS_UNREADABLE if result.unreadable else Outcome.DONE


def _line(s: SnapshotRepair, dry_run: bool) -> str:
    """One snapshot's line: what became of it."""
    counts = ", ".join(
        f"{n} {action}" for action in ("truncated", "removed") if (n := sum(p.action == action for p in s.paths))
    )
    old = s.original_id[:8]
    if s.root_lost:
        what = f"snapshot {old}: root tree lost, nothing to restore"
    elif s.already_repaired:
        what = f"snapshot {old}: already repaired as {str(s.new_id)[:8]} ({counts})"
    elif dry_run:
        what = f"snapshot {old} would be repaired ({counts})"
    else:
        what = f"snapshot {old} repaired as {str(s.new_id)[:8]} ({counts})"
    return what + ("; original removed" if s.forgotten else "")
