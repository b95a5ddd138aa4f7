"""Restore planning: which tree entries to restore, what to write, and how to read it.

Pure: takes nodes and index locations, returns values. The restorer does the I/O, in the order
these plans give:

- :func:`select` walks the snapshot's trees into a :class:`PlannedDir` of what to restore.
- :func:`plan_writes` decides which files are written and which are further names of one
  (hardlinks), and the totals a restore's progress adds up to.
- :func:`plan_dir` groups one directory's files into reads: single-chunk files stored near
  each other in a pack share one ranged read (a :class:`SpanRead`); other files are read on
  their own (a :class:`FileRead`), their chunks grouped by :func:`plan_reads`.

The walk order of a restore is fixed, and everything here follows it: in each directory its
files in tree order, then its other entries, then each subdirectory the same way.

A directory whose tree cannot be read (its blob damaged, missing or malformed) is left out of
the plan and handed to the caller's ``unreadable`` callback, so a restore can go on with the
rest; a tree naming a path outside the target (:class:`UnsafePathError`) is an attack, not
damage, and always propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from snapvault.errors import IntegrityError, UnsafePathError
from snapvault.pipeline.index import BlobLocation
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.tree import MAX_DEPTH, Node, depth_error

__all__ = [
    "MAX_GAP",
    "MAX_SPAN",
    "DirRead",
    "FileRead",
    "PlannedDir",
    "ReadRun",
    "SpanRead",
    "Unlocated",
    "Unreadable",
    "WritePlan",
    "plan_dir",
    "plan_reads",
    "plan_writes",
    "select",
]

# Adjacent blobs are fetched in one ranged read up to this many bytes.
_MAX_RUN = 32 << 20
#: A span of small files is read in one request of at most this many bytes, and a gap of more
#: than ``MAX_GAP`` between neighbours starts a new span (reading it would waste more than a
#: second request costs).
MAX_SPAN = 16 << 20
MAX_GAP = 1 << 20


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
    A directory whose tree would lie deeper than :data:`MAX_DEPTH` is unreadable in the same
    way, with the error of :func:`~snapvault.pipeline.tree.depth_error`.
    """
    root = PlannedDir(None, "", [], [], [])
    made: list[tuple[PlannedDir, bool]] = []
    # An explicit stack of (directory, its children still to visit, restored whole): a
    # snapshot's depth is data and must not be a bound on Python's. The order is the
    # recursive walk's: a subdirectory is read and walked before its next sibling.
    stack: list[tuple[PlannedDir, Iterator[Node], bool]] = [(root, iter(root_nodes), flt.selects_all)]
    while stack:
        planned, children, force = stack[-1]
        for child in children:
            rel = planned.rel
            crel = f"{rel}/{child.name}" if rel else child.name
            is_dir = child.type == "dir"
            if flt.excluded(crel, is_dir):
                continue
            chosen = force or flt.included(crel, is_dir)
            if is_dir:
                assert child.subtree is not None
                try:
                    if len(stack) >= MAX_DEPTH:
                        raise depth_error(crel)
                    grandchildren = read_tree(child.subtree)
                except UnsafePathError:
                    raise
                except IntegrityError as e:
                    if unreadable is None:
                        raise
                    unreadable(child, crel, e)
                    continue
                sub = PlannedDir(child, crel, [], [], [])
                planned.dirs.append(sub)
                made.append((sub, chosen))
                stack.append((sub, iter(grandchildren), chosen))
                break
            if chosen:
                (planned.files if child.type == "file" else planned.others).append((child, crel))
        else:
            stack.pop()
    # Bottom up (children were made after their parents): a directory neither selected itself
    # nor holding anything selected is dropped.
    kept: set[int] = set()
    for d, chosen in reversed(made):
        if d.dirs:
            d.dirs = [c for c in d.dirs if id(c) in kept]
        if chosen or d.files or d.dirs or d.others:
            kept.add(id(d))
    if root.dirs:
        root.dirs = [c for c in root.dirs if id(c) in kept]
    return root


class ReadRun(NamedTuple):
    """One ranged read: ``length`` bytes of ``pack_id`` from ``offset``, holding these blobs.

    (A named tuple: a restore makes one per file at least.)
    """

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


# -- what is written: each file once, further names as hardlinks ------------------------------


@dataclass(frozen=True)
class WritePlan:
    """The files a restore writes for a plan, and the totals its progress adds up to.

    A file with more than one name (``links > 1`` and an inode) is written once, under the
    name the restore reaches first; each further name of the same ``(dev, inode)`` is made a
    hardlink of it after all files are written.

    Attributes
    ----------
    files, bytes : int
        Files written (a hardlinked file once) and the sum of their sizes.
    links : tuple of (str, str)
        ``(written, further)`` paths, in the order the restore reaches the further names.
    linked : frozenset of str
        The further names: restored as hardlinks, never written.
    """

    files: int
    bytes: int
    links: tuple[tuple[str, str], ...]
    linked: frozenset[str]


def plan_writes(plan: PlannedDir) -> WritePlan:
    """Decide which files of ``plan`` are written and which are hardlinks, in walk order."""
    files = nbytes = 0
    first: dict[tuple[int, int], str] = {}
    links: list[tuple[str, str]] = []
    # Depth first, as the restore walks: a directory's files, then its subdirectories in order.
    stack = [plan]
    while stack:
        d = stack.pop()
        for node, rel in d.files:
            if node.links > 1 and node.inode:
                key = (node.dev, node.inode)
                written = first.get(key)
                if written is not None:
                    links.append((written, rel))
                    continue
                first[key] = rel
            files += 1
            nbytes += node.size
        stack.extend(reversed(d.dirs))
    return WritePlan(files, nbytes, tuple(links), frozenset(dst for _, dst in links))


# -- how one directory's files are read --------------------------------------------------------


class FileRead(NamedTuple):
    """A file read on its own: its chunks (none, or more than one) in runs by :func:`plan_reads`."""

    node: Node
    rel: str


class Unlocated(NamedTuple):
    """A single-chunk file whose chunk the index does not hold: damaged before any read."""

    node: Node
    rel: str
    error: IntegrityError


class SpanRead(NamedTuple):
    """Single-chunk files stored near each other in one pack, read with one ranged read.

    ``files`` are ``(the file's own read, node, path)``, by offset in the pack; the span runs
    from the first file's offset to the end of the file that ends last.
    """

    pack_id: bytes
    offset: int
    length: int
    files: tuple[tuple[ReadRun, Node, str], ...]


DirRead = FileRead | Unlocated | SpanRead


def plan_dir(
    files: Sequence[tuple[Node, str]],
    locate: Callable[[bytes], BlobLocation],
    *,
    linked: frozenset[str] = frozenset(),
    max_span: int = MAX_SPAN,
    max_gap: int = MAX_GAP,
) -> list[DirRead]:
    """Plan the reads for one directory's files (each path in ``linked`` left out).

    Single-chunk files of one directory are usually stored side by side in one pack: they are
    grouped into spans, each read once for all its files (on an object store one request
    instead of one per file). A span holds files of one pack sorted by offset; a file joins the
    span before it when its chunk starts at most ``max_gap`` bytes after the span's end and the
    span stays within ``max_span`` bytes (a single file may be longer).

    Returns, in order: a :class:`FileRead` or :class:`Unlocated` for each other file in the
    order given, then the spans, pack by pack in the order each pack first appears, each pack's
    spans by offset. ``locate`` raising :class:`IntegrityError` makes that file
    :class:`Unlocated`; it is called once per single-chunk file, never for the others.
    """
    reads: list[DirRead] = []
    by_pack: dict[bytes, list[tuple[ReadRun, Node, str]]] = {}
    for node, rel in files:
        if node.links > 1 and rel in linked:
            continue
        if len(node.content) != 1:
            reads.append(FileRead(node, rel))
            continue
        bid = bytes.fromhex(node.content[0])
        try:
            loc = locate(bid)
        except IntegrityError as e:
            reads.append(Unlocated(node, rel, e))
            continue
        run = ReadRun(loc.pack_id, loc.offset, loc.length, ((bid, loc),))
        by_pack.setdefault(loc.pack_id, []).append((run, node, rel))
    for pack_id, group in by_pack.items():
        reads.extend(_spans(pack_id, group, max_span, max_gap))
    return reads


def _spans(pack_id: bytes, group: list[tuple[ReadRun, Node, str]], max_span: int, max_gap: int) -> Iterator[SpanRead]:
    span: list[tuple[ReadRun, Node, str]] = []
    start = end = 0
    # Stable: files sharing one chunk (identical content) keep their order.
    for item in sorted(group, key=lambda x: x[0].offset):
        run = item[0]
        if span and run.offset - end <= max_gap and run.offset + run.length - start <= max_span:
            span.append(item)
            end = max(end, run.offset + run.length)
            continue
        if span:
            yield SpanRead(pack_id, start, end - start, tuple(span))
        span = [item]
        start, end = run.offset, run.offset + run.length
    if span:
        yield SpanRead(pack_id, start, end - start, tuple(span))
