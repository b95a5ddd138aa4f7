"""Walk local sources, build tree nodes, and feed file contents to the sink.

This module and the restorer are the only places that touch the local filesystem.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from snapvault.archiver.dirstate import OpenDir, ParentNodes
from snapvault.archiver.holes import file_pieces, may_have_holes
from snapvault.archiver.sink import BlobSink
from snapvault.pipeline.blob import MAX_TREE_BLOB
from snapvault.pipeline.chunker import ChunkerParams, StreamChunker
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.patterns import PathFilter, TagRule
from snapvault.pipeline.tree import MAX_DEPTH, MAX_OWNER_NAME, Node, depth_error, encode_tree
from snapvault.repository.manifest import FileError

__all__ = ["WalkStats", "Walker"]

_HAS_XATTR = hasattr(os, "listxattr")
# Opening with O_NONBLOCK means a file swapped for a FIFO between lstat and open cannot hang us.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass
class WalkStats:
    """Per-run counts collected by the walker (the counts named as in :class:`SnapshotStats`)."""

    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    dirs: int = 0
    other: int = 0
    total_bytes: int = 0
    bytes_read: int = 0
    errors: list[FileError] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    rereads: int = 0


def _xattrs(path: str) -> tuple[tuple[str, str], ...]:
    if not _HAS_XATTR:
        return ()
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in sorted(names):
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out.append((name, base64.b64encode(value).decode("ascii")))
    return tuple(out)


def _owner_name(lookup: Callable[[int], Any], ident: int) -> str:
    """The name this machine gives a user or group ID ("" when it has none)."""
    try:
        name = lookup(ident)[0]
    except (KeyError, OverflowError, OSError):
        return ""
    # A name the format cannot hold is recorded as unknown: the numeric ID still stands, and
    # a backup must not fail over what /etc/passwd or a directory service says.
    if not isinstance(name, str) or not name or "\0" in name:
        return ""
    try:
        if len(name.encode("utf-8", "surrogateescape")) > MAX_OWNER_NAME:
            return ""
    except UnicodeEncodeError:
        return ""
    return name


def _node_type(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    return None


class Cancelled(Exception):
    """Raised inside the walk when the caller cancels."""


class Walker:
    """Builds the trees of one backup.

    Parameters
    ----------
    sink : BlobSink
        Where blobs go.
    chunker : ChunkerParams
        How to cut files.
    read_parent : callable
        Returns the nodes of a parent tree by hex ID (used for the unchanged-file shortcut),
        in the tree's order; iterated once as the walk goes and again only for a directory
        that changed (``Repository.tree_nodes`` parses them from the blob each time).
    use_parent_shortcut : bool
        When False every file is read (a ``full`` backup).
    on_file : callable, optional
        Called as ``on_file(path, size, unchanged)`` after each regular file.
    consistency_retries : int, optional
        If set (``snapshot`` backups), a file whose size, mtime or ctime changed while it was
        read is read again up to this many times, then listed as inconsistent.
    progress : callable, optional
        Called with (bytes_just_read, current_path).
    should_stop : callable, optional
        Polled between files and chunks; when it returns True the walk raises Cancelled.
    tag_rules : tuple of TagRule
        A directory holding a file one of these names (``--exclude-if-present``,
        ``--exclude-caches``) is backed up with those tag files only, as restic does.
    larger_than : int, optional
        Regular files of more bytes than this are left out.
    one_file_system : bool
        Below a directory given to :meth:`directory`, entries on another file system (another
        ``st_dev``) are left out, except directories (mount points), which are recorded empty.
    """

    def __init__(
        self,
        sink: BlobSink,
        chunker: ChunkerParams,
        read_parent: Callable[[str], Iterable[Node]],
        *,
        use_parent_shortcut: bool = True,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        consistency_retries: int | None = None,
        on_file: Callable[[str, int, bool], None] | None = None,
        tag_rules: tuple[TagRule, ...] = (),
        larger_than: int | None = None,
        one_file_system: bool = False,
    ) -> None:
        self.sink = sink
        self.tag_rules = tag_rules
        self.larger_than = larger_than
        self.one_file_system = one_file_system
        self._empty_tree: str | None = None
        self.on_file = on_file
        self.consistency_retries = consistency_retries
        self.chunker = chunker
        self.read_parent = read_parent
        self.use_parent_shortcut = use_parent_shortcut
        self.progress = progress
        self.should_stop = should_stop
        self.stats = WalkStats()
        # Owner names by ID, looked up once per backup: a directory service lookup per file
        # would cost more than reading a small file.
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    # -- nodes ---------------------------------------------------------------------------

    def user_name(self, uid: int) -> str:
        """The user name of ``uid`` on this machine ("" when it has none), cached for the walk."""
        name = self._users.get(uid)
        if name is None:
            name = self._users[uid] = _owner_name(pwd.getpwuid, uid)
        return name

    def group_name(self, gid: int) -> str:
        """The group name of ``gid`` on this machine ("" when it has none), cached for the walk."""
        name = self._groups.get(gid)
        if name is None:
            name = self._groups[gid] = _owner_name(grp.getgrgid, gid)
        return name

    def stat_node(self, name: str, path: str, st: os.stat_result) -> Node | None:
        """Metadata-only node for ``path`` (no content, no subtree)."""
        ntype = _node_type(st.st_mode)
        if ntype is None:
            return None
        target = None
        if ntype == "symlink":
            target = os.fsdecode(os.readlink(path))
        return Node(
            name=name,
            type=ntype,  # type: ignore[arg-type]
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
            size=st.st_size if ntype == "file" else 0,
            inode=st.st_ino,
            dev=st.st_dev,
            links=st.st_nlink if ntype != "dir" else 1,
            target=target,
            rdev=st.st_rdev if ntype in ("chardev", "blockdev") else 0,
            xattrs=_xattrs(path),
            user=self.user_name(st.st_uid),
            group=self.group_name(st.st_gid),
        )

    def entry(self, name: str, path: str, rel: str, flt: PathFilter, parent: Node | None) -> Node | None:
        """Back up one path (a directory with everything below it) and return its node."""
        node = self._visit(name, path, parent)
        if node is None or node.type != "dir" or node.subtree is not None:
            return node
        parent_tree = parent.subtree if parent is not None and parent.type == "dir" else None
        subtree = self.directory(path, rel, flt, parent_tree)
        return None if subtree is None else node._replace(subtree=subtree)

    def _visit(self, name: str, path: str, parent: Node | None, dev: int | None = None) -> Node | None:
        """Back up one path, except a directory's children: a directory comes back without
        its subtree (a new one; the parent's node for an unchanged file). None when it is
        left out: unreadable, excluded by size, or not a directory and not on ``dev``."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled
        try:
            st = os.lstat(path)
            # Both rules are decided on the lstat already made: no extra system call per file.
            if dev is not None and st.st_dev != dev and not stat.S_ISDIR(st.st_mode):
                return None
            if self.larger_than is not None and st.st_size > self.larger_than and stat.S_ISREG(st.st_mode):
                return None
            # An unchanged file keeps the previous node whole, not a new copy of it. Its xattrs
            # are still read: an earlier run may have been refused some (trusted.* when not
            # root) without the ctime moving since.
            same = parent is not None and stat.S_ISREG(st.st_mode) and self._same_file(parent, st, path)
            node = None if same else self.stat_node(name, path, st)
        except OSError as e:
            self._error(path, e)
            return None
        if same:
            assert parent is not None
            self.stats.files_unchanged += 1
            self.stats.total_bytes += parent.size
            if self.on_file is not None:
                self.on_file(path, parent.size, True)
            return parent
        if node is None:
            return None
        if node.type == "dir":
            self.stats.dirs += 1
            return node
        if node.type == "file":
            content = self.file(path, node, parent)
            if content is None:
                return None
            return node._replace(content=content[0], size=content[1])
        if node.type != "symlink":
            self.stats.other += 1
        return node

    def directory(self, path: str, rel: str, flt: PathFilter, parent_tree: str | None) -> str | None:
        """Back up a directory and everything below it; store and return its tree's hex ID.

        Iterative, with an explicit stack of open directories: the depth of a source tree is
        the user's data and must not be a bound on Python's recursion. A directory whose tree
        would lie deeper than MAX_DEPTH (counted from the file system root, as the snapshot's
        root tree holds sources under their absolute paths) is an error for that path.
        """
        depth = _depth(path)
        if depth >= MAX_DEPTH:
            self.stats.errors.append(FileError(path=os.fsdecode(path), error=str(depth_error(path))))
            return None
        dev = None
        if self.one_file_system:
            try:
                dev = os.lstat(path).st_dev
            except OSError as e:
                self._error(path, e)
                return None
        top = self._open(path, rel, parent_tree, None, depth)
        if top is None:
            return None
        stack = [top]
        selects_all = flt.selects_all
        while stack:
            d = stack[-1]
            # The per-file loop: locals, not attributes (this is the backup's hot path).
            names, i, dpath, drel, take, emit, drop = d.names, d.i, d.path, d.rel, d.take, d.emit, d.drop
            while i < len(names):
                name = names[i]
                i += 1
                child = os.path.join(dpath, name)
                child_rel = f"{drel}/{name}" if drel else name
                if not selects_all:
                    try:
                        is_dir = stat.S_ISDIR(os.lstat(child).st_mode)
                    except OSError:
                        is_dir = False
                    if flt.excluded(child_rel, is_dir):
                        continue
                pnode = take(name)
                node = self._visit(os.fsdecode(name), child, pnode, dev)
                if node is None:
                    drop(pnode)
                    continue
                if node.type == "dir" and node.subtree is None:
                    if d.depth + 1 >= MAX_DEPTH:
                        self.stats.errors.append(FileError(path=os.fsdecode(child), error=str(depth_error(child))))
                        drop(pnode)
                        continue
                    if dev is not None and node.dev != dev:
                        # A mount point: recorded as an empty directory, as restic does, so a
                        # restore recreates the place to mount on.
                        emit(node._replace(subtree=self.empty_tree()), pnode)
                        continue
                    ptree = pnode.subtree if pnode is not None and pnode.type == "dir" else None
                    sub = self._open(child, child_rel, ptree, node, d.depth + 1, pnode)
                    if sub is not None:
                        d.i = i
                        stack.append(sub)
                        break
                    drop(pnode)
                    continue
                emit(node, pnode)
            else:
                stack.pop()
                tree = self._close(d)
                if not stack:
                    return tree
                assert d.node is not None
                if tree is not None:
                    stack[-1].emit(d.node._replace(subtree=tree), d.pnode)
                else:
                    stack[-1].drop(d.pnode)
        raise AssertionError("unreachable")  # pragma: no cover

    def _open(
        self, path: str, rel: str, parent_tree: str | None, node: Node | None, depth: int, pnode: Node | None = None
    ) -> OpenDir | None:
        """Start backing up a directory: list its names and open its parent's nodes."""
        try:
            with os.scandir(path) as it:
                names = sorted(e.name for e in it)
        except OSError as e:
            self._error(path, e)
            return None
        if self.tag_rules:
            tags = self._tags(path, names)
            if tags:
                names = tags
        parent = None
        if parent_tree is not None:
            try:
                parent = ParentNodes(self.read_parent(parent_tree))
            except Exception:  # noqa: BLE001 - a damaged parent only costs the shortcut
                parent = None
        return OpenDir(path, rel, node, depth, parent_tree, parent, names, pnode)

    def _tags(self, path: str, names: list[str]) -> list[str]:
        """The tag files among ``names`` that mark ``path`` as excluded (sorted; none: kept)."""
        present = set(names)
        found = {
            r.name for r in self.tag_rules if r.name in present and _starts_with(os.path.join(path, r.name), r.header)
        }
        return sorted(found)

    def empty_tree(self) -> str:
        """The hex ID of the empty tree (stored once per walk)."""
        if self._empty_tree is None:
            self._empty_tree = self.store_tree([])
        return self._empty_tree

    def _close(self, d: OpenDir) -> str | None:
        """Finish a directory whose children are all backed up: its tree's hex ID (None when
        its tree would be over the format's limit; the directory is then an error)."""
        parent_tree = d.parent_tree
        if d.finish() and parent_tree is not None and self.sink.has(bytes.fromhex(parent_tree)):
            # Nothing in this directory changed: its tree is the parent's, byte for byte
            # (encoding is canonical), so skip encoding and hashing it again.
            return parent_tree
        for gone in d.gone:
            self.stats.files_removed += self._count_files(gone)
        nodes = d.diverge()
        raw = encode_tree(nodes)
        if len(raw) > MAX_TREE_BLOB:
            error = (
                f"directory of {len(nodes)} entries left out: its tree would be {len(raw)} bytes, "
                f"over the format's limit of {MAX_TREE_BLOB} bytes for one directory"
            )
            self.stats.errors.append(FileError(path=os.fsdecode(d.path), error=error))
            return None
        bid, _ = self.sink.add(BlobType.TREE, raw)
        return bid.hex()

    def _count_files(self, node: Node) -> int:
        """How many files a parent node held (everything below it, for a directory)."""
        count = 0
        todo = [node]
        try:
            while todo:
                n = todo.pop()
                if n.type == "file":
                    count += 1
                elif n.type == "dir" and n.subtree is not None:
                    todo.extend(self.read_parent(n.subtree))
        except Exception:  # noqa: BLE001 - counts are informative; a damaged parent must not fail a backup
            return 0
        return count

    def store_tree(self, nodes: list[Node]) -> str:
        """Store a tree blob and return its hex ID."""
        bid, _ = self.sink.add(BlobType.TREE, encode_tree(nodes))
        return bid.hex()

    # -- files ---------------------------------------------------------------------------

    def _same_file(self, parent: Node, st: os.stat_result, path: str) -> bool:
        """Whether a regular file's inode is exactly as the parent snapshot recorded it."""
        return (
            self._content_unchanged(parent, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            and parent.dev == st.st_dev
            and parent.mode == stat.S_IMODE(st.st_mode)
            and parent.uid == st.st_uid
            and parent.gid == st.st_gid
            # A parent written before names were recorded, or an ID renamed since: a new node
            # (the content is still not read again).
            and parent.user == self.user_name(st.st_uid)
            and parent.group == self.group_name(st.st_gid)
            and parent.links == st.st_nlink
            and parent.xattrs == _xattrs(path)
        )

    def _content_unchanged(self, parent: Node, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> bool:
        """Whether the parent's chunks still describe the file: same size, times and inode, and
        every chunk still in the repository."""
        return (
            self.use_parent_shortcut
            and parent.type == "file"
            and parent.size == size
            and parent.mtime_ns == mtime_ns
            and parent.ctime_ns == ctime_ns
            and parent.inode == inode
            and all(self.sink.has(bytes.fromhex(c)) for c in parent.content)
        )

    def file(self, path: str, node: Node, parent: Node | None) -> tuple[tuple[str, ...], int] | None:
        """Return (chunk IDs, size) of a regular file, reading it only when needed.

        A file read again counts as unchanged when its content equals the parent's.
        """
        if parent is not None and self._content_unchanged(parent, node.size, node.mtime_ns, node.ctime_ns, node.inode):
            self.stats.files_unchanged += 1
            self.stats.total_bytes += parent.size
            if self.on_file is not None:
                self.on_file(path, parent.size, True)
            return parent.content, parent.size
        try:
            content = self._read_consistent(path, node)
        except OSError as e:
            self._error(path, e)
            return None
        if parent is None or parent.type != "file":
            self.stats.files_new += 1
        elif parent.content == content[0]:
            self.stats.files_unchanged += 1
        else:
            self.stats.files_changed += 1
        self.stats.total_bytes += content[1]
        if self.on_file is not None:
            self.on_file(path, content[1], False)
        return content

    def _read_consistent(self, path: str, node: Node) -> tuple[tuple[str, ...], int]:
        before = (node.size, node.mtime_ns, node.ctime_ns)
        tries = 0
        while True:
            ids, size, after = self._read(path, before[0])
            if self.consistency_retries is None or after == before:
                if after[0] > before[0]:
                    # It grew while it was read: what was stored stops at the size seen first.
                    self.stats.inconsistent.append(os.fsdecode(path))
                return ids, size
            if tries >= self.consistency_retries:
                self.stats.inconsistent.append(os.fsdecode(path))
                return ids, size
            tries += 1
            self.stats.rereads += 1
            before = after

    def _read(self, path: str, expected: int) -> tuple[tuple[str, ...], int, tuple[int, int, int]]:
        """Chunk and store a file; also return (size, mtime_ns, ctime_ns) after the read.

        At most ``expected`` bytes (the size lstat gave) are read, so a file that keeps
        growing (a log being written) cannot keep the backup reading it for ever.
        """
        fd = os.open(path, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{path} is no longer a regular file")
            min_size = self.chunker.min_size
            if expected < min_size:
                # Small files: one read of the size lstat gave (plus one byte, to see growth),
                # one chunk, no chunker set-up. Reading min_size bytes instead would allocate
                # and fault in a large buffer for every small file.
                data = os.read(fd, expected)
                self._count(len(data), path)
                ids = (self.sink.add(BlobType.DATA, data)[0].hex(),) if data else ()
                return ids, len(data), _identity(os.fstat(fd))
            chunk_ids: list[str] = []
            total = 0
            chunker = StreamChunker(self.chunker)
            add = self.sink.add
            # A hole is given as zeros, not read: the chunks are those of a plain read.
            for piece, read in file_pieces(fd, expected, holes=may_have_holes(st)):
                total += len(piece)
                self._count(len(piece), path, read=read)
                for chunk in chunker.feed(piece):
                    chunk_ids.append(add(BlobType.DATA, chunk)[0].hex())
                if self.should_stop is not None and self.should_stop():
                    raise Cancelled
            for chunk in chunker.finish():
                chunk_ids.append(add(BlobType.DATA, chunk)[0].hex())
            return tuple(chunk_ids), total, _identity(os.fstat(fd))
        finally:
            os.close(fd)

    def _count(self, n: int, path: str, *, read: bool = True) -> None:
        self.stats.bytes_read += n if read else 0  # zeros for a hole are progress, not reads
        if self.progress is not None:
            self.progress(n, path)

    def _error(self, path: str, e: OSError) -> None:
        self.stats.errors.append(FileError(path=os.fsdecode(path), error=e.strerror or str(e)))


def _starts_with(path: str, header: bytes) -> bool:
    """Whether the tag file ``path`` begins with ``header`` (any entry of that name when empty).

    A tag that cannot be read does not exclude its directory: leaving data out needs proof.
    """
    if not header:
        return True
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        got = b""
        while len(got) < len(header):
            more = os.read(fd, len(header) - len(got))
            if not more:
                break
            got += more
        return got == header
    except OSError:
        return False
    finally:
        os.close(fd)


def _depth(path: str) -> int:
    """Components in an absolute path ("/" has none)."""
    inner = path.strip("/")
    return inner.count("/") + 1 if inner else 0


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns
