"""Comparing two snapshots: what was added, removed or changed between them.

Nouns:

- A *change* (:class:`DiffChange`) is one path and how it differs: ``added`` or ``removed``
  (the entry exists on one side only; every entry below an added or removed directory is a
  change of its own), ``modified`` (a file's chunks, a symlink's target or a device number
  differ), ``metadata`` (the content is the same, but mode, owner, mtime or extended
  attributes differ) or ``type`` (a file became a directory, ...). A directory is never
  ``modified``: its content is its entries, each listed for itself. ``ctime``, inode, device
  and link count are not compared: they change when a file is copied or linked, not when the
  user changed it.
- The *totals* (:class:`DiffStats`) count entries by type and the bytes of file content that
  appear and disappear, as far as the trees tell (file sizes, not stored blobs): a modified
  file counts its growth as added bytes and its shrinkage as removed ones, so
  ``bytes_added - bytes_removed`` is the change in the total size of the files.

Trees are content-addressed, so two directories with one tree ID are identical: such a
subtree is skipped without being read. The walk holds, per level, one directory's tree of each
snapshot and reads its nodes one at a time, in name order, merging the two lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, NamedTuple

from snapvault.maintenance.browse import TreeReader, _read_dir
from snapvault.pipeline.tree import MAX_DEPTH, Node, depth_error
from snapvault.repository.manifest import Manifest

__all__ = ["CHANGE_KINDS", "ChangeKind", "DiffChange", "DiffStats", "SnapshotDiff", "diff_snapshots"]

ChangeKind = Literal["added", "removed", "modified", "metadata", "type"]
#: Every kind of change, in the order of the module docstring.
CHANGE_KINDS: tuple[str, ...] = ("added", "removed", "modified", "metadata", "type")


@dataclass(frozen=True, slots=True)
class DiffChange:
    """One path that differs between two snapshots.

    Attributes
    ----------
    path : str
        The absolute path in the snapshots (``/home/me/docs/a.txt``).
    kind : str
        ``added``, ``removed``, ``modified``, ``metadata`` or ``type`` (module docstring).
    type : str
        The entry's node type in the second snapshot (in the first, for ``removed``).
    """

    path: str
    kind: ChangeKind
    type: str


@dataclass(frozen=True)
class DiffStats:
    """The totals of a diff (module docstring).

    An entry whose type changed counts as one of its old type removed and one of its new
    type added, besides ``type_changed``; so ``files_added - files_removed`` is the change in
    the number of files, and likewise for directories and other entries.

    Attributes
    ----------
    files_added, files_removed, dirs_added, dirs_removed, others_added, others_removed : int
        Entries that appear or disappear, by type (``others``: symlinks, devices, FIFOs, sockets).
    modified : int
        Entries whose content changed (``modified``).
    metadata_changed : int
        Entries whose metadata alone changed (``metadata``).
    type_changed : int
        Entries whose type changed (``type``).
    bytes_added, bytes_removed : int
        File bytes that appear and disappear, by the sizes the trees record.
    """

    files_added: int = 0
    files_removed: int = 0
    dirs_added: int = 0
    dirs_removed: int = 0
    others_added: int = 0
    others_removed: int = 0
    modified: int = 0
    metadata_changed: int = 0
    type_changed: int = 0
    bytes_added: int = 0
    bytes_removed: int = 0


@dataclass(frozen=True)
class SnapshotDiff:
    """How the snapshot ``after`` differs from ``before``.

    Attributes
    ----------
    before, after : str
        The two snapshots' IDs.
    changes : tuple of DiffChange
        Every change, sorted by path component by component (a directory comes right
        before the entries below it).
    stats : DiffStats
        The totals.
    """

    before: str
    after: str
    changes: tuple[DiffChange, ...]
    stats: DiffStats

    def to_json(self) -> dict[str, Any]:
        """``{"changes": [{"path", "kind", "type"}, ...], "summary": {totals}}``."""
        return {
            "changes": [{"path": c.path, "kind": c.kind, "type": c.type} for c in self.changes],
            "summary": asdict(self.stats),
        }


def diff_snapshots(repo: TreeReader, before: Manifest, after: Manifest) -> SnapshotDiff:
    """Compare two snapshots' trees; identical subtrees are skipped unread.

    Raises
    ------
    IntegrityError
        If a tree that differs cannot be read (naming its directory), or lies deeper than
        :data:`~snapvault.pipeline.tree.MAX_DEPTH`.
    """
    tally = _Tally()
    changes: list[DiffChange] = []
    if before.tree != after.tree:
        changes.extend(_walk(_merge(repo, before.tree, after.tree, "", tally)))
    return SnapshotDiff(before.id, after.id, tuple(changes), tally.freeze())


class _Descend(NamedTuple):
    """A frame asks the walk to list the changes below ``rel`` (from ``frame``) next."""

    rel: str
    frame: Iterator[DiffChange | _Descend]


_Frame = Iterator["DiffChange | _Descend"]


def _walk(root: _Frame) -> Iterator[DiffChange]:
    # An explicit stack: a snapshot's depth is data and must not be a bound on Python's.
    # A frame is suspended at the Descend it yields, so everything below a directory is
    # listed before the directory's next sibling.
    stack: list[_Frame] = [root]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, _Descend):
            if len(stack) >= MAX_DEPTH:
                raise depth_error(item.rel)
            stack.append(item.frame)
        else:
            yield item


def _nodes(repo: TreeReader, tree_id: str | None, rel: str) -> Iterator[Node]:
    # A directory without a tree (only a damaged snapshot has one) lists as empty.
    return iter(()) if tree_id is None else _read_dir(repo, tree_id, rel)


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _merge(repo: TreeReader, before: str | None, after: str | None, rel: str, tally: _Tally) -> _Frame:
    """The changes below directory ``rel``, whose trees differ."""
    old, new = _nodes(repo, before, rel), _nodes(repo, after, rel)
    a, b = next(old, None), next(new, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.name < b.name):
            assert a is not None
            yield from _one(repo, a, _join(rel, a.name), "removed", tally)
            a = next(old, None)
        elif a is None or b.name < a.name:
            yield from _one(repo, b, _join(rel, b.name), "added", tally)
            b = next(new, None)
        else:
            yield from _pair(repo, a, b, _join(rel, a.name), tally)
            a, b = next(old, None), next(new, None)


def _one(repo: TreeReader, node: Node, rel: str, kind: Literal["added", "removed"], tally: _Tally) -> _Frame:
    """An entry on one side only, and (through a Descend) every entry below it."""
    tally.count(node, kind)
    yield DiffChange(f"/{rel}", kind, node.type)
    if node.type == "dir":
        yield _Descend(rel, _side(repo, node.subtree, rel, kind, tally))


def _side(repo: TreeReader, tree_id: str | None, rel: str, kind: Literal["added", "removed"], tally: _Tally) -> _Frame:
    for node in _nodes(repo, tree_id, rel):
        yield from _one(repo, node, _join(rel, node.name), kind, tally)


def _content(n: Node) -> object:
    """What a ``modified`` compares; a directory's content is its entries, compared apart."""
    if n.type == "file":
        return (n.content, n.size)
    if n.type == "symlink":
        return n.target
    if n.type in ("chardev", "blockdev"):
        return n.rdev
    return None


def _metadata(n: Node) -> tuple[object, ...]:
    return (n.mode, n.uid, n.gid, n.user, n.group, n.mtime_ns, n.xattrs)


def _pair(repo: TreeReader, a: Node, b: Node, rel: str, tally: _Tally) -> _Frame:
    """One name on both sides."""
    path = f"/{rel}"
    if a.type != b.type:
        tally.n["type_changed"] += 1
        tally.count(a, "removed")
        tally.count(b, "added")
        yield DiffChange(path, "type", b.type)
        # At most one side is a directory: its entries went, or came, with it.
        if a.type == "dir":
            yield _Descend(rel, _side(repo, a.subtree, rel, "removed", tally))
        if b.type == "dir":
            yield _Descend(rel, _side(repo, b.subtree, rel, "added", tally))
        return
    if _content(a) != _content(b):
        tally.n["modified"] += 1
        if a.type == "file":
            grown = b.size - a.size
            tally.n["bytes_added"] += max(grown, 0)
            tally.n["bytes_removed"] += max(-grown, 0)
        yield DiffChange(path, "modified", b.type)
    elif _metadata(a) != _metadata(b):
        tally.n["metadata_changed"] += 1
        yield DiffChange(path, "metadata", b.type)
    if a.type == "dir" and a.subtree != b.subtree:
        yield _Descend(rel, _merge(repo, a.subtree, b.subtree, rel, tally))


class _Tally:
    """The totals while the walk runs, by :class:`DiffStats` field name."""

    def __init__(self) -> None:
        self.n = dict.fromkeys((f.name for f in fields(DiffStats)), 0)

    def count(self, node: Node, kind: Literal["added", "removed"]) -> None:
        group = "files" if node.type == "file" else "dirs" if node.type == "dir" else "others"
        self.n[f"{group}_{kind}"] += 1
        if node.type == "file":
            self.n[f"bytes_{kind}"] += node.size

    def freeze(self) -> DiffStats:
        return DiffStats(**self.n)
