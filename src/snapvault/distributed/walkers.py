"""The driver's walkers: the archiver's own, with reading a file's bytes handed to workers.

A distributed backup walks its sources twice on the driver, with the archiver's walkers, so
that its trees are built by exactly the code a single-process backup uses (same nodes, same
order, same directories above the sources, same parent shortcuts), and so the same tree IDs:

1. The listing pass (``record`` given) stores nothing: each regular file the walk would read
   is handed to ``record`` (and batched into tasks) and gets a placeholder content; trees go
   to a :class:`ListingSink` that keeps nothing. Unchanged files are taken from the parent
   snapshot as always and never become work.
2. The final pass (``results`` given) takes each file's chunks from what the workers
   returned, matched by path and checked against what the listing saw; a file that changed
   in between is read here, on the driver. This pass stores the trees and yields the root.

Object sources are listed once: the final pass reuses the listing pass's listing.

A local source's walk can be split (:func:`explore`): the driver looks at the top of the
source breadth first and picks directories that workers back up whole. Both passes stop at
those directories: the listing pass hands each to ``delegate`` (batched into tasks) instead of
entering it, and the final pass takes the worker's tree ID for it and adds the worker's
counters where the directory lies in the walk. The archiver's nodes depend on nothing outside
their own file (a hardlink's node records its inode, device and link count; its content is
read under each name), so a directory's tree is the same whoever walks it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any, Protocol

from snapvault.archiver.fsspec_source import ObjectSource, ObjectWalker
from snapvault.archiver.walker import Cancelled, Walker, WalkStats
from snapvault.distributed.items import (
    FileItem,
    FileResult,
    ObjectItem,
    SubtreeItem,
    SubtreeResult,
    file_ident,
    object_ident,
)
from snapvault.errors import SourceError
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import Index
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.tree import Node
from snapvault.repository.manifest import FileError

__all__ = [
    "DeferringObjectWalker",
    "DeferringWalker",
    "ListingSink",
    "SubtreeResults",
    "account",
    "add_stats",
    "explore",
]

_NO_ID = bytes(32)


def explore(
    sources: Sequence[str],
    flt: PathFilter,
    want: int,
    max_depth: int,
    should_stop: Callable[[], bool] | None = None,
    *,
    wide: int | None = None,
) -> dict[str, str]:
    """The directories of local ``sources`` to hand to workers whole: path -> path relative to
    its source.

    Breadth first from the sources (together), one level at a time, until a level holds at
    least ``want`` directories or lies ``max_depth`` below the sources; a level with no
    directory ends it at the one above. Only directories are looked at (``scandir``'s entry
    types: no ``lstat`` per file on filesystems that report types); excluded ones are left
    out. The sources themselves are never handed out.

    With ``wide``, a directory passed on the way down that holds no directory but at least
    ``wide`` entries is handed out too: it cannot be split further, and left to the walk
    above it would keep all its files on the driver.
    """
    level = [(p, "") for p in sources if _is_dir(p)]
    chosen: list[tuple[str, str]] = []
    leaves: list[tuple[str, str]] = []
    for depth in range(max_depth):
        below: list[tuple[str, str]] = []
        for path, rel in level:
            if should_stop is not None and should_stop():
                raise Cancelled
            subdirs, entries = _subdirectories(path, rel, flt)
            # The sources themselves (depth 0) are never handed out.
            if depth and wide is not None and not subdirs and entries >= wide:
                leaves.append((path, rel))
            below.extend(subdirs)
        if not below:
            break
        chosen = level = below
        if len(chosen) >= want:
            break
    return dict(leaves + chosen)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _subdirectories(path: str, rel: str, flt: PathFilter) -> tuple[list[tuple[str, str]], int]:
    """The directories in ``path`` (not through symlinks), sorted, minus excluded ones, and
    how many entries it holds; none when it cannot be listed (the walk reports that)."""
    names = []
    entries = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                entries += 1
                if e.is_dir(follow_symlinks=False):
                    names.append(e.name)
    except OSError:
        return [], 0
    out = []
    for name in sorted(names):
        child_rel = f"{rel}/{name}" if rel else name
        if flt.selects_all or not flt.excluded(child_rel, True):
            out.append((os.path.join(path, name), child_rel))
    return out, entries


def add_stats(into: WalkStats, more: WalkStats) -> None:
    """Add a walk's counters (and its errors, after those already there) to another's."""
    for f in fields(WalkStats):
        value = getattr(more, f.name)
        if isinstance(value, list):
            getattr(into, f.name).extend(value)
        else:
            setattr(into, f.name, getattr(into, f.name) + value)


class ListingSink:
    """Stands in for the sink during the listing pass: answers what the index holds, stores nothing."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def has(self, bid: bytes) -> bool:
        """Whether the repository holds ``bid`` where a writer may reuse it."""
        return self._index.reusable(bid)

    def add(self, btype: BlobType, data: bytes | memoryview, bid: bytes | None = None) -> tuple[bytes, bool]:
        """Keep nothing; a placeholder ID (the listing pass's trees are thrown away)."""
        return _NO_ID, False


class _Listed:
    """A source's filesystem whose listing was made already: ``find`` gives it, everything
    else is the filesystem's own."""

    def __init__(self, fs: Any, listing: dict[str, Any]) -> None:
        self._fs = fs
        self._listing = listing

    def find(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._listing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


def account(
    stats: WalkStats, on_file: Callable[[str, int, bool], None] | None, r: FileResult, parent: Node | None
) -> tuple[tuple[str, ...], int] | None:
    """Count a worker's result as the archiver's walkers count a file they read themselves."""
    if r.content is None:
        stats.errors.append(FileError(path=r.key, error=r.error))
        return None
    if r.inconsistent:
        stats.inconsistent.append(r.key)
    if parent is None or parent.type != "file":
        stats.files_new += 1
    elif parent.content == r.content:
        stats.files_unchanged += 1
    else:
        stats.files_changed += 1
    stats.total_bytes += r.size
    if on_file is not None:
        on_file(r.key, r.size, r.unread)
    return r.content, r.size


class SubtreeResults(Protocol):
    """Workers' results by directory path, taken once each: a dict, or a view that waits for
    the task holding the directory (the local process pool's)."""

    def pop(self, key: str, default: None, /) -> SubtreeResult | None:
        """The result of the directory at ``key``, removed; ``default`` when none."""
        ...

    def __len__(self) -> int:
        """How many results are still to be taken."""
        ...


class DeferringWalker(Walker):
    """:class:`~snapvault.archiver.walker.Walker` whose file reads are the workers'.

    Parameters
    ----------
    results : dict
        Workers' results by path (consumed); empty for the listing pass.
    record : callable, optional
        The listing pass: called with each file to read instead of reading it.
    split : mapping, optional
        The listing pass of a split walk: directories (path -> path relative to its source)
        handed to ``delegate`` instead of being entered.
    delegate : callable, optional
        Called with each directory of ``split`` the walk reaches (on the source's file system).
    subtrees : dict or SubtreeResults, optional
        The final pass of a split walk: the workers' results by directory path (consumed).
    *args, **kwargs
        As for :class:`Walker`.
    """

    def __init__(
        self,
        *args: Any,
        results: dict[str, FileResult],
        record: Callable[[FileItem], None] | None = None,
        split: Mapping[str, str] | None = None,
        delegate: Callable[[SubtreeItem], None] | None = None,
        subtrees: SubtreeResults | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.results = results
        self.record = record
        self.split = split or {}
        self.delegate = delegate
        self.subtrees: SubtreeResults = {} if subtrees is None else subtrees

    def _visit(self, name: str, path: str, parent: Node | None, dev: int | None = None) -> Node | None:
        """The walker's visit; a directory a worker backs up whole comes back with its
        subtree (the worker's, or a placeholder while listing), so the walk does not enter it."""
        rel = self.split.get(path) if self.split else None
        done = self.subtrees.pop(path, None) if self.subtrees else None
        node = super()._visit(name, path, parent, dev)
        # A mount point below a one_file_system source stays the walker's (recorded empty).
        if node is None or node.type != "dir" or (dev is not None and node.dev != dev):
            return node
        if rel is not None and self.delegate is not None:
            ptree = parent.subtree if parent is not None and parent.type == "dir" else None
            self.delegate(SubtreeItem(path, rel, ptree, (node.inode, node.dev)))
            return node._replace(subtree=_NO_ID.hex())
        if done is None or done.ident != (node.inode, node.dev):
            # Not handed out, or another directory there now: walked here.
            return node
        add_stats(self.stats, done.stats)
        if self.on_file is not None:
            for path_, size, unchanged in done.events:
                self.on_file(path_, size, unchanged)
        # None: the worker's walk left it out (its error is among the counters just added).
        return None if done.tree is None else node._replace(subtree=done.tree)

    def file(self, path: str, node: Node, parent: Node | None) -> tuple[tuple[str, ...], int] | None:
        """A file's chunks: the worker's, or a placeholder while listing, or read here if it
        changed since it was listed."""
        r = self.results.pop(path, None)
        if r is not None and r.ident == file_ident(node):
            return account(self.stats, self.on_file, r, parent)
        if self.record is not None:
            self.record(FileItem(path, node, parent))
            return (), node.size
        return super().file(path, node, parent)


class DeferringObjectWalker(ObjectWalker):
    """:class:`~snapvault.archiver.fsspec_source.ObjectWalker` whose object reads are the workers'.

    Parameters
    ----------
    results, record
        As for :class:`DeferringWalker` (results by URL).
    listing : tuple, optional
        The listing pass's objects and listing errors (the final pass lists nothing again).
    lister : callable, optional
        Lists a source (path to info, as ``fs.find(path, detail=True)`` gives) in its stead,
        for example split across workers.
    *args, **kwargs
        As for :class:`ObjectWalker`.
    """

    def __init__(
        self,
        *args: Any,
        results: dict[str, FileResult],
        record: Callable[[ObjectItem], None] | None = None,
        listing: tuple[dict[tuple[str, ...], Any], list[FileError]] | None = None,
        lister: Callable[[ObjectSource], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.results = results
        self.record = record
        self.listing = listing
        self.lister = lister
        self._sources: Sequence[ObjectSource] = ()

    # The overrides below use the object walker's private steps (its listing, its check of an
    # unchanged object, its node of an object): the price of building trees with its code.

    def _list(self, sources: Sequence[ObjectSource], flt: PathFilter) -> dict[tuple[str, ...], Any]:
        self._sources = sources
        if self.listing is not None:
            objects, errors = self.listing
            self.stats.errors.extend(errors)
            return objects
        before = len(self.stats.errors)
        if self.lister is not None:
            sources = [s if s.is_file else replace(s, fs=_Listed(s.fs, self._listed(s))) for s in sources]
        objects = super()._list(sources, flt)
        self.listing = (objects, list(self.stats.errors[before:]))
        return objects

    def _listed(self, src: ObjectSource) -> dict[str, Any]:
        assert self.lister is not None
        try:
            return self.lister(src)
        except (OSError, ValueError) as e:
            raise SourceError(f"cannot list source {src.url}: {e}", path=src.url) from None

    def _files(self, entries: list[tuple[Any, Node | None]]) -> list[Node]:
        nodes: list[Node] = []
        here: list[tuple[Any, Node | None]] = []
        for obj, parent in entries:
            if self.should_stop is not None and self.should_stop():
                raise Cancelled
            same = self._unchanged(obj, parent)
            if same is not None:
                nodes.append(same)
                continue
            r = self.results.pop(obj.url, None)
            if r is not None and r.ident == object_ident(obj.size, obj.mtime_ns, obj.xattrs):
                got = account(self.stats, self.on_file, r, parent)
                if got is not None:
                    node = r.node if r.node is not None else self._node(obj)
                    nodes.append(node._replace(content=got[0], size=got[1]))
            elif self.record is not None:
                source = next(s.url for s in self._sources if obj.url == s.url or obj.url.startswith(s.url + "/"))
                self.record(ObjectItem(source, obj.path, obj.url, obj.size, obj.mtime_ns, obj.xattrs, parent))
                nodes.append(self._node(obj))
            else:
                here.append((obj, parent))
        if here:
            # No worker's result (its task was lost for good): read here, as a backup on one
            # machine would.
            nodes.extend(super()._files(here))
        return nodes
