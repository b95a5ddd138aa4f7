"""``snapvault://``: a read-only fsspec filesystem over a repository's snapshots.

Nouns:

- A *path* is ``snapvault://<ref>/<path inside the snapshot>``. The path inside is the
  absolute source path as the snapshot stores it, without its leading ``/``:
  ``snapvault://latest/home/me/data/a.csv`` is ``/home/me/data/a.csv`` of the newest snapshot.
- A *ref* names one snapshot: a full ID, a unique prefix (4+ hex digits), ``latest`` (the
  newest), ``latest@<policy>`` (the newest the policy made), or ``<policy>@<ISO time>`` (the
  newest the policy made at or before that time; an empty policy, ``@<time>``, means any
  snapshot). A time without an offset is UTC, so a notebook's result does not depend on the
  machine's zone.
- The *root*, ``snapvault://``, lists the snapshots as directories named by their short IDs
  (8 hex digits, longer where two snapshots share them), oldest first.

Entries keep their snapshot types: ``file``, ``directory``, ``link`` (a symlink, with its
``destination``; never followed) and ``other`` (FIFOs, sockets, devices; ``node_type`` says
which). A file is read chunk by chunk: a read fetches only the chunks (blobs) its range
covers, and each open file keeps the last few in memory. Trees and resolved refs are cached
per filesystem instance; trees are content-addressed and never stale, but the snapshot list
is read once, so call :meth:`SnapshotFileSystem.invalidate_cache` to see newer snapshots.
Every write raises :class:`ReadOnlySnapshotError`.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.utils import stringify_path

from snapvault.errors import AccessDenied, ConfigError, IntegrityError, SnapshotNotFound, SnapvaultError
from snapvault.handle import Repository
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.tree import Node
from snapvault.policy.selection import SnapshotFilter, select
from snapvault.repository.manifest import Manifest

__all__ = [
    "NotARegularFile",
    "ReadOnlySnapshotError",
    "SnapshotFile",
    "SnapshotFileSystem",
    "SnapshotIsADirectory",
    "SnapshotPathNotFound",
]

PROTOCOL = "snapvault"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Trees kept per filesystem instance (a tree is immutable, so this bounds memory only).
_TREE_CACHE = 256
_TYPES = {"file": "file", "dir": "directory", "symlink": "link"}


class ReadOnlySnapshotError(AccessDenied):
    """A write (open for writing, pipe, rm, mkdir, mv, put, ...) on ``snapvault://``."""


class SnapshotPathNotFound(SnapshotNotFound, FileNotFoundError):
    """No snapshot matches the path's ref, or the snapshot holds no such path."""


class NotARegularFile(SnapvaultError, OSError):
    """Bytes were asked of an entry that holds none: a directory, a symlink or a special file.

    ``fs.get`` raises it at a symlink or special file: :class:`snapvault.Restorer` restores
    those (and keeps them inside its target)."""


class SnapshotIsADirectory(NotARegularFile, IsADirectoryError):
    """Bytes were asked of a directory (or of a snapshot, or of the root)."""


def _read_only(what: str, path: Any = "") -> NoReturn:
    where = f" {path}" if isinstance(path, str) and path else ""
    raise ReadOnlySnapshotError(f"snapvault:// is read-only: cannot {what}{where}")


def _refusal(what: str, target: int = 0) -> Callable[..., NoReturn]:
    """A write method of the filesystem: it raises, naming its ``target``-th argument."""

    def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        _read_only(what, args[target] if len(args) > target else "")

    refuse.__doc__ = f"Refused ({what}): ``snapvault://`` is read-only."
    return refuse


def _parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC.

    Raises
    ------
    ConfigError
        If ``text`` is not an ISO time.
    """
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO time (as in 2026-03-01T12:00:00+00:00)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _short_names(ids: list[str]) -> dict[str, str]:
    """Each ID's shortest prefix of 8 or more digits that no other ID shares."""
    ordered = sorted(ids)
    out = {}
    for i, sid in enumerate(ordered):
        need = 8
        for other in ordered[max(0, i - 1) : i] + ordered[i + 1 : i + 2]:
            common = next((k for k, (a, b) in enumerate(zip(sid, other, strict=False)) if a != b), len(sid))
            need = max(need, common + 1)
        out[sid] = sid[:need]
    return out


class _ChunkReader:
    """The bytes of one file node: its chunks' offsets, computed once, and an LRU of chunks."""

    def __init__(self, repo: Repository, path: str, node: Node, keep: int) -> None:
        self._repo = repo
        self._keep = max(1, keep)
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        try:
            self._ids = [bytes.fromhex(c) for c in node.content]
        except ValueError:
            raise IntegrityError(f"{path}: a chunk ID is not hex", path=path) from None
        offsets = [0]
        for bid in self._ids:
            loc = repo.locate(bid)
            if loc.type != BlobType.DATA:
                raise IntegrityError(f"{path}: chunk {bid.hex()[:16]} is not file data", blob_id=bid.hex(), path=path)
            offsets.append(offsets[-1] + loc.raw_length)
        if offsets[-1] != node.size:
            # The restorer calls such a file damaged too: its bytes and its size disagree.
            raise IntegrityError(f"{path}: its chunks hold {offsets[-1]} bytes, its size is {node.size}", path=path)
        self._offsets = offsets
        self.size = node.size

    def _chunk(self, i: int) -> bytes:
        data = self._cache.get(i)
        if data is None:
            data = self._repo.read_blob(self._ids[i], BlobType.DATA)
            self._cache[i] = data
            if len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(i)
        return data

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``, clipped to the file, reading only the chunks they cover."""
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return b""
        i = bisect.bisect_right(self._offsets, start) - 1
        parts = []
        while i < len(self._ids) and self._offsets[i] < end:
            base = self._offsets[i]
            parts.append(self._chunk(i)[max(0, start - base) : end - base])
            i += 1
        return b"".join(parts)


def _span(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """fsspec's ``cat_file`` range rules: None for the ends, negatives from the end."""
    lo = 0 if start is None else (start if start >= 0 else max(0, size + start))
    hi = size if end is None else (end if end >= 0 else size + end)
    return lo, min(hi, size)


class SnapshotFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A seekable, read-only file of a snapshot (what ``fs.open(path, "rb")`` returns).

    ``_fetch_range`` reads only the chunks a range covers; the file keeps the last few chunks
    it read. The default ``cache_type`` is ``"none"``, as that chunk cache is the buffer.
    """

    def __init__(
        self,
        fs: SnapshotFileSystem,
        path: str,
        reader: _ChunkReader,
        details: dict[str, Any],
        block_size: int | str | None = None,
        cache_type: str = "none",
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._reader = reader
        opts = {"cache_type": cache_type, "cache_options": cache_options, "size": reader.size}
        super().__init__(fs, path, mode="rb", block_size=block_size, **opts, **kwargs)
        self._details = details

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self._reader.read(start, end)


class SnapshotFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """A read-only fsspec filesystem over the snapshots of a snapvault repository.

    Registered as the protocol ``snapvault`` (entry point ``fsspec.specs``), so
    ``fsspec.filesystem("snapvault", repo=..., password=...)`` and
    ``pandas.read_csv("snapvault://latest/home/me/a.csv", storage_options={...})`` need no
    import. See the module docstring for paths and refs.

    Parameters
    ----------
    repo : str, optional
        The repository's fsspec URL (``/srv/vault``, ``s3://bucket/vault``).
    repo_options : dict, optional
        Storage options for ``repo`` (credentials, endpoint).
    password : str or bytes, optional
        The repository password (none for an unencrypted repository).
    password_file : str, optional
        A file holding the password (a trailing newline is dropped).
    password_env : str, optional
        The name of a variable in ``env`` holding the password.
    env : mapping, optional
        Where ``password_env`` is looked up (pass ``os.environ``); the library never reads
        the process environment itself.
    repository : snapvault.Repository, optional
        An open repository, instead of ``repo`` and a password.
    chunk_cache : int
        Chunks each open file keeps in memory (least recently used go first).
    **kwargs
        fsspec's own options (``skip_instance_cache``, ...).

    Raises
    ------
    ConfigError
        If neither or both of ``repo`` and ``repository`` are given, more than one password
        source, ``password_env`` without ``env``, or a password file cannot be read.
    RepositoryNotFound, WrongPassword
        As :meth:`snapvault.Repository.open`.
    """

    protocol = PROTOCOL
    root_marker = ""

    def __init__(
        self,
        repo: str | None = None,
        *,
        repo_options: dict[str, Any] | None = None,
        password: str | bytes | None = None,
        password_file: str | None = None,
        password_env: str | None = None,
        env: Mapping[str, str] | None = None,
        repository: Repository | None = None,
        chunk_cache: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        sources = [s for s in (password, password_file, password_env) if s is not None]
        if len(sources) > 1:
            raise ConfigError("give one of password, password_file and password_env")
        if repository is not None:
            if repo is not None or repo_options or sources:
                raise ConfigError("repository= is already open: give no repo, repo_options or password with it")
            self.repository = repository
        elif repo is None:
            raise ConfigError("give repo= (the repository URL) or repository= (an open snapvault.Repository)")
        else:
            secret = password if password_file is None and password_env is None else None
            if password_file is not None:
                try:
                    with open(password_file, encoding="utf-8") as f:
                        secret = f.read().rstrip("\r\n")
                except OSError as e:
                    raise ConfigError(f"cannot read password file {password_file}: {e.strerror}") from None
            if password_env is not None:
                if env is None:
                    raise ConfigError("password_env needs env= (pass os.environ): the library reads no environment")
                if password_env not in env:
                    raise ConfigError(f"password_env: {password_env} is not set in env")
                secret = env[password_env]
            self.repository = Repository.open(repo, secret, storage_options=repo_options or None)
        self.chunk_cache = chunk_cache
        self._lock = threading.Lock()
        self._trees: OrderedDict[str, dict[str, Node]] = OrderedDict()
        self._refs: dict[str, Manifest] = {}
        self._snapshots: list[Manifest] | None = None
        self._stale_index = False

    @property
    def fsid(self) -> str:
        """The same for every handle on one repository (``snapvault-<repository ID>``)."""
        return f"{PROTOCOL}-{self.repository.config.repository_id}"

    # -- paths and refs --------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = stringify_path(path)
        for prefix in (f"{PROTOCOL}://", f"{PROTOCOL}::"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        return "/".join(p for p in text.split("/") if p not in ("", "."))

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget the snapshot list and resolved refs, and reload the repository's index at
        the next lookup, to see snapshots made since (trees are immutable and stay cached)."""
        with self._lock:
            self._snapshots = None
            self._refs.clear()
            self._stale_index = True

    def _all_snapshots(self) -> list[Manifest]:
        with self._lock:
            if self._snapshots is None:
                self._snapshots = self.repository.snapshots()
            return self._snapshots

    def snapshot(self, path: str) -> Manifest:
        """The manifest of the snapshot a path's ref names (``"latest"``, ``"snapvault://ab12cd34/home"``).

        Raises
        ------
        SnapshotPathNotFound
            If no snapshot matches.
        AmbiguousSnapshot
            If an ID prefix matches several.
        ConfigError
            If the path has no ref (the root), or a ``<policy>@<time>`` ref has a bad time.
        """
        ref = self._strip_protocol(path).partition("/")[0]
        if not ref:
            raise ConfigError("the root of snapvault:// is no snapshot: give a ref (an ID, latest, ...)")
        with self._lock:
            found = self._refs.get(ref)
        if found is None:
            found = self._resolve(ref)
            with self._lock:
                self._refs[ref] = found
        return found

    def _resolve(self, ref: str) -> Manifest:
        with self._lock:
            stale, self._stale_index = self._stale_index, False
        if stale:
            # A newer snapshot's trees and chunks are in index files written since it loaded.
            self.repository.refresh_index()
        if ref == "latest" or "@" in ref:
            policy: str | None
            at: datetime | None
            if ref.startswith("latest@"):
                policy, at = ref[len("latest@") :], None
            elif "@" in ref:
                name, _, when = ref.rpartition("@")
                policy, at = (name or None), _parse_time(when)
            else:
                policy, at = None, None
            chosen = select(self._all_snapshots(), SnapshotFilter(policy=policy))
            if at is not None:
                chosen = [m for m in chosen if m.time <= at]
            if not chosen:
                raise SnapshotPathNotFound(f"no snapshot matches {ref!r}", snapshot_id=ref)
            # snapshots() is sorted by (time, ID): the last is the newest by its recorded time.
            return chosen[-1]
        try:
            return self.repository.resolve(ref)
        except SnapshotNotFound as e:
            if type(e) is SnapshotNotFound:  # not AmbiguousSnapshot: that is no missing path
                raise SnapshotPathNotFound(str(e), snapshot_id=ref) from None
            raise

    def _tree(self, tree_id: str) -> dict[str, Node]:
        with self._lock:
            nodes = self._trees.get(tree_id)
            if nodes is not None:
                self._trees.move_to_end(tree_id)
                return nodes
        nodes = {n.name: n for n in self.repository.iter_tree(tree_id)}
        with self._lock:
            self._trees[tree_id] = nodes
            if len(self._trees) > _TREE_CACHE:
                self._trees.popitem(last=False)
        return nodes

    def _lookup(self, path: str) -> tuple[Manifest, Node | None]:
        """The snapshot of a stripped path and its node (None for the snapshot's root)."""
        ref, _, rel = path.partition("/")
        manifest = self.snapshot(ref)
        node: Node | None = None
        tree: str | None = manifest.tree
        for part in rel.split("/") if rel else ():
            if tree is None:
                raise SnapshotPathNotFound(f"{path}: {node.name if node else ref} is not a directory")
            node = self._tree(tree).get(part)
            if node is None:
                raise SnapshotPathNotFound(f"{path} is not in snapshot {manifest.short_id}", snapshot_id=manifest.id)
            tree = node.subtree if node.type == "dir" else None
        return manifest, node

    # -- listing ---------------------------------------------------------------------------

    @staticmethod
    def _snapshot_info(name: str, m: Manifest) -> dict[str, Any]:
        info: dict[str, Any] = {"name": name, "type": "directory", "size": 0, "snapshot": m.id}
        info.update(time=m.time.isoformat(), mtime=m.time.timestamp(), hostname=m.hostname)
        info.update(paths=list(m.paths), tags=list(m.tags), policy=m.policy)
        return info

    @staticmethod
    def _node_info(name: str, m: Manifest, n: Node) -> dict[str, Any]:
        info: dict[str, Any] = {"name": name, "type": _TYPES.get(n.type, "other"), "size": 0, "node_type": n.type}
        if n.type == "file":
            info["size"] = n.size
        info.update(mode=n.mode, mtime=n.mtime_ns / 1e9, mtime_ns=n.mtime_ns, uid=n.uid, gid=n.gid)
        info.update(user=n.user, group=n.group, islink=n.type == "symlink", snapshot=m.id)
        if n.type == "symlink":
            info["destination"] = n.target
        return info

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The entries of a directory (or ``[info]`` of a file), sorted by name.

        The root lists the snapshots (``info`` adds ``snapshot``, ``time``, ``hostname``,
        ``paths``, ``tags``, ``policy``).

        Raises
        ------
        SnapshotPathNotFound
            If the path is not in its snapshot, or no snapshot matches its ref.
        """
        path = self._strip_protocol(path)
        if not path:
            snaps = self._all_snapshots()
            names = _short_names([m.id for m in snaps])
            out = [self._snapshot_info(names[m.id], m) for m in snaps]
        else:
            manifest, node = self._lookup(path)
            if node is not None and node.type != "dir":
                out = [self._node_info(path, manifest, node)]
            else:
                tree = manifest.tree if node is None else node.subtree
                children = self._tree(tree).values() if tree else ()
                out = [self._node_info(f"{path}/{n.name}", manifest, n) for n in children]
        return out if detail else [e["name"] for e in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The details of one entry: ``name``, ``type``, ``size``, ``mode``, ``mtime`` (seconds),
        ``mtime_ns``, owners, ``islink`` and ``destination`` (symlinks), ``snapshot`` (its ID).

        Raises
        ------
        SnapshotPathNotFound
            If there is no such entry.
        """
        path = self._strip_protocol(path)
        if not path:
            return {"name": "", "type": "directory", "size": 0}
        manifest, node = self._lookup(path)
        if node is None:
            return self._snapshot_info(path, manifest)
        return self._node_info(path, manifest, node)

    def ukey(self, path: str) -> str:
        """A hex key of an entry's content, stable across instances and snapshots: from a
        file's chunk IDs, a directory's tree ID, a symlink's target."""
        path = self._strip_protocol(path)
        if not path:
            basis = "root\0" + ",".join(sorted(m.id for m in self._all_snapshots()))
        else:
            manifest, node = self._lookup(path)
            if node is None:
                basis = f"dir\0{manifest.tree}"
            elif node.type == "file":
                basis = f"file\0{node.size}\0" + ",".join(node.content)
            elif node.type == "dir":
                basis = f"dir\0{node.subtree}"
            else:
                basis = f"{node.type}\0{node.target}\0{node.rdev}"
        return hashlib.sha256(basis.encode("utf-8", "surrogateescape")).hexdigest()

    def checksum(self, path: str) -> int:
        """:meth:`ukey` as an int: equal checksums mean equal content."""
        return int(self.ukey(path)[:32], 16)

    def modified(self, path: str) -> datetime:
        """An entry's mtime as a UTC datetime (a snapshot's root: the snapshot's time)."""
        path = self._strip_protocol(path)
        if not path:
            raise NotImplementedError("the root of snapvault:// has no modification time")
        manifest, node = self._lookup(path)
        if node is None:
            return manifest.time.astimezone(UTC)
        return _EPOCH + timedelta(microseconds=node.mtime_ns // 1000)

    def created(self, path: str) -> datetime:
        """Not recorded: snapshots keep mtime and ctime (change time), not creation time."""
        raise NotImplementedError("snapshots record no creation time; use modified()")

    # -- reading ---------------------------------------------------------------------------

    def _reader(self, path: str) -> tuple[_ChunkReader, dict[str, Any]]:
        if not path:
            raise SnapshotIsADirectory("snapvault:// is a directory")
        manifest, node = self._lookup(path)
        if node is None or node.type == "dir":
            raise SnapshotIsADirectory(f"{path} is a directory")
        info = self._node_info(path, manifest, node)
        if node.type != "file":
            what = f"a symlink to {node.target}" if node.type == "symlink" else f"a {node.type}"
            raise NotARegularFile(f"{path} is {what}, not a file (snapvault:// does not follow links)")
        return _ChunkReader(self.repository, path, node, self.chunk_cache), info

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SnapshotFile:
        path = self._strip_protocol(path)
        if mode != "rb":
            _read_only(f"open in mode {mode!r}", path)
        reader, info = self._reader(path)
        cache_type = kwargs.pop("cache_type", "none")
        return SnapshotFile(self, path, reader, info, block_size, cache_type, cache_options, **kwargs)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """A file's bytes, or ``[start, end)`` of them (negatives count from the end), reading
        only the chunks that range covers.

        Raises
        ------
        SnapshotIsADirectory, NotARegularFile
            If the path is a directory, a symlink or a special file.
        """
        path = self._strip_protocol(path)
        reader, _ = self._reader(path)
        return reader.read(*_span(reader.size, start, end))

    def cat_ranges(
        self,
        paths: list[str],
        starts: list[int | None] | int | None,
        ends: list[int | None] | int | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes | Exception]:
        """Byte ranges of several files, as fsspec's: one reader (and chunk cache) per path, so
        ranges that share a chunk fetch it once."""
        if max_gap is not None:
            raise NotImplementedError("max_gap is not supported: only the chunks a range covers are read")
        if not isinstance(paths, list):
            raise TypeError("paths must be a list")
        lows = starts if isinstance(starts, list) else [starts] * len(paths)
        highs = ends if isinstance(ends, list) else [ends] * len(paths)
        readers: dict[str, _ChunkReader] = {}
        out: list[bytes | Exception] = []
        for p, lo, hi in zip(paths, lows, highs, strict=True):  # unequal lengths: ValueError
            try:
                path = self._strip_protocol(p)
                if path not in readers:
                    readers[path] = self._reader(path)[0]
                reader = readers[path]
                out.append(reader.read(*_span(reader.size, lo, hi)))
            except Exception as e:  # fsspec's contract: on_error="return" hands errors back
                if on_error != "return":
                    raise
                out.append(e)
        return out

    # -- writes: all refused -------------------------------------------------------------

    mkdir = _refusal("mkdir")
    makedirs = _refusal("makedirs")
    rmdir = _refusal("rmdir")
    touch = _refusal("touch")
    pipe_file = _refusal("write")
    rm = rm_file = _rm = _refusal("remove")
    mv = _refusal("move")
    copy = cp_file = _refusal("copy into", target=1)
    put = put_file = _refusal("upload to", target=1)
