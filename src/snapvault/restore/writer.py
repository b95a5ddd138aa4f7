"""The confined writer: the one part of a restore that touches the target directory.

Confinement does not rely on checking path strings alone. Every name comes from a validated
tree (one component, not ``.`` or ``..``, no ``/`` or NUL), and every file system call is made
relative to an open directory descriptor with ``O_NOFOLLOW``: a symlink, whether restored
from the snapshot or already in the target, is never followed as a path component.

Every entry is made under a temporary name in its directory and renamed over its final name
only once it is complete, so a final name holds either what was there before or the entry as
stored, never a part of it.

A sparse writer leaves holes where a file holds runs of zeros: as each file is created empty,
a run it does not write reads as zeros, and ending the file with ``ftruncate`` gives it its
length. Snapshots do not record holes (a backup feeds a hole to the chunker as zeros), so a
file that had holes, like any file with long runs of zeros, comes back with them.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import grp
import itertools
import os
import pwd
import re
import stat
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from snapvault.errors import ConfigError, UnsafePathError
from snapvault.pipeline.restore_plan import PlannedDir
from snapvault.pipeline.tree import Node

__all__ = ["ENTRY_ERRNOS", "TEMP_PREFIX", "DirHandle", "NewFile", "TargetWriter", "data_spans", "local_target"]

#: Temporary names of entries being restored start with this.
TEMP_PREFIX = ".sv-restore-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# A URL's scheme, or a chain of them as fsspec writes it (``simplecache::s3://``).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(?:::[A-Za-z][A-Za-z0-9+.-]*)*://")

#: Attributes a backup of a URL source records for an object's identity in its store (ETag,
#: version, generation: docs/format.md, "Trees"); a restore does not set them on the file.
SOURCE_IDENTITY_XATTRS = "user.snapvault."


def local_target(target: str | os.PathLike[str]) -> str | None:
    """The local directory that a restore ``target`` names, or None for a URL.

    A target that starts with a URL scheme (``memory://x``, ``s3://bucket/p``,
    ``simplecache::s3://...``) is not taken as a relative path, which would make a folder
    ``memory:`` in the working directory: it gives None, and the restore writes through
    fsspec (:func:`snapvault.restore.fsspec_target.open_target`). ``file:///path`` and
    ``file://localhost/path`` name the local ``/path``. A path object is never a URL, and a
    local folder whose name looks like a URL can be given as ``./memory://x``.

    Raises
    ------
    ConfigError
        If ``target`` is a ``file://`` URL of another host.
    """
    text = os.fspath(target)
    m = _URL.match(text)
    if m is None:
        return text
    if m.group(0).lower() != "file://":
        return None
    host, slash, path = text[len("file://") :].partition("/")
    if slash and host.lower() in ("", "localhost"):
        from urllib.parse import unquote

        return "/" + unquote(path)
    raise ConfigError(f"restore target {text!r} is a file:// URL of another host: give a path, or file:///path")


class DirHandle:
    """An open directory of the target, shared by tasks; closed when the last user lets go."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._refs = 1
        self._lock = threading.Lock()

    def acquire(self) -> DirHandle:
        """Take another reference (for a task that will :meth:`release` it)."""
        with self._lock:
            self._refs += 1
        return self

    def release(self) -> None:
        """Let go of a reference; the last one closes the directory."""
        with self._lock:
            self._refs -= 1
            last = self._refs == 0
        if last:
            os.close(self.fd)


def _open_dir(parent_fd: int, name: str, create: bool, mode: int = 0o700) -> int:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=parent_fd)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(
                f"refusing to restore through {name!r}: it is not a plain directory", path=name
            ) from None
        raise


_tmp_counter = itertools.count()


def _temp_name() -> str:
    # Unique within this process; O_EXCL turns a clash with a stale file into an error, never
    # an overwrite. Drawing random bytes per file cost more than the file's own write.
    return f"{TEMP_PREFIX}{os.getpid()}-{next(_tmp_counter)}"


class NewFile:
    """A file being written under a temporary name, renamed over its final name on :meth:`commit`.

    Use it as a context manager: leaving the block without a commit (the file turned out
    damaged, the restore was stopped, or anything raised) removes the temporary file, so the
    final name keeps what it held before.
    """

    __slots__ = ("_committed", "_dfd", "_end", "_fd", "_pos", "_tmp", "_writer", "_zero_block")

    def __init__(self, writer: TargetWriter, dfd: int) -> None:
        self._writer = writer
        self._dfd = dfd
        self._tmp = _temp_name()
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
        self._committed = False
        # Sparse writing: the file's length so far, and the end of what was written of it.
        self._zero_block = writer.zero_block
        self._pos = self._end = 0

    def write(self, data: bytes | memoryview) -> None:
        """Append all of ``data``; a sparse writer skips its runs of zeros (:func:`data_spans`)."""
        if self._zero_block:
            self._write_sparse(data)
            return
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _write_sparse(self, data: bytes | memoryview) -> None:
        whole = data if isinstance(data, bytes) else bytes(data)
        view = memoryview(whole)
        for lo, hi in data_spans(whole, self._zero_block):
            part, offset = view[lo:hi], self._pos + lo
            while part:
                n = os.pwrite(self._fd, part, offset)
                part, offset = part[n:], offset + n
            self._end = self._pos + hi
        self._pos += len(whole)

    def commit(self, node: Node) -> None:
        """Give the file ``node``'s metadata (its mode without the bits the writer drops) and
        rename it to ``node.name``."""
        fd = self._fd
        w = self._writer
        if self._pos > self._end:
            # It ends in zeros that were skipped: give it its length (a hole at its end).
            os.ftruncate(fd, self._pos)
        if w.as_root:
            with contextlib.suppress(OSError):
                os.fchown(fd, *w.owner(node))
        # After the owner: a change of owner clears the setuid and setgid bits.
        os.fchmod(fd, w.file_mode(node.mode))
        for name, value in node.xattrs:
            if name.startswith(SOURCE_IDENTITY_XATTRS):
                continue  # an object store's ETag/version of a URL source, not an attribute of the file
            if name == CAPABILITY_XATTR and not w.setuid:
                # File capabilities grant what setuid would: kept only with setuid=True.
                with w._lock:
                    w.setuid_dropped += 1
                continue
            with contextlib.suppress(OSError):
                os.setxattr(fd, name, base64.b64decode(value))
        os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
        os.rename(self._tmp, node.name, src_dir_fd=self._dfd, dst_dir_fd=self._dfd)
        self._committed = True

    def __enter__(self) -> NewFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.close(self._fd)
        if not self._committed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp, dir_fd=self._dfd)


def data_spans(data: bytes, zero_block: bytes) -> list[tuple[int, int]]:
    """The stretches ``(start, end)`` of ``data`` to write to leave its runs of zeros as holes.

    Every byte not in a stretch is zero. A run of zeros is skipped when it is at least
    ``len(zero_block)`` long (the target's block size: a shorter run cannot free a block), or
    when it reaches the end of ``data`` from such a run (the next chunk may go on with zeros).
    An all-zero ``data`` gives no stretch.
    """
    n, block = len(data), len(zero_block)
    spans: list[tuple[int, int]] = []
    start = 0
    while (run := data.find(zero_block, start)) >= 0:
        end = run + block
        # Block by block: each comparison is a memcmp, no copy of data.
        while data.startswith(zero_block, end):
            end += block
        if n - end < block and data.endswith(zero_block[: n - end]):
            end = n
        if run > start:
            spans.append((start, run))
        start = end
    if start < n:
        spans.append((start, n))
    return spans


#: The extended attribute that holds a file's capabilities (Linux); restored only with
#: ``setuid=True``, as it grants what a setuid bit would.
CAPABILITY_XATTR = "security.capability"

#: Errors that concern one entry's name on the target's file system (too long, or bytes the
#: file system does not take), not the restore as a whole: that entry is reported and skipped.
ENTRY_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})

#: Directories of the path from the target down that a restore holds open at most.
OPEN_PATH = 64

# The granularity of holes where the file system does not say, and the most it may ask for.
_DEFAULT_BLOCK = 4096
_MAX_BLOCK = 1 << 20


def _local_id(lookup: Callable[[str], Any], name: str) -> int:
    """The ID this machine gives a user or group name, or -1 when it has none."""
    try:
        ident = lookup(name)[2]
    except (KeyError, ValueError, OSError):
        return -1
    return ident if isinstance(ident, int) else -1


class _Frame:
    """A directory on the path of :meth:`TargetWriter.walk`, and the subdirectories left to visit."""

    def __init__(self, d: PlannedDir, handle: DirHandle) -> None:
        self.d = d
        self.handle: DirHandle | None = handle
        self.subdirs = iter(d.dirs)
        self.ident: tuple[int, int] | None = None

    def let_go(self) -> None:
        assert self.handle is not None
        st = os.fstat(self.handle.fd)
        self.ident = (st.st_dev, st.st_ino)
        self.handle.release()
        self.handle = None

    def reopen_from(self, child: DirHandle) -> None:
        fd = os.open("..", _DIR_FLAGS, dir_fd=child.fd)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self.ident:
            os.close(fd)
            where = self.d.rel or "the target"
            raise UnsafePathError(f"{where} was moved while it was being restored into", path=self.d.rel)
        self.handle = DirHandle(fd)


class TargetWriter:
    """Writes entries into one target directory and never outside it.

    Parameters
    ----------
    target : str
        The local directory (created if missing).
    as_root : bool
        Whether entries get their stored owner.
    devices : bool
        Whether character and block device nodes are made (only ``as_root``).
    setuid : bool
        Whether files, FIFOs and devices keep their setuid and setgid bits; without it they
        are dropped (a directory keeps its setgid bit: it makes new entries inherit the
        directory's group, and gives no one more rights).
    numeric_owner : bool
        Give entries their stored numeric IDs even where the stored user or group name
        exists on this machine (see :meth:`owner`).
    sparse : bool
        Leave runs of zeros in files as holes, of whole blocks of the target's file system
        (its ``st_blksize``), instead of writing them. Every file is created empty under a
        temporary name, so a run not written reads as zeros.

    Its counters (``dirs``, ``symlinks``, ``other``, ``hardlinks``) count what it made; they
    are updated by the thread that walks the plan, which is the one that makes directories,
    special entries and hardlinks. Files are written from any thread through :meth:`new_file`;
    ``setuid_dropped`` counts the entries whose setuid or setgid bits were dropped.
    """

    def __init__(
        self,
        target: str,
        *,
        as_root: bool,
        devices: bool = False,
        setuid: bool = False,
        numeric_owner: bool = False,
        sparse: bool = False,
    ) -> None:
        self.as_root = as_root
        self.numeric_owner = numeric_owner
        # Local IDs by stored name (-1: no such name here), looked up once per restore. Filled
        # from any thread: a race only looks a name up twice.
        self._uids: dict[str, int] = {}
        self._gids: dict[str, int] = {}
        self.devices = as_root and devices
        self.setuid = setuid
        self._mode_mask = 0o7777 if setuid else 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)
        self._lock = threading.Lock()
        self.setuid_dropped = 0
        self.dirs = self.symlinks = self.other = self.hardlinks = 0
        os.makedirs(target, exist_ok=True)
        self.root = DirHandle(os.open(target, os.O_RDONLY | os.O_DIRECTORY))
        #: Zeros of one block of the target's file system when writing sparse, else empty.
        self.zero_block = b""
        if sparse:
            block = os.fstat(self.root.fd).st_blksize or _DEFAULT_BLOCK
            self.zero_block = bytes(max(512, min(block, _MAX_BLOCK)))

    def close(self) -> None:
        """Let go of the target (directories still held by tasks close when they finish)."""
        self.root.release()

    def subdir(self, parent: DirHandle, name: str) -> DirHandle:
        """Open directory ``name`` of ``parent``, made (owner-only until :meth:`dir_metadata`)
        if missing.

        Raises
        ------
        UnsafePathError
            If ``name`` is a symlink or anything but a directory.
        """
        handle = DirHandle(_open_dir(parent.fd, name, create=True))
        self.dirs += 1
        return handle

    def new_file(self, dfd: int) -> NewFile:
        """Start a file in the directory open as ``dfd``, under a temporary name."""
        return NewFile(self, dfd)

    def file_mode(self, mode: int) -> int:
        """The permission bits a file, FIFO or device is given for its stored ``mode``."""
        kept = mode & self._mode_mask
        if kept != mode & 0o7777:
            with self._lock:
                self.setuid_dropped += 1
        return kept

    def owner(self, node: Node) -> tuple[int, int]:
        """The user and group IDs ``node`` is given (as root).

        Each is mapped by name, as tar does: the ID that this machine gives the node's
        ``user`` (``group``), and the stored ``uid`` (``gid``) where the node has no name or
        the name does not exist here. With ``numeric_owner`` the stored IDs, always.
        """
        uid, gid = node.uid, node.gid
        if self.numeric_owner:
            return uid, gid
        if node.user:
            local = self._uids.get(node.user)
            if local is None:
                local = self._uids[node.user] = _local_id(pwd.getpwnam, node.user)
            if local >= 0:
                uid = local
        if node.group:
            local = self._gids.get(node.group)
            if local is None:
                local = self._gids[node.group] = _local_id(grp.getgrnam, node.group)
            if local >= 0:
                gid = local
        return uid, gid

    def makes(self, node_type: str) -> bool:
        """Whether :meth:`special` makes entries of this type (others are skipped)."""
        return node_type in ("symlink", "fifo") or (self.devices and node_type in ("chardev", "blockdev"))

    def special(self, dfd: int, node: Node) -> OSError | None:
        """Make a symlink, FIFO or device node (a type :meth:`makes`) as ``node.name``.

        Returns None once it is in place, else the error with which the target refused it;
        then nothing is left under its temporary name.
        """
        tmp = _temp_name()
        try:
            if node.type == "symlink":
                assert node.target is not None
                os.symlink(node.target, tmp, dir_fd=dfd)
                self.symlinks += 1
            elif node.type == "fifo":
                os.mkfifo(tmp, 0o600, dir_fd=dfd)
                self.other += 1
            elif self.makes(node.type):
                kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
                os.mknod(tmp, kind | 0o600, node.rdev, dir_fd=dfd)
                self.other += 1
            else:
                raise ValueError(f"{node.type} is not a type this writer makes")
            if self.as_root:
                with contextlib.suppress(OSError):
                    os.chown(tmp, *self.owner(node), dir_fd=dfd, follow_symlinks=False)
            if node.type != "symlink":
                os.chmod(tmp, self.file_mode(node.mode), dir_fd=dfd)
            with contextlib.suppress(NotImplementedError, OSError):
                os.utime(tmp, ns=(node.mtime_ns, node.mtime_ns), dir_fd=dfd, follow_symlinks=False)
            os.rename(tmp, node.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            return e
        return None

    def _open_parent(self, rel: str) -> tuple[int, str]:
        parts = rel.split("/")
        fd = os.dup(self.root.fd)
        try:
            for p in parts[:-1]:
                nfd = _open_dir(fd, p, create=False)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def hardlink(self, src: str, dst: str) -> OSError | None:
        """Make ``dst`` another name of ``src`` (paths below the target), replacing ``dst``.

        Returns None once linked, else the error with which the target refused the link.

        Raises
        ------
        UnsafePathError, OSError
            If a parent directory of either path cannot be opened as a plain directory.
        """
        sfd, sname = self._open_parent(src)
        try:
            dfd, dname = self._open_parent(dst)
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dname, dir_fd=dfd)
                os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                self.hardlinks += 1
            except OSError as e:
                return e
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        return None

    def dir_metadata(self, plan: PlannedDir) -> None:
        """Give each directory below the root of ``plan`` its stored metadata, deepest first
        (writing into a directory would change its times, and its mode may forbid writing)."""
        self.walk(plan, create=False, leave=self._set_dir_metadata)

    def _set_dir_metadata(self, d: PlannedDir, handle: DirHandle) -> None:
        node = d.node
        assert node is not None
        cfd = handle.fd
        if self.as_root:
            with contextlib.suppress(OSError):
                os.fchown(cfd, *self.owner(node))
        for name, value in node.xattrs:
            with contextlib.suppress(OSError):
                os.setxattr(cfd, name, base64.b64decode(value))
        os.fchmod(cfd, node.mode & 0o7777)
        os.utime(cfd, ns=(node.mtime_ns, node.mtime_ns))

    def walk(
        self,
        plan: PlannedDir,
        *,
        create: bool,
        enter: Callable[[PlannedDir, DirHandle], None] | None = None,
        leave: Callable[[PlannedDir, DirHandle], None] | None = None,
        stopped: Callable[[], bool] | None = None,
        refused: Callable[[PlannedDir, OSError], None] | None = None,
    ) -> None:
        """Visit every directory of ``plan`` depth first, without recursion.

        A directory whose name the target's file system refuses (:data:`ENTRY_ERRNOS`: too
        long, or not a valid name there) is left out with all below it, and given to
        ``refused``.

        ``enter`` sees each directory (the root too) right after it is opened, ``leave`` each
        one below the root after all of its subdirectories were left. A tree's depth is the
        repository's to choose (up to the format's limit), so the walk keeps an explicit stack
        and holds at most :data:`OPEN_PATH` directories of the path open: a deeper ancestor is
        let go and opened again as ``..`` of its child when the walk climbs back to it, and
        must then be the very same directory (device and inode), or the restore stops with
        :class:`UnsafePathError` (something moved the directory while it was restored into).
        """
        if enter is not None:
            enter(plan, self.root)
        stack = [_Frame(plan, self.root)]
        try:
            while stack and not (stopped is not None and stopped()):
                top = stack[-1]
                sub = next(top.subdirs, None)
                if sub is not None:
                    assert sub.node is not None
                    assert top.handle is not None
                    try:
                        if create:
                            child = self.subdir(top.handle, sub.node.name)
                        else:
                            child = DirHandle(_open_dir(top.handle.fd, sub.node.name, create=False))
                    except OSError as e:
                        if e.errno not in ENTRY_ERRNOS:
                            raise
                        # This one name does not fit the target's file system: the directory
                        # and what is below it are left out, the rest goes on.
                        if create and refused is not None:
                            refused(sub, e)
                        continue
                    stack.append(_Frame(sub, child))
                    if len(stack) > OPEN_PATH + 1 and stack[-OPEN_PATH - 1].handle is not None:
                        stack[-OPEN_PATH - 1].let_go()
                    if enter is not None:
                        enter(sub, child)
                    continue
                stack.pop()
                if not stack:
                    break
                assert top.handle is not None
                parent = stack[-1]
                if parent.handle is None:
                    parent.reopen_from(top.handle)
                if leave is not None:
                    leave(top.d, top.handle)
                top.handle.release()
                top.handle = None
        finally:
            for frame in stack[1:]:
                if frame.handle is not None:
                    frame.handle.release()
