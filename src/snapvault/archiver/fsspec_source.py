"""Back up the objects below fsspec URLs (``s3://bucket/prefix``, ``az://``, ``gs://``, ``memory://``).

Nouns
-----
ObjectSource
    One source URL opened: its filesystem and its path there.
ObjectWalker
    Lists the objects below the sources, builds the snapshot's trees and feeds the objects'
    bytes to the sink; reuses the parent snapshot's node of an unchanged object.

Layout: the snapshot's root tree holds each source under its path on its filesystem, as a
local source is held under its absolute path: ``s3://bucket/prefix`` gives the directories
``bucket`` -> ``prefix``, holding the object keys below the prefix split at ``/``. A restore
therefore writes ``<target>/bucket/prefix/<key>``. Directories (prefixes) are recorded with
mode 0o755 and no time, objects with mode 0o644 and their modification time.

Change detection: an object is unchanged when its size, its modification time and its
identity (each of ETag, version ID and generation the listing gives) equal what the parent
snapshot recorded, and the parent's chunks are all still stored. The identity is recorded in
the node's ``xattrs`` as ``user.snapvault.etag``, ``user.snapvault.version`` and
``user.snapvault.generation`` (the listing's text, base64 as the format has it), so old
readers read these trees unchanged. An object whose listing gives neither a time nor an
identity is read on every backup.
"""

from __future__ import annotations

import base64
import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from snapvault.archiver.sink import BlobSink
from snapvault.archiver.walker import Cancelled, WalkStats
from snapvault.errors import ConfigError, SnapvaultError, SourceError
from snapvault.pipeline.blob import MAX_TREE_BLOB
from snapvault.pipeline.chunker import ChunkerParams, StreamChunker
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.tree import MAX_DEPTH, Node, encode_tree, validate_name
from snapvault.repository.manifest import FileError

__all__ = ["PART_SIZE", "ObjectSource", "ObjectWalker", "is_url", "normal_url", "open_sources"]

#: Bytes per ranged read: objects larger than this are read as several ranges at once.
PART_SIZE = 8 << 20
_DIR_MODE = 0o755
_FILE_MODE = 0o644
# Identity fields by the name each backend's listing gives them, and the xattr recording each.
_IDENTITY = (
    ("ETag", "user.snapvault.etag"),  # s3fs
    ("etag", "user.snapvault.etag"),  # adlfs, gcsfs
    ("VersionId", "user.snapvault.version"),  # s3fs with version_aware=True
    ("version_id", "user.snapvault.version"),  # adlfs with version_aware=True
    ("generation", "user.snapvault.generation"),  # gcsfs
)
# Modification times by name, first found wins.
_TIMES = ("LastModified", "last_modified", "updated", "mtime", "modified", "created")


def is_url(path: str) -> bool:
    """Whether a backup source is a URL (``protocol://...``), not a local path."""
    head, sep, _ = path.partition("://")
    return bool(sep) and head.replace("+", "").replace("-", "").replace(".", "").isalnum()


def normal_url(url: str) -> str:
    """A source URL as a manifest lists it: without trailing slashes."""
    head, _, rest = url.partition("://")
    return f"{head}://{rest.rstrip('/')}"


@dataclass(frozen=True)
class ObjectSource:
    """One source URL, opened.

    Attributes
    ----------
    url : str
        The URL as the manifest lists it.
    fs : fsspec.AbstractFileSystem
        Its filesystem.
    path : str
        Its path on ``fs`` (``bucket/prefix``).
    parts : tuple of str
        The directories the snapshot holds it under (``("bucket", "prefix")``).
    is_file : bool
        Whether the URL names one object rather than a prefix.
    """

    url: str
    fs: Any
    path: str
    parts: tuple[str, ...]
    is_file: bool


def open_sources(urls: Sequence[str], options: Mapping[str, Any]) -> list[ObjectSource]:
    """Open each URL's filesystem with ``options`` and check that the URL exists.

    Raises
    ------
    SourceError
        A URL that names nothing, or whose filesystem cannot be opened or asked.
    ConfigError
        URLs of different protocols in one backup (their paths could collide in the tree).
    """
    import fsspec  # the archiver needs fsspec only for URL sources

    out: list[ObjectSource] = []
    for url in urls:
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
            # fsspec shares filesystem instances: a listing cached by an earlier backup in
            # this process would hide what changed since.
            fs.invalidate_cache()
            info = fs.info(path)
        except FileNotFoundError:
            raise SourceError(f"cannot read source {url}: no such object or prefix", path=url) from None
        except (ImportError, ValueError, TypeError, OSError) as e:
            raise SourceError(f"cannot read source {url}: {_one_line(e)}", path=url) from None
        parts = tuple(p for p in path.split("/") if p)
        try:
            for p in parts:
                validate_name(p)
        except SnapvaultError as e:
            raise SourceError(f"cannot back up source {url}: {e}", path=url) from None
        out.append(ObjectSource(url, fs, path, parts, info.get("type") == "file"))
    if len({tuple(s.fs.protocol) if isinstance(s.fs.protocol, tuple) else s.fs.protocol for s in out}) > 1:
        raise ConfigError("one backup takes URLs of one protocol; back up the others separately")
    return out


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _mtime_ns(info: Mapping[str, Any]) -> int:
    """The listing's modification time in ns since the epoch (0 when it gives none)."""
    for key in _TIMES:
        v = info.get(key)
        if v is None:
            continue
        if isinstance(v, datetime):
            if v.tzinfo is None:
                return 0  # a naive time means nothing certain
            return int(v.timestamp()) * 1_000_000_000 + v.microsecond * 1000
        if isinstance(v, int | float) and not isinstance(v, bool):
            return int(v * 1_000_000_000)
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                return _mtime_ns({key: datetime.fromisoformat(v.replace("Z", "+00:00"))})
    return 0


def _identity(info: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The object's identity as xattrs (sorted by name; empty when the listing gives none)."""
    found: dict[str, str] = {}
    for key, xattr in _IDENTITY:
        v = info.get(key)
        if v is None or v == "" or xattr in found:
            continue
        found[xattr] = base64.b64encode(str(v).encode("utf-8", "surrogateescape")).decode("ascii")
    return tuple(sorted(found.items()))


@dataclass
class _Object:
    fs: Any
    path: str
    url: str
    size: int
    mtime_ns: int
    xattrs: tuple[tuple[str, str], ...]


class ObjectWalker:
    """Builds the trees of one backup of URL sources.

    Parameters
    ----------
    sink : BlobSink
        Where blobs go.
    chunker : ChunkerParams
        How to cut objects.
    read_parent : callable
        Returns the nodes of a parent tree by hex ID.
    use_parent_shortcut : bool
        When False every object is read (a ``full`` backup).
    workers : int
        Reads in flight (at most 8): the next small objects of a directory, or the ranges of
        one large object. Memory held by reads stays below twice ``workers * part_size``.
    part_size : int
        Bytes per ranged read; an object of at most this many bytes is read in one request.
    progress, should_stop, on_file, consistency_retries
        As for :class:`~snapvault.archiver.walker.Walker`; a large object counts as changed
        while read when its listing differs after its ranges were read.
    larger_than : int, optional
        Objects of more bytes than this are left out.
    """

    def __init__(
        self,
        sink: BlobSink,
        chunker: ChunkerParams,
        read_parent: Callable[[str], list[Node]],
        *,
        use_parent_shortcut: bool = True,
        workers: int = 2,
        part_size: int = PART_SIZE,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_file: Callable[[str, int, bool], None] | None = None,
        consistency_retries: int | None = None,
        larger_than: int | None = None,
    ) -> None:
        self.sink = sink
        self.chunker = chunker
        self.read_parent = read_parent
        self.use_parent_shortcut = use_parent_shortcut
        self.workers = max(1, min(workers, 8))
        self._pool: ThreadPoolExecutor | None = None
        self.part_size = part_size
        self.progress = progress
        self.should_stop = should_stop
        self.on_file = on_file
        self.consistency_retries = consistency_retries
        self.larger_than = larger_than
        self.stats = WalkStats()

    # -- listing ---------------------------------------------------------------------------

    def _list(self, sources: Sequence[ObjectSource], flt: PathFilter) -> dict[tuple[str, ...], _Object]:
        """Every object below the sources, by its path in the snapshot."""
        objects: dict[tuple[str, ...], _Object] = {}
        for src in sources:
            try:
                # adlfs's find() of one object gives no details: one object is asked with info().
                listing = {src.path: src.fs.info(src.path)} if src.is_file else src.fs.find(src.path, detail=True)
            except (OSError, ValueError) as e:
                raise SourceError(f"cannot list source {src.url}: {_one_line(e)}", path=src.url) from None
            prefix = src.path.strip("/")
            for name, info in sorted(listing.items()):
                if info.get("type") != "file":
                    continue
                key = name.strip("/")
                rel = key[len(prefix) :].strip("/") if key.startswith(prefix) else key
                # Errors and progress name an object by the URL given plus its key below it.
                url = f"{src.url}/{rel}" if rel else src.url
                parts = tuple(key.split("/"))
                try:
                    for p in parts:
                        validate_name(p)
                except SnapvaultError as e:
                    self.stats.errors.append(FileError(path=url, error=f"object name cannot be a path: {e}"))
                    continue
                if len(parts) >= MAX_DEPTH:
                    self.stats.errors.append(FileError(path=url, error=f"nested deeper than {MAX_DEPTH} levels"))
                    continue
                if rel and _excluded(flt, rel):
                    continue
                size = int(info.get("size") or 0)
                if self.larger_than is not None and size > self.larger_than:
                    continue
                objects[parts] = _Object(src.fs, name, url, size, _mtime_ns(info), _identity(info))
        return objects

    # -- trees -----------------------------------------------------------------------------

    def backup(self, sources: Sequence[ObjectSource], flt: PathFilter, parent_tree: str | None) -> str:
        """Back up the objects below ``sources``; store the trees and return the root's hex ID."""
        objects = self._list(sources, flt)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="snapvault-source")
        try:
            return self._backup(sources, objects, parent_tree)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _backup(
        self, sources: Sequence[ObjectSource], objects: dict[tuple[str, ...], _Object], parent_tree: str | None
    ) -> str:
        files: dict[tuple[str, ...], dict[str, _Object]] = {(): {}}
        subdirs: dict[tuple[str, ...], set[str]] = {(): set()}
        for src in sources:  # an empty prefix is still recorded, as an empty directory
            _add_dirs(src.parts if not src.is_file else src.parts[:-1], files, subdirs)
        for parts, obj in objects.items():
            _add_dirs(parts[:-1], files, subdirs)
            files[parts[:-1]][parts[-1]] = obj
        for d, names in subdirs.items():
            for name in names & files[d].keys():
                # "a" and "a/b" both exist: a tree cannot hold a file and a directory of one name.
                obj = files[d].pop(name)
                self.stats.errors.append(FileError(path=obj.url, error="an object of this name is also a prefix"))
        parents = self._parent_nodes(sorted(files, key=len), parent_tree)
        trees: dict[tuple[str, ...], str] = {}
        for d in sorted(files, key=len, reverse=True):
            nodes = self._files([(obj, parents[d].get(name)) for name, obj in files[d].items()])
            nodes += [
                Node(name=name, type="dir", mode=_DIR_MODE, subtree=trees[(*d, name)])
                for name in subdirs[d]
                if (*d, name) in trees
            ]
            nodes.sort(key=lambda n: n.name)
            self.stats.dirs += 1 if d else 0
            tree = self._close(d, nodes, parents[d], sources)
            if tree is not None:
                trees[d] = tree
        return trees[()] if () in trees else self._store([])

    def _parent_nodes(
        self, dirs: list[tuple[str, ...]], parent_tree: str | None
    ) -> dict[tuple[str, ...], dict[str, Node]]:
        """The parent snapshot's nodes of each directory, top down ({} where it had none)."""
        out: dict[tuple[str, ...], dict[str, Node]] = {}
        for d in dirs:
            tree = parent_tree
            if d:
                above = out[d[:-1]].get(d[-1])
                tree = above.subtree if above is not None and above.type == "dir" else None
            out[d] = {}
            if tree is not None:
                try:
                    out[d] = {n.name: n for n in self.read_parent(tree)}
                except Exception:  # noqa: BLE001 - a damaged parent only costs the shortcut
                    out[d] = {}
        return out

    def _close(
        self, d: tuple[str, ...], nodes: list[Node], parent: dict[str, Node], sources: Sequence[ObjectSource]
    ) -> str | None:
        kept = {n.name for n in nodes}
        for name, gone in parent.items():
            if name not in kept and gone.type == "file" and _below_source(d, sources):
                self.stats.files_removed += 1
        raw = encode_tree(nodes)
        if len(raw) > MAX_TREE_BLOB:
            path = "/".join(d)
            error = f"prefix of {len(nodes)} entries left out: its tree would be over {MAX_TREE_BLOB} bytes"
            self.stats.errors.append(FileError(path=path, error=error))
            return None
        return self._store_raw(raw)

    def _store(self, nodes: list[Node]) -> str:
        return self._store_raw(encode_tree(nodes))

    def _store_raw(self, raw: bytes) -> str:
        bid, _ = self.sink.add(BlobType.TREE, raw)
        return bid.hex()

    # -- objects ---------------------------------------------------------------------------

    def _files(self, entries: list[tuple[_Object, Node | None]]) -> list[Node]:
        """The nodes of one directory's objects: unchanged ones from the parent, the others
        read, the next small ones fetched ahead on the pool while one is chunked."""
        nodes: list[Node] = []
        todo: list[tuple[_Object, Node | None]] = []
        for obj, parent in entries:
            if self.should_stop is not None and self.should_stop():
                raise Cancelled
            same = self._unchanged(obj, parent)
            if same is not None:
                nodes.append(same)
            else:
                todo.append((obj, parent))
        assert self._pool is not None
        ahead: deque[Future[bytes] | None] = deque()
        submitted = 0
        try:
            for i, (obj, parent) in enumerate(todo):
                while submitted < len(todo) and submitted < i + self.workers:
                    nxt = todo[submitted][0]
                    small = nxt.size <= self.part_size
                    ahead.append(self._pool.submit(nxt.fs.cat_file, nxt.path) if small else None)
                    submitted += 1
                node = self._file(obj, parent, ahead.popleft())
                if node is not None:
                    nodes.append(node)
        finally:
            for f in ahead:
                if f is not None:
                    f.cancel()
        return nodes

    def _unchanged(self, obj: _Object, parent: Node | None) -> Node | None:
        """The parent's node if it still describes the object (and its chunks are stored)."""
        if (
            parent is None
            or not self.use_parent_shortcut
            or not (obj.mtime_ns or obj.xattrs)
            or parent != self._node(obj)._replace(content=parent.content)
            or not all(self.sink.has(bytes.fromhex(c)) for c in parent.content)
        ):
            return None
        self.stats.files_unchanged += 1
        self.stats.total_bytes += parent.size
        if self.on_file is not None:
            self.on_file(obj.url, parent.size, True)
        return parent

    @staticmethod
    def _node(obj: _Object) -> Node:
        return Node(
            name=obj.path.rstrip("/").rsplit("/", 1)[-1],
            type="file",
            mode=_FILE_MODE,
            mtime_ns=obj.mtime_ns,
            size=obj.size,
            xattrs=obj.xattrs,
        )

    def _file(self, obj: _Object, parent: Node | None, fetched: Future[bytes] | None) -> Node | None:
        """Read an object (``fetched``: its bytes, already asked for) and return its node."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled
        try:
            content, size, obj = self._read_consistent(obj, fetched)
        except (OSError, ValueError) as e:
            self.stats.errors.append(FileError(path=obj.url, error=_one_line(e)))
            return None
        if parent is None or parent.type != "file":
            self.stats.files_new += 1
        elif parent.content == content:
            self.stats.files_unchanged += 1
        else:
            self.stats.files_changed += 1
        self.stats.total_bytes += size
        if self.on_file is not None:
            self.on_file(obj.url, size, False)
        return self._node(obj)._replace(content=content, size=size)

    def _read_consistent(self, obj: _Object, fetched: Future[bytes] | None) -> tuple[tuple[str, ...], int, _Object]:
        """Read an object; one read in several ranges is checked against its listing after."""
        tries = 0
        while True:
            content, size = self._read(obj, fetched)
            fetched = None
            if size != obj.size:
                self.stats.inconsistent.append(obj.url)
                return content, size, obj
            if size <= self.part_size:
                return content, size, obj  # one request: one version of the object
            info = obj.fs.info(obj.path)
            after = _Object(obj.fs, obj.path, obj.url, int(info.get("size") or 0), _mtime_ns(info), _identity(info))
            if (after.size, after.mtime_ns, after.xattrs) == (obj.size, obj.mtime_ns, obj.xattrs):
                return content, size, obj
            if self.consistency_retries is None or tries >= self.consistency_retries:
                self.stats.inconsistent.append(obj.url)
                return content, size, obj
            tries += 1
            self.stats.rereads += 1
            obj = after

    def _read(self, obj: _Object, fetched: Future[bytes] | None) -> tuple[tuple[str, ...], int]:
        add = self.sink.add
        if obj.size < self.chunker.min_size:
            data = fetched.result() if fetched is not None else obj.fs.cat_file(obj.path)
            self._count(len(data), obj.url)
            return ((add(BlobType.DATA, data)[0].hex(),) if data else ()), len(data)
        ids: list[str] = []
        total = 0
        chunker = StreamChunker(self.chunker)
        for piece in self._pieces(obj, fetched):
            total += len(piece)
            self._count(len(piece), obj.url)
            ids.extend(add(BlobType.DATA, chunk)[0].hex() for chunk in chunker.feed(piece))
            if self.should_stop is not None and self.should_stop():
                raise Cancelled
        ids.extend(add(BlobType.DATA, chunk)[0].hex() for chunk in chunker.finish())
        return tuple(ids), total

    def _pieces(self, obj: _Object, fetched: Future[bytes] | None) -> Iterator[bytes]:
        """The object's bytes in order: one request, or ranges read ``workers`` at a time."""
        if obj.size <= self.part_size:
            yield fetched.result() if fetched is not None else obj.fs.cat_file(obj.path)
            return
        assert self._pool is not None
        pending: deque[Future[bytes]] = deque()
        try:
            for start in range(0, obj.size, self.part_size):
                end = min(start + self.part_size, obj.size)
                pending.append(self._pool.submit(obj.fs.cat_file, obj.path, start=start, end=end))
                # At most ``workers`` ranges are held: memory stays workers * part_size.
                if len(pending) >= self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

    def _count(self, n: int, url: str) -> None:
        self.stats.bytes_read += n
        if self.progress is not None:
            self.progress(n, url)


def _add_dirs(
    parts: tuple[str, ...], files: dict[tuple[str, ...], dict[str, _Object]], subdirs: dict[tuple[str, ...], set[str]]
) -> None:
    """Record the directory ``parts`` and every directory above it."""
    for i in range(len(parts), 0, -1):
        d = parts[:i]
        if d in files:
            break
        files[d] = {}
        subdirs.setdefault(d, set())
        subdirs.setdefault(parts[: i - 1], set()).add(parts[i - 1])


def _below_source(d: tuple[str, ...], sources: Sequence[ObjectSource]) -> bool:
    """Whether directory ``d`` lies at or below a source (its entries are the source's data)."""
    return any(d[: len(s.parts)] == s.parts for s in sources if not s.is_file)


def _excluded(flt: PathFilter, rel: str) -> bool:
    """Whether an object, or a prefix above it, is excluded (``build/`` leaves out ``build/x``)."""
    parts = rel.split("/")
    return any(flt.excluded("/".join(parts[:i]), True) for i in range(1, len(parts))) or flt.excluded(rel, False)
