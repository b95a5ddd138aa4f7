"""Restoring into an fsspec target: ``memory://``, ``s3://``, ``az://``, ``gs://``, and the rest.

:func:`open_target` decides what a restore ``target`` is. A path (or ``file://``) stays a local
directory, written by :class:`~snapvault.restore.writer.TargetWriter` as before; any other URL
gets an :class:`FsspecWriter`, which the restorer drives exactly as it drives the local writer
(it walks the plan, starts files, makes special entries and hardlinks).

What an fsspec target holds is files' bytes under names. Everything else a snapshot records
that the target cannot hold (mode, owner, modification time, extended attributes, symlinks,
FIFOs, device nodes, hardlinks, and on object stores empty directories) is counted per kind
in :attr:`FsspecWriter.metadata_dropped`, never listed file by file.

No name is joined into a target path unchecked: each is validated again as one path component
(not ``.`` or ``..``, no ``/`` or NUL), so nothing is written outside the target prefix.

A file's verified bytes are spooled locally (in memory up to :data:`SPOOL_LIMIT`, then a
temporary file) and uploaded only once all of it verified, so damaged or cancelled files are
never uploaded. How the upload avoids a half-written final name depends on the backend:

- object stores (S3, GCS, Azure Blob) and ``memory://``: the object is written whole under its
  final name (one PUT, or a multipart or block upload that becomes visible only when it is
  completed): an object appears whole or not at all;
- any other filesystem (SFTP, FTP, SMB, HDFS, ...): the file is uploaded under a temporary name
  in its directory and moved over its final name (the filesystem's own move, a rename; where
  it has none, a copy and a removal of the temporary file).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from snapvault.errors import ConfigError
from snapvault.pipeline.restore_plan import PlannedDir
from snapvault.pipeline.tree import Node, validate_name
from snapvault.restore.writer import ENTRY_ERRNOS, TEMP_PREFIX, DirHandle, local_target
from snapvault.storage.errors import map_errors

if TYPE_CHECKING:
    import fsspec

__all__ = ["OBJECT_STORES", "SPOOL_LIMIT", "FsspecWriter", "Upload", "open_target"]

#: Protocols whose targets are object stores: no directories, no rename, a whole-object write
#: is atomic, and a key holds at most :data:`MAX_KEY` bytes.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
# The memory filesystem stores a file with one assignment at its end: whole objects too.
_WHOLE_OBJECTS = OBJECT_STORES | {"memory"}
#: Longest object key in bytes on S3, GCS and Azure Blob (1024 characters there).
MAX_KEY = 1024
#: Bytes of a file kept in memory before it is spooled to a local temporary file.
SPOOL_LIMIT = 8 << 20

_tmp_counter = itertools.count()


def open_target(target: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> str | FsspecWriter:
    """What a restore ``target`` names: a local directory, or an fsspec target to write through.

    A path, ``file:///path`` (see :func:`~snapvault.restore.writer.local_target`) or a URL whose
    filesystem is the local one is a local directory, returned as its path. Any other URL is
    opened with fsspec (``options`` are its storage options, such as credentials or an
    endpoint) and returned as an :class:`FsspecWriter`. Nothing is written yet.

    Raises
    ------
    ConfigError
        If ``options`` are given for a local directory, no fsspec filesystem is installed for
        the URL's protocol, or fsspec refuses the URL or the options.
    """
    local = local_target(target)
    if local is not None:
        if options:
            raise ConfigError("target options apply to a URL target, not to a local directory")
        return local
    # fsspec only now: a restore into a local directory (most of them) never imports it.
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    url = os.fspath(target)
    opts = dict(options or {})
    # Hardlinks are copied from files just written: a stale listing must not hide them.
    opts.setdefault("use_listings_cache", False)
    try:
        fs, root = fsspec.core.url_to_fs(url, **opts)
    except ImportError as e:
        proto = url.split("://", 1)[0].rsplit("::", 1)[-1]
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}.get(proto)
        hint = f"; install it with: pip install 'snapvault[{extra}]'" if extra else ""
        raise ConfigError(f"no filesystem for {proto}:// is installed to restore into {url}{hint}") from e
    except (ValueError, TypeError) as e:
        raise ConfigError(f"cannot open restore target {url}: {e}") from e
    if isinstance(fs, LocalFileSystem):
        return str(root)
    return FsspecWriter(fs, str(root), url=url)


class _Prefix(DirHandle):
    """A directory of an fsspec target, by its number in :attr:`FsspecWriter.paths`: nothing to
    close (the restorer shares it between tasks as it shares an open local directory)."""

    def release(self) -> None:
        """Nothing is held open."""


class _Spool:
    """A file's bytes before upload: in memory up to :data:`SPOOL_LIMIT`, then a local file."""

    __slots__ = ("file", "mem")

    def __init__(self) -> None:
        self.mem = bytearray()
        self.file: IO[bytes] | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self.file is None:
            if len(self.mem) + len(data) <= SPOOL_LIMIT:
                self.mem += data
                return
            self.file = tempfile.NamedTemporaryFile(prefix=TEMP_PREFIX)  # noqa: SIM115 - closed by close()
            self.file.write(self.mem)
            self.mem = bytearray()
        self.file.write(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class Upload:
    """A file being restored into an fsspec target: spooled, and uploaded on :meth:`commit`.

    Use it as a context manager: leaving the block without a commit (the file turned out
    damaged, the restore was stopped, or anything raised) uploads nothing, so the final name
    keeps what it held before.
    """

    __slots__ = ("_dir", "_spool", "_writer")

    def __init__(self, writer: FsspecWriter, directory: str) -> None:
        self._writer = writer
        self._dir = directory
        self._spool = _Spool()

    def write(self, data: bytes | memoryview) -> None:
        """Append all of ``data``."""
        self._spool.write(data)

    def commit(self, node: Node) -> None:
        """Upload the file as ``node.name`` in its directory (its metadata is counted as
        dropped: the target cannot hold it).

        Raises
        ------
        UnsafePathError
            If ``node.name`` is not a single safe path component.
        OSError
            ``ENAMETOOLONG`` if its key is too long for an object store; a
            :class:`~snapvault.errors.StorageError` if the target fails.
        """
        w = self._writer
        path = w.child(self._dir, node.name)
        w.upload(self._spool, path)
        w.entry_dropped(node)

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._spool.close()


class FsspecWriter:
    """Writes a restore into a prefix of an fsspec filesystem and never outside it.

    It has the members of :class:`~snapvault.restore.writer.TargetWriter` that a restore
    uses. Directory handles are numbers into :attr:`paths` rather than open descriptors.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The target filesystem.
    root : str
        The prefix in ``fs`` to restore under (made if the filesystem has directories).
    url : str
        The target as given, for messages and the result.

    Attributes
    ----------
    metadata_dropped : collections.Counter
        Per kind, the entries restored without something the target cannot hold: ``mode``,
        ``owner``, ``mtime`` and ``xattrs`` (files and directories), ``hardlinks`` (further
        names of a file, restored as copies), ``symlinks``, ``fifos`` and ``devices`` (not
        made), ``empty_dirs`` (directories without files or subdirectories, on object stores,
        which hold no directories).
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, *, url: str) -> None:
        self.fs = fs
        self.url = url
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.object_store = bool(protocols & OBJECT_STORES)
        self.whole_objects = bool(protocols & _WHOLE_OBJECTS)
        self.paths = [root.rstrip("/") or root]
        self.root = _Prefix(0)
        self.as_root = False
        self.setuid_dropped = 0
        self.dirs = self.symlinks = self.other = self.hardlinks = 0
        self.metadata_dropped: Counter[str] = Counter()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing is held open between calls."""

    # -- names ---------------------------------------------------------------------------------

    def child(self, directory: str, name: str) -> str:
        """The path of entry ``name`` in ``directory``.

        Raises
        ------
        UnsafePathError
            If ``name`` is not one safe path component (trees are validated as they are read;
            this is the second line).
        OSError
            ``ENAMETOOLONG`` if the path is longer than an object store's keys may be.
        """
        path = f"{directory}/{validate_name(name)}"
        if self.object_store and len(path.encode("utf-8", "surrogateescape")) > MAX_KEY:
            raise OSError(errno.ENAMETOOLONG, f"longer than the {MAX_KEY} bytes of an object key", path)
        return path

    def _rel_path(self, rel: str) -> str:
        path = self.paths[0]
        for part in rel.split("/"):
            path = self.child(path, part)
        return path

    # -- the members the restorer uses ---------------------------------------------------------

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
        """Visit every directory of ``plan`` depth first, as
        :meth:`~snapvault.restore.writer.TargetWriter.walk` does, making each (``create``)
        where the target has directories."""
        if create and not self.object_store:
            with map_errors(None, self.url):
                self.fs.makedirs(self.paths[0], exist_ok=True)
        if enter is not None:
            enter(plan, self.root)
        stack = [(self.root, iter(plan.dirs))]
        while stack and not (stopped is not None and stopped()):
            parent, subdirs = stack[-1]
            sub = next(subdirs, None)
            if sub is None:
                stack.pop()
                continue
            assert sub.node is not None
            try:
                path = self.child(self.paths[parent.fd], sub.node.name)
            except OSError as e:
                if e.errno not in ENTRY_ERRNOS:
                    raise
                # Too long a key for the store: this directory and all below it are left out.
                if create and refused is not None:
                    refused(sub, e)
                continue
            with self._lock:
                handle = _Prefix(len(self.paths))
                self.paths.append(path)
            if create:
                self._make_dir(path, sub)
            stack.append((handle, iter(sub.dirs)))
            if enter is not None:
                enter(sub, handle)

    def _make_dir(self, path: str, d: PlannedDir) -> None:
        assert d.node is not None
        if self.object_store:
            if not d.files and not d.dirs:
                with self._lock:
                    self.metadata_dropped["empty_dirs"] += 1
        else:
            with map_errors(None, self.url):
                self.fs.makedirs(path, exist_ok=True)
        self.dirs += 1
        self.entry_dropped(d.node)

    def dir_metadata(self, plan: PlannedDir) -> None:
        """Nothing to set: the target holds no directory metadata (counted as each was made)."""

    def new_file(self, dfd: int) -> Upload:
        """Start a file in the directory numbered ``dfd``."""
        return Upload(self, self.paths[dfd])

    def makes(self, node_type: str) -> bool:
        """Whether :meth:`special` takes entries of this type (it counts them as dropped)."""
        return node_type in _SPECIAL_KINDS

    def special(self, dfd: int, node: Node) -> OSError | None:
        """Count a symlink, FIFO or device node as dropped: the target cannot hold it."""
        with self._lock:
            self.metadata_dropped[_SPECIAL_KINDS[node.type]] += 1
        return None

    def hardlink(self, src: str, dst: str) -> OSError | None:
        """Restore ``dst`` (a path below the target) as a copy of ``src``, already restored.

        Returns None once copied, else the error with which the target refused it.
        """
        try:
            source, dest = self._rel_path(src), self._rel_path(dst)
            with map_errors(dst, self.url):
                self._place(dest, lambda tmp: self.fs.cp_file(source, tmp))
        except OSError as e:
            return e
        with self._lock:
            self.hardlinks += 1
            self.metadata_dropped["hardlinks"] += 1
        return None

    # -- writing -------------------------------------------------------------------------------

    def upload(self, spool: _Spool, path: str) -> None:
        """Write a spooled file's bytes as ``path``, whole or not at all where the target
        allows (see the module's docstring)."""

        def put(dest: str) -> None:
            if spool.file is None:
                self.fs.pipe_file(dest, bytes(spool.mem))
            else:
                spool.file.flush()
                self.fs.put_file(spool.file.name, dest)

        with map_errors(path.rsplit("/", 1)[-1], self.url):
            self._place(path, put)

    def _place(self, path: str, write: Callable[[str], None]) -> None:
        if self.whole_objects:
            write(path)
            return
        import fsspec

        directory = path.rsplit("/", 1)[0]
        tmp = f"{directory}/{TEMP_PREFIX}{os.getpid()}-{next(_tmp_counter)}"
        try:
            write(tmp)
            if type(self.fs).mv is fsspec.AbstractFileSystem.mv:
                # The generic move expands glob characters in the source's directory (a
                # directory named ``[a]*`` in the snapshot): copy and remove, which do not.
                self.fs.cp_file(tmp, path)
                self.fs.rm_file(tmp)
            else:
                # The filesystem's own move is a rename (SFTP, SMB, HDFS, ...).
                self.fs.mv(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    def entry_dropped(self, node: Node) -> None:
        """Count what a file or directory restored here loses."""
        with self._lock:
            self.metadata_dropped.update(_ALWAYS_DROPPED)
            if node.xattrs:
                self.metadata_dropped["xattrs"] += 1


_ALWAYS_DROPPED = ("mode", "owner", "mtime")
_SPECIAL_KINDS = {"symlink": "symlinks", "fifo": "fifos", "chardev": "devices", "blockdev": "devices"}
