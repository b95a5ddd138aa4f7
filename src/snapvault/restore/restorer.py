"""``Restorer``: writes a snapshot back to a local directory, confined to that directory.

Confinement does not rely on checking path strings alone. Every name comes from a validated
tree (one component, not ``.`` or ``..``, no ``/`` or NUL), and every file system call is made
relative to an open directory descriptor with ``O_NOFOLLOW``: a symlink, whether restored
from the snapshot or already in the target, is never followed as a path component.

Damage does not stop a restore: a file whose data is missing or fails verification, or a
directory whose tree cannot be read, is listed in :attr:`RestoreResult.errors` and the rest is
restored. A file is written under a temporary name and renamed only once all of it verified,
so damaged bytes never appear under a final name.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import itertools
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from snapvault.errors import (
    ConfigError,
    IntegrityError,
    JobCancelled,
    ObjectNotFound,
    SnapshotNotFound,
    UnsafePathError,
)
from snapvault.jobs import Job, RestoreJob
from snapvault.pipeline.blob import open_blob
from snapvault.pipeline.index import BlobLocation
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.restore_plan import PlannedDir, ReadRun, plan_reads, select
from snapvault.pipeline.tree import Node
from snapvault.repository import Repository
from snapvault.repository.manifest import FileError, Manifest
from snapvault.repository.repo import pack_key
from snapvault.restore.fetch import PackWindows, read_ahead

__all__ = ["RestoreFileError", "RestoreResult", "Restorer", "local_target"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_TMP = ".sv-restore-"
# A URL's scheme, or a chain of them as fsspec writes it (``simplecache::s3://``).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(?:::[A-Za-z][A-Za-z0-9+.-]*)*://")


def local_target(target: str | os.PathLike[str]) -> str:
    """The local directory that a restore ``target`` names.

    Restores write to local directories only (for now). A target that starts with a URL
    scheme (``memory://x``, ``s3://bucket/p``, ``simplecache::s3://...``) is refused rather
    than taken as a relative path, which would make a folder ``memory:`` in the working
    directory. ``file:///path`` and ``file://localhost/path`` name the local ``/path``. A
    local folder whose name looks like a URL can be given as ``./memory://x``.

    Raises
    ------
    ConfigError
        If ``target`` is any other URL.
    """
    text = os.fspath(target)
    m = _URL.match(text)
    if m is None:
        return text
    if m.group(0).lower() == "file://":
        host, slash, path = text[len("file://") :].partition("/")
        if slash and host.lower() in ("", "localhost"):
            from urllib.parse import unquote

            return "/" + unquote(path)
    raise ConfigError(
        f"restore target {text!r} is a URL: restores write to a local directory only (give a path, or file:///path)"
    )


class RestoreFileError(FileError):
    """A path a restore did not restore, and why.

    Attributes
    ----------
    path : str
        The path inside the snapshot, as below the target (``home/me/a.txt``).
    error : str
        The reason, one line.
    kind : {"damaged", "failed", "skipped"}
        ``damaged``: its stored data (for a directory: its tree) is missing or fails
        verification; nothing was written under its name, and for a directory nothing below
        it. ``failed``: the target refused to create it (an OS error). ``skipped``: a type
        this restore does not create (a socket; a device unless run as root).
    type : str
        The entry's type: ``file``, ``dir``, ``symlink``, ``fifo``, ...
    pack_id, blob_id : str or None
        Where the damage is, in hex, when known.
    """

    kind: Literal["damaged", "failed", "skipped"] = "failed"
    type: str = "file"
    pack_id: str | None = None
    blob_id: str | None = None


@dataclass
class RestoreResult:
    """What a restore did.

    Attributes
    ----------
    snapshot_id : str
        The snapshot restored.
    target : str
        The absolute target directory.
    files, dirs, symlinks, hardlinks, other : int
        Entries restored, by kind (``files`` counts each file written once; further names
        of it are ``hardlinks``).
    bytes_written : int
        Bytes of the files restored.
    errors : list of RestoreFileError
        Each path not restored, with the reason; damaged files and unreadable directories
        among them.
    """

    snapshot_id: str
    target: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    other: int = 0
    bytes_written: int = 0
    errors: list[RestoreFileError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every selected path was restored (a ``skipped`` entry aside)."""
        return all(e.kind == "skipped" for e in self.errors)


class _DirHandle:
    """An open directory shared by tasks; closed when the last user lets go."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._refs = 1
        self._lock = threading.Lock()

    def acquire(self) -> _DirHandle:
        with self._lock:
            self._refs += 1
        return self

    def release(self) -> None:
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


class Restorer:
    """Restores snapshots from a repository.

    Parameters
    ----------
    repo : Repository
        The open repository.
    workers : int, optional
        Files restored at once; default the number of CPUs from a local repository (the work
        is decrypting, decompressing and copying into the page cache: more threads only add
        memory, 130 against 103 MiB on the benchmark tree) and twice that from an object store
        (where they also wait on requests).
    """

    def __init__(self, repo: Repository, *, workers: int | None = None) -> None:
        self.repo = repo
        cpus = max(2, os.cpu_count() or 2)
        self.workers = workers or (cpus if repo.store.capabilities.spool_dir else 2 * cpus)
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0

    def resolve(self, snapshot: str | Manifest | None, *, policy: str | None, at: datetime | None) -> Manifest:
        """Pick the snapshot a restore means: a reference, or a policy's latest at ``at``.

        Raises
        ------
        SnapshotNotFound
            If nothing matches.
        ConfigError
            If both a snapshot and a policy are given, or neither.
        """
        if (snapshot is None) == (policy is None):
            raise ConfigError("give a snapshot, or a policy (with an optional at=), not both")
        if snapshot is not None:
            if at is not None:
                raise ConfigError("at= selects within a policy; give policy= with it")
            return snapshot if isinstance(snapshot, Manifest) else self.repo.resolve(snapshot)
        if at is not None and at.tzinfo is None:
            raise ConfigError("at= must be timezone-aware")
        candidates = [m for m in self.repo.snapshots() if m.policy == policy and (at is None or m.time <= at)]
        if not candidates:
            when = f" at or before {at.isoformat()}" if at is not None else ""
            raise SnapshotNotFound(f"policy {policy!r} has no snapshot{when}")
        return candidates[-1]

    def restore(
        self,
        snapshot: str | Manifest | None = None,
        target: str | os.PathLike[str] | None = None,
        *,
        policy: str | None = None,
        at: datetime | None = None,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_plan: Callable[[int, int], None] | None = None,
        on_file: Callable[[str], None] | None = None,
        stop_on_error: bool = False,
    ) -> RestoreResult:
        """Restore a snapshot into ``target``.

        Damage does not stop the restore: each file whose data is missing or fails
        verification, and each directory whose tree cannot be read, is listed in the result's
        ``errors`` (kind ``damaged``) and everything else is restored. A damaged file is never
        written under its name (an existing file of that name is left as it was).

        Parameters
        ----------
        snapshot : Manifest or str, optional
            A manifest, full ID, unique prefix or ``latest``.
        target : path-like
            The local directory to restore into (created if missing); see
            :func:`local_target` for URLs.
        policy : str, optional
            Instead of ``snapshot``: restore the latest snapshot of this policy taken at or
            before ``at`` (point-in-time restore; without ``at``, its latest).
        at : datetime, optional
            Timezone-aware point in time, with ``policy``.
        include, exclude : iterable of str
            gitignore-style patterns over paths inside the snapshot (``home/me/docs/a.md``).
        progress : callable, optional
            Called as ``progress(nbytes, path)`` as file bytes are written, and once for a
            damaged file with its bytes not written: the calls add up to ``on_plan``'s bytes.
        should_stop : callable, optional
            Polled between files and reads; returning True stops the restore and raises
            JobCancelled. No file is ever left half-written under its final name.
        on_plan : callable, optional
            Called once as ``on_plan(files, bytes)`` with the totals to restore: the files to
            write (a hardlinked file once) and their bytes.
        on_file : callable, optional
            Called with the path of each file counted in ``on_plan`` once it is done:
            restored, or given up on as damaged (then it is in ``errors``).
        stop_on_error : bool
            Raise :class:`IntegrityError` at the first damage instead of going on.

        Raises
        ------
        IntegrityError
            If the snapshot's root tree cannot be read (nothing can be restored), or, with
            ``stop_on_error``, at the first damage; ``.path`` names the file or directory.
        UnsafePathError
            If the snapshot holds a name that would leave the target: never a listed error.
        ConfigError
            If ``target`` is missing or a URL (see :func:`local_target`); nothing is written.
        """
        if target is None:
            raise ConfigError("restore needs a target directory")
        target = local_target(target)
        m = self.resolve(snapshot, policy=policy, at=at)
        flt = PathFilter(include=include, exclude=exclude)
        result = RestoreResult(snapshot_id=m.id, target=os.path.abspath(target))

        def unreadable(node: Node, rel: str, e: IntegrityError) -> None:
            if stop_on_error:
                raise IntegrityError(
                    f"cannot read directory {rel}: {e}",
                    path=rel,
                    pack_id=e.pack_id,
                    blob_id=node.subtree,
                    snapshot_id=m.id,
                ) from None
            result.errors.append(
                RestoreFileError(
                    path=rel,
                    error=f"directory cannot be read: {e}",
                    kind="damaged",
                    type="dir",
                    pack_id=e.pack_id,
                    blob_id=node.subtree,
                )
            )

        plan = select(self._read_tree(m.tree), self._read_tree, flt, unreadable=unreadable)
        totals = _plan_totals(plan)
        if on_plan is not None:
            on_plan(*totals)
        os.makedirs(target, exist_ok=True)
        job = _RestoreJob(
            self, result, progress, should_stop, on_file, total_bytes=totals[1], stop_on_error=stop_on_error
        )
        root = _DirHandle(os.open(target, os.O_RDONLY | os.O_DIRECTORY))
        try:
            job.run(plan, root)
        finally:
            root.release()
        # Found by threads in no set order; listed in path order, the same on every run.
        result.errors.sort(key=lambda e: e.path)
        if should_stop is not None and should_stop():
            raise JobCancelled(f"restore cancelled after {result.files} files; no partial file was left")
        return result

    def submit(
        self,
        snapshot: str | Manifest | None = None,
        target: str | os.PathLike[str] | None = None,
        *,
        callback: Any = None,
        **options: Any,
    ) -> RestoreJob:
        """Start :meth:`restore` on a background thread and return its job.

        ``job.restore_type`` is ``point-in-time`` when ``at=`` is given, ``selective`` with
        include or exclude patterns, else ``full``. ``callback`` is an fsspec ``Callback``.
        """

        def work(job: Job[Any]) -> RestoreResult:
            return self.restore(
                snapshot,
                target,
                progress=job.advance,
                should_stop=lambda: job.cancelled,
                on_plan=job.set_totals,
                on_file=lambda path: job.advance(0, path, files=1),
                **options,
            )

        job = RestoreJob(work, callback=callback)
        if options.get("at") is not None:
            job.restore_type = "point-in-time"
        elif options.get("include") or options.get("exclude"):
            job.restore_type = "selective"
        job.start()
        return job

    def _read_tree(self, tree_id: str) -> list[Node]:
        try:
            return self.repo.read_tree(tree_id)
        except ObjectNotFound as e:
            # A tree in a pack that is gone is damage, as one in an altered pack is.
            pack = (e.key or "").rsplit("/", 1)[-1] or None
            raise IntegrityError(f"tree {tree_id[:16]}: its pack is missing", pack_id=pack, blob_id=tree_id) from None

    async def arestore(
        self, snapshot: str | Manifest | None = None, target: Any = None, **options: Any
    ) -> RestoreResult:
        """Async form of :meth:`restore`: runs it in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.restore, snapshot, target, **options)


def _plan_totals(plan: PlannedDir) -> tuple[int, int]:
    """Files to write and their bytes: a hardlinked file once, as the restore writes it once
    (same rule as ``_RestoreJob._dir_contents``)."""
    files = nbytes = 0
    linked: set[tuple[int, int]] = set()
    stack = [plan]
    while stack:
        d = stack.pop()
        for n, _ in d.files:
            if n.links > 1 and n.inode:
                key = (n.dev, n.inode)
                if key in linked:
                    continue
                linked.add(key)
            files += 1
            nbytes += n.size
        stack.extend(d.dirs)
    return files, nbytes


# A batch of small files is read as one span of its pack: at most this many bytes, and a gap
# of more than _MAX_GAP between neighbours starts a new batch (reading it would waste more than
# a second request costs).
_MAX_SPAN = 16 << 20
# Object stores: ranges of a large file fetched at once, and their size.
_AHEAD = 2
_REMOTE_RUN = 8 << 20
_WINDOW = 16 << 20
_MAX_GAP = 1 << 20


_Located = tuple[BlobLocation, Node, str]


def _batches(group: list[_Located]) -> list[list[_Located]]:
    """Split one pack's small files into spans worth reading in one request each."""
    out: list[list[_Located]] = []
    start = end = -1
    for item in sorted(group, key=lambda x: x[0].offset):
        loc = item[0]
        if out and loc.offset - end <= _MAX_GAP and loc.offset + loc.length - start <= _MAX_SPAN:
            out[-1].append(item)
            end = max(end, loc.offset + loc.length)
        else:
            out.append([item])
            start, end = loc.offset, loc.offset + loc.length
    return out


_tmp_counter = itertools.count()


def _temp_name() -> str:
    # Unique within this process; O_EXCL turns a clash with a stale file into an error, never
    # an overwrite. Drawing random bytes per file cost more than the file's own write.
    return f"{_TMP}{os.getpid()}-{next(_tmp_counter)}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _RestoreJob:
    def __init__(
        self,
        restorer: Restorer,
        result: RestoreResult,
        progress: Callable[[int, str], None] | None,
        should_stop: Callable[[], bool] | None,
        on_file: Callable[[str], None] | None = None,
        *,
        total_bytes: int,
        stop_on_error: bool,
    ) -> None:
        self.repo = restorer.repo
        self.on_file = on_file
        self.as_root = restorer._as_root
        self.workers = restorer.workers
        self.result = result
        self.progress = progress
        self.should_stop = should_stop
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.stop_on_error = stop_on_error
        self.links: dict[tuple[int, int], str] = {}
        self.pending_links: list[tuple[str, str]] = []
        # Files given up on as damaged (their hardlinks go with them), and packs found gone,
        # which are not asked for again file after file.
        self.damaged: set[str] = set()
        self.missing_packs: set[bytes] = set()
        self.slots = threading.BoundedSemaphore(self.workers * 2)
        # On an object store a large file's ranges are fetched a few at a time (request
        # latency, not bandwidth, bounds one stream); a local store reads them in order.
        self.fetcher: ThreadPoolExecutor | None = None
        self.windows: PackWindows | None = None
        if self.repo.store.capabilities.spool_dir is None:
            self.fetcher = ThreadPoolExecutor(self.workers, thread_name_prefix="sv-fetch")
            # Files of neighbouring directories share packs: read each stretch of a pack once.
            # Not for a restore smaller than a window (a few files picked out of a snapshot),
            # which would download far more than it writes.
            span = min(self.repo.config.pack_size, _WINDOW)
            if total_bytes >= span:
                self.windows = PackWindows(self._get_range, span=span, slots=self.workers + 1)

    def stopped(self) -> bool:
        return self.error is not None or (self.should_stop is not None and self.should_stop())

    def run(self, plan: PlannedDir, root: _DirHandle) -> None:
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="sv-restore") as pool:
                try:
                    self._dir_contents(pool, plan, root)
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the pool drains
                    if self.error is None:
                        self.error = e
        finally:
            if self.fetcher is not None:
                self.fetcher.shutdown(wait=True, cancel_futures=True)
        if self.error is not None:
            raise self.error
        if self.stopped():
            # Cancelled: directories below may never have been made; the caller raises.
            return
        for src, dst in self.pending_links:
            if src in self.damaged:
                self._record(RestoreFileError(path=dst, error=f"a hardlink of {src}, which is damaged", kind="damaged"))
            else:
                self._hardlink(root.fd, src, dst)
        self._dir_metadata(plan, root.fd)

    def _record(self, error: RestoreFileError) -> None:
        with self.lock:
            self.result.errors.append(error)

    # -- phase 1: directories, then files on the pool ----------------------------------------

    def _dir_contents(self, pool: ThreadPoolExecutor, d: PlannedDir, handle: _DirHandle) -> None:
        # Single-chunk files of one directory are usually stored side by side in one pack:
        # fetch each pack's span once for all of them (on an object store, one request instead
        # of one per file).
        small: dict[bytes, list[_Located]] = {}
        for node, rel in d.files:
            if self.stopped():
                return
            key = (node.dev, node.inode)
            if node.links > 1 and node.inode:
                with self.lock:
                    first = self.links.get(key)
                    if first is None:
                        self.links[key] = rel
                if first is not None:
                    self.pending_links.append((first, rel))
                    continue
            if len(node.content) == 1:
                try:
                    loc = self.repo.locate(bytes.fromhex(node.content[0]))
                except IntegrityError as e:
                    self._file_damaged(node, rel, e, 0)
                    continue
                small.setdefault(loc.pack_id, []).append((loc, node, rel))
                continue
            self._submit(pool, self._file, handle, node, rel)
        for pack_id, group in small.items():
            for batch in _batches(group):
                self._submit(pool, self._files_from_pack, handle, pack_id, batch)
        for node, rel in d.others:
            self._special(handle.fd, node, rel)
        for sub in d.dirs:
            if self.stopped():
                return
            assert sub.node is not None
            fd = _open_dir(handle.fd, sub.node.name, create=True)
            self.result.dirs += 1
            child = _DirHandle(fd)
            try:
                self._dir_contents(pool, sub, child)
            finally:
                child.release()

    def _task_done(self, fut: Future[None]) -> None:
        self.slots.release()
        exc = fut.exception()
        if exc is not None:
            with self.lock:
                if self.error is None:
                    self.error = exc

    def _submit(self, pool: ThreadPoolExecutor, fn: Callable[..., None], handle: _DirHandle, *args: Any) -> None:
        self.slots.acquire()
        fut = pool.submit(fn, handle.acquire(), *args)
        fut.add_done_callback(self._task_done)

    def _get_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        return self.repo.store.get_range(pack_key(pack_id), offset, length)

    def _fetch(self, pack_id: bytes, offset: int, length: int) -> bytes | memoryview:
        """A range of a pack; a missing or short pack is damage (IntegrityError)."""
        if pack_id in self.missing_packs:
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is missing", pack_id=pack_id.hex())
        try:
            if self.windows is not None:
                data = self.windows.read(pack_id, offset, length)
            else:
                data = self._get_range(pack_id, offset, length)
        except ObjectNotFound:
            self.missing_packs.add(pack_id)
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is missing", pack_id=pack_id.hex()) from None
        if len(data) != length:
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is truncated", pack_id=pack_id.hex())
        return data

    def _files_from_pack(self, handle: _DirHandle, pack_id: bytes, batch: list[_Located]) -> None:
        try:
            if self.stopped():
                return
            start = batch[0][0].offset
            end = max(loc.offset + loc.length for loc, _, _ in batch)
            prefetched: dict[bytes, memoryview] | None = None
            try:
                view = memoryview(self._fetch(pack_id, start, end - start))
            except IntegrityError:
                # The span is gone or cut short: read file by file, so that each file before
                # the cut is still restored and each other one names its own damage.
                pass
            else:
                prefetched = {
                    bytes.fromhex(n.content[0]): view[loc.offset - start : loc.offset - start + loc.length]
                    for loc, n, _ in batch
                }
            for _, node, rel in batch:
                if self.stopped():
                    return
                self._write_file(handle.fd, node, rel, prefetched)
        finally:
            handle.release()

    def _file(self, handle: _DirHandle, node: Node, rel: str) -> None:
        try:
            if not self.stopped():
                self._write_file(handle.fd, node, rel)
        finally:
            handle.release()

    def _write_file(self, dfd: int, node: Node, rel: str, prefetched: dict[bytes, memoryview] | None = None) -> None:
        tmp = _temp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
        ok = False
        try:
            written = self._write_content(fd, node, rel, prefetched)
            if written is None:
                return
            self._apply_fd_metadata(fd, node)
            os.rename(tmp, node.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            ok = True
        finally:
            os.close(fd)
            if not ok:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dfd)
        with self.lock:
            self.result.files += 1
            self.result.bytes_written += written
        if self.on_file is not None:
            self.on_file(rel)

    def _write_content(
        self, fd: int, node: Node, rel: str, prefetched: dict[bytes, memoryview] | None = None
    ) -> int | None:
        """Write a file's verified chunks to ``fd``; None if the restore was stopped or the
        file is damaged (then it is recorded, or raised with ``stop_on_error``)."""
        written = 0
        ids = [bytes.fromhex(c) for c in node.content]
        try:
            for run, data in self._run_data(ids, prefetched):
                view = memoryview(data)
                for bid, loc in run.blobs:
                    start = loc.offset - run.offset
                    try:
                        plain = open_blob(
                            self.repo.sealer,
                            self.repo.keys.id_key,
                            loc.type,
                            bid,
                            view[start : start + loc.length],
                            loc.raw_length,
                        )
                    except IntegrityError as e:
                        raise IntegrityError(
                            f"blob {bid.hex()[:16]} in pack {run.pack_id.hex()[:16]}: {e}",
                            pack_id=run.pack_id.hex(),
                            blob_id=bid.hex(),
                        ) from None
                    _write_all(fd, plain)
                    written += len(plain)
                    if self.progress is not None:
                        self.progress(len(plain), rel)
                if self.stopped():
                    return None
        except IntegrityError as e:
            self._file_damaged(node, rel, e, written)
            return None
        return written

    def _file_damaged(self, node: Node, rel: str, e: IntegrityError, written: int) -> None:
        """Give up on a file whose data is damaged: raise with ``stop_on_error``, else list it
        and count it done (its unwritten bytes too), so progress still meets the totals."""
        if self.stop_on_error:
            raise IntegrityError(
                f"cannot restore {rel}: {e}",
                path=rel,
                blob_id=e.blob_id,
                pack_id=e.pack_id,
                snapshot_id=self.result.snapshot_id,
            ) from None
        error = RestoreFileError(path=rel, error=str(e), kind="damaged", pack_id=e.pack_id, blob_id=e.blob_id)
        with self.lock:
            self.result.errors.append(error)
            self.damaged.add(rel)
        if self.progress is not None and node.size > written:
            self.progress(node.size - written, rel)
        if self.on_file is not None:
            self.on_file(rel)

    def _run_data(
        self, ids: list[bytes], prefetched: dict[bytes, memoryview] | None
    ) -> Iterator[tuple[ReadRun, bytes | memoryview]]:
        """A file's read runs, in order, each with its bytes."""
        if self.fetcher is None or len(ids) < 2:
            for run in plan_reads(ids, self.repo.locate):
                cached = prefetched.get(run.blobs[0][0]) if prefetched and len(run.blobs) == 1 else None
                yield run, cached if cached is not None else self._fetch(run.pack_id, run.offset, run.length)
            return
        # Smaller runs, _AHEAD of them in flight: at most (_AHEAD + 1) * _REMOTE_RUN bytes per
        # file being restored.
        runs = plan_reads(ids, self.repo.locate, max_run=_REMOTE_RUN)
        yield from read_ahead(runs, self._fetch, self.fetcher, _AHEAD)

    def _apply_fd_metadata(self, fd: int, node: Node) -> None:
        if self.as_root:
            with contextlib.suppress(OSError):
                os.fchown(fd, node.uid, node.gid)
        os.fchmod(fd, node.mode & 0o7777)
        for name, value in node.xattrs:
            with contextlib.suppress(OSError):
                os.setxattr(fd, name, base64.b64decode(value))
        os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))

    def _special(self, dfd: int, node: Node, rel: str) -> None:
        tmp = _temp_name()
        try:
            if node.type == "symlink":
                assert node.target is not None
                os.symlink(node.target, tmp, dir_fd=dfd)
                self.result.symlinks += 1
            elif node.type == "fifo":
                os.mkfifo(tmp, node.mode & 0o7777, dir_fd=dfd)
                self.result.other += 1
            elif node.type in ("chardev", "blockdev") and self.as_root:
                kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
                os.mknod(tmp, kind | (node.mode & 0o7777), node.rdev, dir_fd=dfd)
                self.result.other += 1
            else:
                self._record(
                    RestoreFileError(path=rel, error=f"{node.type} not restored", kind="skipped", type=node.type)
                )
                return
            if self.as_root:
                with contextlib.suppress(OSError):
                    os.chown(tmp, node.uid, node.gid, dir_fd=dfd, follow_symlinks=False)
            if node.type != "symlink":
                os.chmod(tmp, node.mode & 0o7777, dir_fd=dfd)
            with contextlib.suppress(NotImplementedError, OSError):
                os.utime(tmp, ns=(node.mtime_ns, node.mtime_ns), dir_fd=dfd, follow_symlinks=False)
            os.rename(tmp, node.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            self._record(RestoreFileError(path=rel, error=e.strerror or str(e), type=node.type))

    # -- phase 2: hardlinks ---------------------------------------------------------------

    def _open_parent(self, root_fd: int, rel: str) -> tuple[int, str]:
        parts = rel.split("/")
        fd = os.dup(root_fd)
        try:
            for p in parts[:-1]:
                nfd = _open_dir(fd, p, create=False)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def _hardlink(self, root_fd: int, src: str, dst: str) -> None:
        sfd, sname = self._open_parent(root_fd, src)
        try:
            dfd, dname = self._open_parent(root_fd, dst)
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dname, dir_fd=dfd)
                os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                self.result.hardlinks += 1
            except OSError as e:
                self._record(RestoreFileError(path=dst, error=e.strerror or str(e)))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    # -- phase 3: directory metadata, deepest first -----------------------------------------

    def _dir_metadata(self, d: PlannedDir, fd: int) -> None:
        for sub in d.dirs:
            assert sub.node is not None
            cfd = _open_dir(fd, sub.node.name, create=False)
            try:
                self._dir_metadata(sub, cfd)
                node = sub.node
                if self.as_root:
                    with contextlib.suppress(OSError):
                        os.fchown(cfd, node.uid, node.gid)
                for name, value in node.xattrs:
                    with contextlib.suppress(OSError):
                        os.setxattr(cfd, name, base64.b64decode(value))
                os.fchmod(cfd, node.mode & 0o7777)
                os.utime(cfd, ns=(node.mtime_ns, node.mtime_ns))
            finally:
                os.close(cfd)
