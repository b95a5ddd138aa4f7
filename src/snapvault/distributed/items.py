"""What travels between the driver and the workers: files to read, directories to back up
whole, and what was found.

Every value here is plain data (named tuples of strings, integers, counters and tree nodes):
no filesystem, no repository, no secret. A task's arguments are a list of items; its result a
:class:`TaskOutcome`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from snapvault.archiver.walker import WalkStats
from snapvault.pipeline.tree import Node

__all__ = [
    "FileItem",
    "FileResult",
    "ObjectItem",
    "SubtreeItem",
    "SubtreeResult",
    "TaskOutcome",
    "file_ident",
    "object_ident",
]

#: What identifies the state of a local file the driver listed: size, times, inode, device.
LocalIdent = tuple[int, int, int, int, int]
#: The same for an object: size, modification time and its identity xattrs (ETag...).
ObjectIdent = tuple[int, int, tuple[tuple[str, str], ...]]


class FileItem(NamedTuple):
    """A local file to read: its path, the node the driver's walk made of it, the parent's."""

    path: str
    node: Node
    parent: Node | None


class ObjectItem(NamedTuple):
    """An object to read: its source URL (to open the filesystem), its path there, the URL
    that names it in errors, what the listing gave, and the parent snapshot's node."""

    source: str
    path: str
    url: str
    size: int
    mtime_ns: int
    xattrs: tuple[tuple[str, str], ...]
    parent: Node | None


def file_ident(node: Node) -> LocalIdent:
    """The identity of a listed local file, to match a worker's result to the final walk."""
    return (node.size, node.mtime_ns, node.ctime_ns, node.inode, node.dev)


def object_ident(size: int, mtime_ns: int, xattrs: tuple[tuple[str, str], ...]) -> ObjectIdent:
    """The identity of a listed object."""
    return (size, mtime_ns, xattrs)


class SubtreeItem(NamedTuple):
    """A directory of a local source that a worker backs up whole: its path, its path relative
    to its source (what exclude patterns match), its tree in the parent snapshot, and the
    (inode, device) the driver saw (to match the result to the final walk)."""

    path: str
    rel: str
    parent_tree: str | None
    ident: tuple[int, int]


class SubtreeResult(NamedTuple):
    """What a worker made of one :class:`SubtreeItem`.

    ``tree`` is the directory's tree ID (None when the walk left the directory out: unreadable,
    too deep, or its tree over the format's limit; ``stats`` then holds the error). ``stats``
    are the walk's counters below the directory (not the directory itself, which the driver
    counts). ``events`` are the ``on_file`` calls the walk made, in order, when the run has an
    ``on_file``; ``unread_bytes`` the bytes of the files taken from the parent unread.
    """

    path: str
    ident: tuple[int, int]
    tree: str | None
    stats: WalkStats
    events: tuple[tuple[str, int, bool], ...] = ()
    unread_bytes: int = 0


class FileResult(NamedTuple):
    """What a worker found for one file.

    ``content`` is None when the file could not be read (``error`` says why); ``unread`` is
    True when the parent's chunks were taken without reading; ``inconsistent`` when it changed
    while it was read. ``node`` (objects) is the node the worker made, which records the
    object as it was last read when it changed while being read.
    """

    key: str
    ident: LocalIdent | ObjectIdent
    content: tuple[str, ...] | None
    size: int
    error: str = ""
    unread: bool = False
    inconsistent: bool = False
    node: Node | None = None


@dataclass
class TaskOutcome:
    """One task's results, and what its reads and its sink added (the manifest's counters)."""

    results: list[FileResult] = field(default_factory=list)
    subtrees: list[SubtreeResult] = field(default_factory=list)
    bytes_read: int = 0
    rereads: int = 0
    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0
    packs_written: int = 0
