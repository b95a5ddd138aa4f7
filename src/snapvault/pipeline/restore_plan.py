"""Restore planning: which tree entries to restore, and how to read a file's blobs.

Pure: takes nodes and index locations, returns values. The restorer does the I/O.

A directory whose tree cannot be read (its blob damaged, missing or malformed) is left out of
the plan and handed to the caller's ``unreadable`` callback, so a restore can go on with the
rest; a tree naming a path outside the target (:class:`UnsafePathError`) is an attack, not
damage, and always propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from snapvault.errors import IntegrityError, UnsafePathError
from snapvault.pipeline.index import BlobLocation
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.tree import Node

__all__ = ["PlannedDir", "ReadRun", "Unreadable", "plan_reads", "select"]

# Adjacent blobs are fetched in one ranged read up to this many bytes.
_MAX_RUN = 32 << 20


@dataclass
class PlannedDir:
    """A directory to restore and the selected entries in it (children dirs are PlannedDir)."""

    node: Node | None  # None for the snapshot root
    rel: str
    files: list[tuple[Node, str]]
    dirs: list[PlannedDir]
    others: list[tuple[Node, str]]


Unreadable = Callable[[Node, str, IntegrityError], None]


def select(
    root_nodes: list[Node],
    read_tree: Callable[[str], list[Node]],
    flt: PathFilter,
    *,
    unreadable: Unreadable | None = None,
) -> PlannedDir:
    """Walk the snapshot's trees and keep what the filter selects.

    A directory is kept when it is selected itself (so it is restored whole, empty or not) or
    when something below it is.

    When ``read_tree`` raises :class:`IntegrityError` for a directory that is not excluded,
    ``unreadable(node, rel, error)`` is called and the directory is left out (nothing below
    it can be known, so it is reported even if only part of it would have been selected);
    without ``unreadable`` the error propagates. :class:`UnsafePathError` always propagates.
    """
    planned = _select_dir(None, "", root_nodes, read_tree, flt, flt.selects_all, unreadable)
    return planned if planned is not None else PlannedDir(None, "", [], [], [])


def _select_dir(
    node: Node | None,
    rel: str,
    children: list[Node],
    read_tree: Callable[[str], list[Node]],
    flt: PathFilter,
    force: bool,
    unreadable: Unreadable | None,
) -> PlannedDir | None:
    planned = PlannedDir(node, rel, [], [], [])
    for child in children:
        crel = f"{rel}/{child.name}" if rel else child.name
        is_dir = child.type == "dir"
        if flt.excluded(crel, is_dir):
            continue
        chosen = force or flt.included(crel, is_dir)
        if is_dir:
            assert child.subtree is not None
            try:
                grandchildren = read_tree(child.subtree)
            except UnsafePathError:
                raise
            except IntegrityError as e:
                if unreadable is None:
                    raise
                unreadable(child, crel, e)
                continue
            sub = _select_dir(child, crel, grandchildren, read_tree, flt, chosen, unreadable)
            if sub is not None:
                planned.dirs.append(sub)
        elif chosen:
            (planned.files if child.type == "file" else planned.others).append((child, crel))
    if force or planned.files or planned.dirs or planned.others:
        return planned
    return None


@dataclass(frozen=True)
class ReadRun:
    """One ranged read: ``length`` bytes of ``pack_id`` from ``offset``, holding these blobs."""

    pack_id: bytes
    offset: int
    length: int
    blobs: tuple[tuple[bytes, BlobLocation], ...]


def plan_reads(
    content: Sequence[bytes], locate: Callable[[bytes], BlobLocation], *, max_run: int = _MAX_RUN
) -> Iterator[ReadRun]:
    """Group a file's chunks, in order, into ranged reads of adjacent blobs in one pack, each
    at most ``max_run`` bytes unless a single blob is larger."""
    run: list[tuple[bytes, BlobLocation]] = []
    for bid in content:
        loc = locate(bid)
        if run:
            last = run[-1][1]
            start = run[0][1].offset
            if (
                loc.pack_id == last.pack_id
                and loc.offset == last.offset + last.length
                and loc.offset + loc.length - start <= max_run
            ):
                run.append((bid, loc))
                continue
            yield _run(run)
        run = [(bid, loc)]
    if run:
        yield _run(run)


def _run(run: list[tuple[bytes, BlobLocation]]) -> ReadRun:
    first, last = run[0][1], run[-1][1]
    return ReadRun(first.pack_id, first.offset, last.offset + last.length - first.offset, tuple(run))
