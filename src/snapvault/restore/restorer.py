"""``Restorer``: writes a snapshot back to a local directory or an fsspec target, confined to it.

A restore is three parts, and this module wires them: the plan
(:mod:`snapvault.pipeline.restore_plan`: what to restore, which files are written and which
are hardlinks, which are read together), the reads (:class:`~snapvault.restore.fetch.PackReader`)
and the confined writer (:class:`~snapvault.restore.writer.TargetWriter`, or for a URL
:class:`~snapvault.restore.fsspec_target.FsspecWriter`: the only code that touches the target).
Here the plan is walked, reads and writes go to a thread pool, and the
:class:`RestoreResult` is collected.

Damage does not stop a restore: a file whose data is missing or fails verification, or a
directory whose tree cannot be read, is listed in :attr:`RestoreResult.errors` and the rest is
restored. A file is written under a temporary name and renamed only once all of it verified,
so damaged bytes never appear under a final name.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from snapvault.errors import ConfigError, IntegrityError, JobCancelled, ObjectNotFound, SnapshotNotFound
from snapvault.jobs import Job, RestoreJob, run_cancellable
from snapvault.pipeline.blob import MAX_DATA_BLOB
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.restore_plan import (
    FileRead,
    PlannedDir,
    ReadRun,
    SpanRead,
    WritePlan,
    plan_dir,
    plan_writes,
    select,
)
from snapvault.pipeline.tree import Node
from snapvault.repository.manifest import Manifest
from snapvault.restore.fetch import PackReader
from snapvault.restore.fsspec_target import FsspecWriter, Upload, open_target
from snapvault.restore.result import RestoreFileError, RestoreResult
from snapvault.restore.resume import drop_existing
from snapvault.restore.source import RestoreSource
from snapvault.restore.writer import ENTRY_ERRNOS, DirHandle, NewFile, TargetWriter, local_target

__all__ = ["RestoreFileError", "RestoreResult", "Restorer", "local_target"]


class Restorer:
    """Restores snapshots from a repository.

    Parameters
    ----------
    repo : RestoreSource
        The open repository (a ``snapvault.Repository``, or anything with the members of
        :class:`~snapvault.restore.source.RestoreSource`).
    workers : int, optional
        Files restored at once; default the number of CPUs from a local repository (the work
        is decrypting, decompressing and copying into the page cache: more threads only add
        memory, 130 against 103 MiB on the benchmark tree) and twice that from an object store
        (where they also wait on requests).
    """

    def __init__(self, repo: RestoreSource, *, workers: int | None = None) -> None:
        self.repo = repo
        cpus = max(2, os.cpu_count() or 2)
        self.workers = workers or (cpus if repo.spool_dir else 2 * cpus)
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0

    def resolve(
        self,
        snapshot: str | Manifest | None,
        *,
        policy: str | None,
        at: datetime | None,
        hostname: str | None = None,
        paths: Iterable[str | os.PathLike[str]] | None = None,
    ) -> Manifest:
        """Pick the snapshot a restore means: a reference, or the latest at or before ``at``.

        - ``snapshot``: that snapshot (``policy``, ``at``, ``hostname`` and ``paths`` must be
          left out).
        - ``policy``: the policy's latest snapshot, or its latest taken at or before ``at``;
          ``hostname`` and ``paths``, if given, narrow the choice further.
        - ``at`` alone: the latest snapshot taken at or before ``at`` of the host
          ``hostname`` (default this machine's name) and, if ``paths`` are given, of exactly
          those source paths (as a backup picks its parent), whatever made it.

        Raises
        ------
        SnapshotNotFound
            If nothing matches.
        ConfigError
            If a snapshot is given with any of the others, if none of snapshot, policy and
            ``at`` is given, or if ``at`` is naive (no timezone).
        """
        if snapshot is not None:
            if policy is not None or at is not None or hostname is not None or paths is not None:
                raise ConfigError("give a snapshot, or a policy and/or at= (with hostname=, paths=), not both")
            return snapshot if isinstance(snapshot, Manifest) else self.repo.resolve(snapshot)
        if policy is None and at is None:
            raise ConfigError("give a snapshot, a policy, or a point in time (at=)")
        if at is not None and at.utcoffset() is None:
            raise ConfigError(f"at= must be timezone-aware, not {at.isoformat()}")
        host = hostname if hostname is not None or policy is not None else _hostname()
        wanted = None if paths is None else sorted({os.path.normpath(os.path.abspath(p)) for p in paths})
        candidates = [
            m
            for m in self.repo.snapshots()
            if (policy is None or m.policy == policy)
            and (at is None or m.time <= at)
            and (host is None or m.hostname == host)
            and (wanted is None or sorted({os.path.normpath(p) for p in m.paths}) == wanted)
        ]
        if not candidates:
            raise SnapshotNotFound(_nothing_found(policy, at, host, wanted))
        # Newest by time (the listing is oldest first, but a clock set back must not fool us).
        return max(reversed(candidates), key=lambda m: m.time)

    def restore(
        self,
        snapshot: str | Manifest | None = None,
        target: str | os.PathLike[str] | None = None,
        *,
        target_options: Mapping[str, Any] | None = None,
        policy: str | None = None,
        at: datetime | None = None,
        hostname: str | None = None,
        paths: Iterable[str | os.PathLike[str]] | None = None,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_plan: Callable[[int, int], None] | None = None,
        on_file: Callable[[str], None] | None = None,
        stop_on_error: bool = False,
        devices: bool = False,
        setuid: bool = False,
        skip_existing: bool = True,
        verify_existing: bool = False,
        numeric_owner: bool = False,
        sparse: bool = True,
        callback: Any = None,
        executor: Any = None,
    ) -> RestoreResult:
        """Restore a snapshot into ``target``.

        Damage does not stop the restore: each file whose data is missing or fails
        verification, and each directory whose tree cannot be read, is listed in the result's
        ``errors`` (kind ``damaged``) and everything else is restored. A damaged file is never
        written under its name (an existing file of that name is left as it was). So is a file
        whose stored size and content disagree: its chunks hold more or fewer bytes than its
        size, or it names a blob that is not file data.

        Parameters
        ----------
        snapshot : Manifest or str, optional
            A manifest, full ID, unique prefix or ``latest``.
        target : path-like
            The local directory to restore into (created if missing; ``file:///path`` too),
            or any other fsspec URL (``s3://bucket/prefix``, ``az://container/prefix``,
            ``memory://x``): files are written through that filesystem, in parallel, each
            whole or not at all, and what it cannot hold (mode, owner, mtime, xattrs,
            symlinks, FIFOs, devices, hardlinks, empty directories on object stores) is
            counted per kind in ``metadata_dropped`` (see
            :class:`~snapvault.restore.fsspec_target.FsspecWriter`).
        target_options : mapping, optional
            fsspec storage options for a URL ``target`` (credentials, ``endpoint_url``, ...).
        policy : str, optional
            Instead of ``snapshot``: restore the latest snapshot of this policy taken at or
            before ``at`` (point-in-time restore; without ``at``, its latest).
        at : datetime, optional
            Timezone-aware point in time (a naive one is refused). With ``policy``, within
            its snapshots; alone, the latest snapshot at or before it of ``hostname`` and
            ``paths`` (see :meth:`resolve`).
        hostname : str, optional
            With ``at`` alone, the host whose snapshots are chosen from; default this
            machine's name. With ``policy``, only that host's snapshots of the policy.
        paths : iterable of path-like, optional
            Only snapshots of exactly these source paths (made absolute), as a backup picks
            its parent; default any.
        include, exclude : iterable of str
            gitignore-style patterns over paths inside the snapshot (``home/me/docs/a.md``).
        progress : callable, optional
            Called as ``progress(nbytes, path)`` as file bytes are written, and once for a
            damaged file with its bytes not written: the calls add up to ``on_plan``'s bytes.
        skip_existing, verify_existing : bool
            Local target only: skip files already there with the snapshot's size and mtime
            (``verify_existing=True``: with identical content, hashed chunk by chunk), so an
            interrupted restore resumes; counted in ``files_skipped``. See
            :mod:`snapvault.restore.resume`.
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
        devices : bool
            Make character and block device nodes (as root only). Without it each is listed
            in ``errors`` as ``skipped`` and counted in ``devices_skipped``: a hostile
            snapshot must not plant a world-writable device in the target.
        setuid : bool
            Keep the setuid and setgid bits of files, FIFOs and devices. Without it they are
            dropped (the other mode bits, the sticky bit included, are kept) and each entry
            that lost them is counted in ``setuid_dropped``. A directory keeps its setgid bit.
        numeric_owner : bool
            As root, give entries their stored numeric user and group IDs. Without it each is
            mapped by name, as tar does: an entry whose stored user (group) name exists on this
            machine gets that name's ID here, any other its stored ID. Not as root, entries
            belong to the user restoring, either way.
        sparse : bool
            Leave runs of zeros in files as holes, as restic does: every run of zeros that
            covers whole blocks of the target's file system is skipped over instead of
            written (a file that had holes comes back with them; so does a file of zeros
            that had none). The content is the same either way; ``bytes_written`` and progress
            count the file's full length. False writes every byte (a fully allocated file).
        callback : fsspec.callbacks.Callback, optional
            ``set_size`` with the bytes to restore (``on_plan``'s, before the first file is
            written), then ``relative_update`` as ``progress`` is called (bytes written, and
            a damaged file's bytes not written); once the restore completes ``value == size``.
        executor : distributed.Client, optional
            Spread the file restores over the workers of this Dask cluster (the ``dask``
            extra): each directory's files are restored by a worker, into an fsspec URL or a
            local directory every worker mounts at the same path; see
            :func:`snapvault.distributed.distributed_restore` and docs/howto/dask.md. Takes
            neither ``include``, ``on_plan``, ``on_file``, ``stop_on_error`` nor ``devices``
            (``ConfigError``).

        Raises
        ------
        IntegrityError
            If the snapshot's root tree cannot be read (nothing can be restored), or, with
            ``stop_on_error``, at the first damage; ``.path`` names the file or directory.
        UnsafePathError
            If the snapshot holds a name that would leave the target: never a listed error.
        ConfigError
            If ``target`` is missing or cannot be opened, or ``target_options`` are given for
            a local directory; nothing is written.
        StorageError
            If an fsspec target fails (the restore stops; no file is half-written).
        """
        if target is None:
            raise ConfigError("restore needs a target directory")
        if executor is not None:
            if list(include) or on_plan or on_file or stop_on_error or devices:
                raise ConfigError("a restore on Dask takes no include, on_plan, on_file, stop_on_error or devices")
            # Scale-out is a plugin above this layer (it drives Restorers on the workers):
            # it is imported by name only when asked for, the one late-bound edge of the
            # layer map (docs/design.md).
            plugin = importlib.import_module("snapvault.distributed")
            chosen = self.resolve(snapshot, policy=policy, at=at, hostname=hostname, paths=paths)
            result: RestoreResult = plugin.distributed_restore(
                self.repo,
                chosen,
                target,
                executor,
                target_options=target_options,
                exclude=exclude,
                callback=callback,
                progress=progress,
                should_stop=should_stop,
                skip_existing=skip_existing,
                verify_existing=verify_existing,
                sparse=sparse,
                numeric_owner=numeric_owner,
                setuid=setuid,
            )
            return result
        where = open_target(target, target_options)
        m = self.resolve(snapshot, policy=policy, at=at, hostname=hostname, paths=paths)
        # A handle loads its index once; a snapshot written since (by another process or
        # handle) needs the index files written with it.
        self.repo.refresh_index()
        flt = PathFilter(include=include, exclude=exclude)
        url = where.url if isinstance(where, FsspecWriter) else None
        result = RestoreResult(snapshot_id=m.id, target=url or os.path.abspath(str(where)))

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
        # Before the totals: a declared size its chunks cannot hold (2^62 bytes in one chunk)
        # must not reach them.
        for node, rel in _drop_oversized(plan):
            error = IntegrityError(f"size of {node.size} bytes is more than its {len(node.content)} chunks can hold")
            if stop_on_error:
                raise IntegrityError(f"cannot restore {rel}: {error}", path=rel, snapshot_id=m.id)
            result.errors.append(RestoreFileError(path=rel, error=str(error), kind="damaged"))
        if skip_existing and url is None:
            result.files_skipped = drop_existing(
                plan,
                result.target,
                verify=verify_existing,
                locate=self.repo.locate,
                blob_id=self.repo.blob_id,
            )
        writes = plan_writes(plan)
        progress, finish = _metered(callback, writes.bytes, progress)
        if on_plan is not None:
            on_plan(writes.files, writes.bytes)
        writer: TargetWriter | FsspecWriter
        if isinstance(where, FsspecWriter):
            writer = where
        else:
            writer = TargetWriter(
                where,
                as_root=self._as_root,
                devices=devices,
                setuid=setuid,
                numeric_owner=numeric_owner,
                sparse=sparse,
            )
        try:
            job = _RestoreJob(self, result, writes, writer, progress, should_stop, on_file, stop_on_error=stop_on_error)
            job.run(plan)
        finally:
            writer.close()
        result.dirs, result.symlinks, result.other = writer.dirs, writer.symlinks, writer.other
        result.hardlinks = writer.hardlinks
        result.setuid_dropped = writer.setuid_dropped
        if isinstance(writer, FsspecWriter):
            result.metadata_dropped = dict(sorted(writer.metadata_dropped.items()))
        # Found by threads in no set order; listed in path order, the same on every run.
        result.errors.sort(key=lambda e: e.path)
        if should_stop is not None and should_stop():
            raise JobCancelled(f"restore cancelled after {result.files} files; no partial file was left")
        finish()
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
        """Async form of :meth:`restore`, run in a worker thread.

        Cancelling the task that awaits it cancels the restore: it stops between files and
        reads, the worker threads have ended, and then :class:`asyncio.CancelledError` is
        raised. The target is left partly restored (no file half-written under its final
        name); the repository is only read. A ``should_stop`` given in ``options`` is still
        obeyed (then JobCancelled is raised).
        """
        given = options.pop("should_stop", None)

        def work(stopping: Callable[[], bool]) -> RestoreResult:
            def should_stop() -> bool:
                return stopping() or (given is not None and bool(given()))

            return self.restore(snapshot, target, should_stop=should_stop, **options)

        return await run_cancellable(work)


def _metered(
    callback: Any, total: int, progress: Callable[[int, str], None] | None
) -> tuple[Callable[[int, str], None] | None, Callable[[], None]]:
    """Tell ``callback`` (an fsspec Callback, or None) the ``total`` bytes to restore, and
    return the ``progress`` that also counts on it (it is called from the writing threads, so
    under a lock) and what to call once the restore completed."""
    if callback is None:
        return progress, lambda: None
    lock = threading.Lock()
    callback.set_size(total)

    def count(n: int, path: str) -> None:
        with lock:
            callback.relative_update(n)
        if progress is not None:
            progress(n, path)

    def finish() -> None:
        # A file the target refused by name was planned but never counted: the size follows.
        with lock:
            if callback.value != callback.size:
                callback.set_size(callback.value)

    return count, finish


def _drop_oversized(plan: PlannedDir) -> list[tuple[Node, str]]:
    """Take out of ``plan`` each file whose declared size is more than its chunks can hold
    (each at most ``MAX_DATA_BLOB`` bytes), and return them.

    The sizes of the files left are then bounded by their content, and so are the totals a
    restore reports; the exact check, size against the bytes the chunks hold, is made as each
    file is written.
    """
    dropped: list[tuple[Node, str]] = []
    stack = [plan]
    while stack:
        d = stack.pop()
        oversized = [(n, rel) for n, rel in d.files if n.size > len(n.content) * MAX_DATA_BLOB]
        if oversized:
            dropped += oversized
            d.files = [(n, rel) for n, rel in d.files if n.size <= len(n.content) * MAX_DATA_BLOB]
        stack.extend(d.dirs)
    return dropped


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _nothing_found(policy: str | None, at: datetime | None, host: str | None, paths: list[str] | None) -> str:
    """Why no snapshot matched, naming every condition (there is always a policy or a host)."""
    of = [f"of policy {policy!r}"] if policy is not None else []
    of += [f"of host {host!r}"] if host is not None else []
    of += [f"of paths {' '.join(paths)}"] if paths is not None else []
    when = f" at or before {at.isoformat()}" if at is not None else ""
    return f"no snapshot {' '.join(of)}{when}"


class _RestoreJob:
    """One restore's walk of its plan: phase 1 makes directories and special entries in walk
    order and hands files to the pool; phase 2 makes hardlinks; phase 3 sets directories'
    metadata."""

    def __init__(
        self,
        restorer: Restorer,
        result: RestoreResult,
        writes: WritePlan,
        writer: TargetWriter | FsspecWriter,
        progress: Callable[[int, str], None] | None,
        should_stop: Callable[[], bool] | None,
        on_file: Callable[[str], None] | None,
        *,
        stop_on_error: bool,
    ) -> None:
        self.locate = restorer.repo.locate
        self.workers = restorer.workers
        self.result = result
        self.writes = writes
        self.writer = writer
        self.progress = progress
        self.should_stop = should_stop
        self.on_file = on_file
        self.stop_on_error = stop_on_error
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        # Files given up on as damaged: their hardlinks go with them.
        self.damaged: set[str] = set()
        self.slots = threading.BoundedSemaphore(self.workers * 2)
        self.reader = PackReader(restorer.repo, workers=self.workers, total_bytes=writes.bytes)

    def stopped(self) -> bool:
        return self.error is not None or (self.should_stop is not None and self.should_stop())

    def run(self, plan: PlannedDir) -> None:
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="sv-restore") as pool:
                try:
                    self.writer.walk(
                        plan,
                        create=True,
                        enter=lambda d, handle: self._dir_contents(pool, d, handle),
                        stopped=self.stopped,
                        refused=lambda d, e: self._record(
                            RestoreFileError(path=d.rel, error=e.strerror or str(e), type="dir")
                        ),
                    )
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the pool drains
                    if self.error is None:
                        self.error = e
        finally:
            self.reader.close()
        if self.error is not None:
            raise self.error
        if self.stopped():
            # Cancelled: directories below may never have been made; the caller raises.
            return
        for src, dst in self.writes.links:
            if src in self.damaged:
                self._record(RestoreFileError(path=dst, error=f"a hardlink of {src}, which is damaged", kind="damaged"))
                continue
            refused = self.writer.hardlink(src, dst)
            if refused is not None:
                self._record(RestoreFileError(path=dst, error=refused.strerror or str(refused)))
        self.writer.dir_metadata(plan)

    def _dir_refused(self, d: PlannedDir, e: OSError) -> None:
        self._record(RestoreFileError(path=d.rel, error=e.strerror or str(e), type="dir"))

    def _record(self, error: RestoreFileError) -> None:
        with self.lock:
            self.result.errors.append(error)

    # -- phase 1: directories in walk order, files on the pool --------------------------------

    def _dir_contents(self, pool: ThreadPoolExecutor, d: PlannedDir, handle: DirHandle) -> None:
        """Hand the files of directory ``d`` to the pool and make its special entries."""
        if self.stopped():
            return
        for read in plan_dir(d.files, self.locate, linked=self.writes.linked):
            if self.stopped():
                return
            if isinstance(read, SpanRead):
                self._submit(pool, self._files_from_pack, handle, read)
            elif isinstance(read, FileRead):
                self._submit(pool, self._file, handle, read.node, read.rel)
            else:
                self._file_damaged(read.node, read.rel, read.error, 0)
        for node, rel in d.others:
            self._special(handle.fd, node, rel)

    def _task_done(self, fut: Future[None]) -> None:
        self.slots.release()
        exc = fut.exception()
        if exc is not None:
            with self.lock:
                if self.error is None:
                    self.error = exc

    def _submit(self, pool: ThreadPoolExecutor, fn: Callable[..., None], handle: DirHandle, *args: Any) -> None:
        self.slots.acquire()
        fut = pool.submit(fn, handle.acquire(), *args)
        fut.add_done_callback(self._task_done)

    def _files_from_pack(self, handle: DirHandle, span: SpanRead) -> None:
        try:
            if self.stopped():
                return
            view: memoryview | None
            try:
                view = memoryview(self.reader.fetch(span.pack_id, span.offset, span.length))
            except IntegrityError:
                # The span is gone or cut short: read file by file, so that each file before
                # the cut is still restored and each other one names its own damage.
                view = None
            for run, node, rel in span.files:
                if self.stopped():
                    return
                if view is None:
                    self._write_file(handle.fd, node, rel, self.reader.read((run,)))
                else:
                    lo = run.offset - span.offset
                    self._write_file(handle.fd, node, rel, ((run, view[lo : lo + run.length]),))
        finally:
            handle.release()

    def _file(self, handle: DirHandle, node: Node, rel: str) -> None:
        try:
            if not self.stopped():
                runs = self.reader.file_runs([bytes.fromhex(c) for c in node.content])
                self._write_file(handle.fd, node, rel, runs)
        finally:
            handle.release()

    def _write_file(self, dfd: int, node: Node, rel: str, runs: Iterable[tuple[ReadRun, bytes | memoryview]]) -> None:
        try:
            with self.writer.new_file(dfd) as f:
                written = self._write_content(f, node, rel, runs)
                if written is None:
                    return
                f.commit(node)
        except OSError as e:
            if e.errno not in ENTRY_ERRNOS:
                raise
            # The name does not fit the target's file system: this file alone is left out.
            self._record(RestoreFileError(path=rel, error=e.strerror or str(e)))
            with self.lock:
                self.damaged.add(rel)
            return
        with self.lock:
            self.result.files += 1
            self.result.bytes_written += written
        if self.on_file is not None:
            self.on_file(rel)

    def _write_content(
        self, f: NewFile | Upload, node: Node, rel: str, runs: Iterable[tuple[ReadRun, bytes | memoryview]]
    ) -> int | None:
        """Write a file's verified chunks, read as ``runs``, to ``f``; None if the restore was
        stopped or the file is damaged (then it is recorded, or raised with ``stop_on_error``)."""
        written = 0
        size = node.size
        try:
            for run, data in runs:
                for plain in self.reader.blobs(run, data):
                    n = len(plain)
                    if written + n > size:
                        raise IntegrityError(f"content is longer than its size of {size} bytes")
                    f.write(plain)
                    written += n
                    if self.progress is not None:
                        self.progress(n, rel)
                if self.stopped():
                    return None
            if written != size:
                raise IntegrityError(f"content is {written} bytes, not its size of {size}")
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

    def _special(self, dfd: int, node: Node, rel: str) -> None:
        if not self.writer.makes(node.type):
            reason = f"{node.type} not restored"
            if node.type in ("chardev", "blockdev"):
                self.result.devices_skipped += 1
                who = "" if self.writer.as_root else "by root, and "
                reason = f"{reason}: device nodes are made only {who}when asked for (devices=True, --devices)"
            self._record(RestoreFileError(path=rel, error=reason, kind="skipped", type=node.type))
            return
        refused = self.writer.special(dfd, node)
        if refused is not None:
            self._record(RestoreFileError(path=rel, error=refused.strerror or str(refused), type=node.type))
