"""``snapvault prune``, and the report ``forget --prune`` shares with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from snapvault.cli.common import Context, fraction, prune_options, report

if TYPE_CHECKING:
    from snapvault.handle import Repository

__all__ = ["prune", "run_prune"]


def run_prune(repo: Repository, *, dry_run: bool, max_repack: str, max_unused: str, as_json: bool) -> None:
    """Prune ``repo`` with the command line's options and print the report."""
    from snapvault.cli.progress import bar

    repack, unused = fraction(max_repack, "--max-repack"), fraction(max_unused, "--max-unused")
    with bar("prune") as b:
        result = repo.prune(dry_run=dry_run, max_repack=repack, max_unused=unused, callback=b)
    report(result, as_json=as_json)


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be deleted and repacked; change nothing.")
@prune_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def prune(obj: Context, dry_run: bool, max_repack: str, max_unused: str, as_json: bool) -> None:
    """Delete the data no snapshot uses and repack the packs that are mostly unused.

    Safe while other machines back up: packs are first marked, and deleted only once no
    backup that could use them is still running (docs/design.md, "Prune").
    """
    run_prune(obj.open(), dry_run=dry_run, max_repack=max_repack, max_unused=max_unused, as_json=as_json)
