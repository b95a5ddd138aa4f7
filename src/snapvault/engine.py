"""``Engine``: backs up paths, or runs a policy, into a repository; directly or as background jobs.

Two entry points share one :class:`~snapvault.archiver.settings.BackupSettings`:
:meth:`Engine.backup` for files and directories, :meth:`Engine.run_policy` for a policy (which
:mod:`snapvault.policy.run` carries out). The engine sits above the policy layer and imports
it; the policy layer never imports the engine.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from snapvault.archiver.progress import Meter, file_progress, scan_sizes, scan_totals
from snapvault.archiver.session import BackupOptions, run_backup, source_paths
from snapvault.archiver.settings import BackupSettings
from snapvault.errors import ConfigError
from snapvault.jobs import BackupJob, Job
from snapvault.pipeline.patterns import parse_size
from snapvault.repository import Repository
from snapvault.repository.manifest import Manifest

if TYPE_CHECKING:
    from snapvault.policy.model import Policy
    from snapvault.policy.run import PolicyStats

__all__ = ["Engine"]

_Paths = Iterable[str | os.PathLike[str]]


def _as_policy(source: object) -> Policy | None:
    """``source`` if it is a Policy (the old single entry point), else None."""
    # Only a pydantic model can be a Policy, and pydantic is loaded already (for Manifest):
    # testing that first spares every backup of paths the import of the Policy model, a few
    # milliseconds of CLI start-up.
    if not isinstance(source, BaseModel):
        return None
    from snapvault.policy.model import Policy

    return source if isinstance(source, Policy) else None


class Engine:
    """Backs up local files into a repository.

    Two entry points, sharing one :class:`BackupSettings` (``settings``): :meth:`backup` for
    files and directories, :meth:`run_policy` for a policy; :meth:`submit` and
    :meth:`submit_policy` run them as background jobs.

    Parameters
    ----------
    repo : Repository
        The open repository.
    workers : int, optional
        Threads for compression and encryption; default the number of CPUs.
    max_pending_bytes : int
        Upper bound on plaintext bytes waiting to be encoded, so memory stays bounded whatever
        the file sizes.
    clock : callable, optional
        Returns the current time (aware); used for snapshot times, job times and due checks
        when no ``now=`` is given. Default: the system clock in UTC.
    rng : random.Random, optional
        Draws verification samples; pass a seeded one for repeatable runs.
    settings : BackupSettings, optional
        All of the above as one value (then leave them out), for example to share it between
        engines.
    allowed_hooks : collection of str
        The shell hooks a policy run may execute, each named by
        :func:`snapvault.policy.hooks.hook_hash` (SHA-256 of the exact command, hex). Default
        none: a stored policy is repository content, and anyone with the password can store
        one. A policy with any other shell hook raises HookError before anything runs.
        Python callables given as hooks always run.

    Attributes
    ----------
    repo : Repository
    settings : BackupSettings
        What both entry points run with.
    allowed_hooks : frozenset of str
    """

    def __init__(
        self,
        repo: Repository,
        *,
        workers: int | None = None,
        max_pending_bytes: int | None = None,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        settings: BackupSettings | None = None,
        allowed_hooks: Collection[str] = frozenset(),
    ) -> None:
        self.repo = repo
        self.allowed_hooks = frozenset(allowed_hooks)
        if settings is None:
            given: dict[str, Any] = {
                "workers": workers or None,
                "max_pending_bytes": max_pending_bytes,
                "clock": clock,
                "rng": rng,
            }
            settings = BackupSettings(**{k: v for k, v in given.items() if v is not None})
        elif (workers, max_pending_bytes, clock, rng) != (None, None, None, None):
            raise ConfigError("give either settings or workers/max_pending_bytes/clock/rng, not both")
        self.settings = settings

    def find_parent(self, paths: Iterable[str], hostname: str) -> Manifest | None:
        """The latest snapshot of the same host and the same source paths, if any."""
        kept = source_paths(list(paths))
        best = None
        for m in self.repo.snapshots():
            if m.hostname == hostname and sorted(m.paths) == kept:
                best = m
        return best

    # -- paths -----------------------------------------------------------------------------

    def backup(
        self,
        paths: _Paths,
        *,
        exclude: Iterable[str] = (),
        exclude_if_present: Iterable[str] = (),
        exclude_caches: bool = False,
        exclude_larger_than: int | str | None = None,
        one_file_system: bool = False,
        source_options: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        parent: str | None = "auto",
        full: bool = False,
        hostname: str | None = None,
        now: datetime | None = None,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_file: Callable[[str, int, bool], None] | None = None,
        callback: Any = None,
        executor: Any = None,
        processes: int = 1,
    ) -> Manifest:
        """Back up files and directories and return the new snapshot's manifest.

        To run a policy use :meth:`run_policy`. For compatibility a :class:`Policy` given here
        is handed to :meth:`run_policy` (with ``hostname``, ``now``, ``progress``,
        ``should_stop``, ``on_file`` and ``callback``; the other arguments are ignored).

        Parameters
        ----------
        paths : iterable of path-like
            Files and directories, stored under their absolute paths; or fsspec URLs of one
            protocol (``s3://bucket/prefix``, ``az://container/prefix``, ``memory://...``),
            whose objects are stored under ``bucket/prefix/<key>`` and listed by URL in the
            manifest's ``paths``. An object is read again only when its size, modification
            time or identity (ETag, version ID, generation: whatever its listing gives)
            changed since the parent snapshot; large objects are read as parallel ranges.
        exclude : iterable of str
            gitignore-style patterns, matched against paths relative to each source. For an
            exclude file (restic's ``--exclude-file``) pass
            ``snapvault.pipeline.patterns.pattern_lines(text)``.
        exclude_if_present : iterable of str
            ``NAME`` or ``NAME:HEADER``: a directory holding a file of that name (whose content
            starts with HEADER, if given) is recorded with that file only, as restic does.
        exclude_caches : bool
            The same for ``CACHEDIR.TAG`` files that start with the Cache Directory Tagging
            signature (https://bford.info/cachedir/).
        exclude_larger_than : int or str, optional
            Leave out regular files of more bytes than this (an int, or ``"10M"``: K, M, G, T,
            1024-based).
        one_file_system : bool
            Do not cross into other file systems below a source: a mount point is recorded as
            an empty directory, and nothing below it is read.
        source_options : mapping, optional
            fsspec storage options for URL sources (``endpoint_url``, ``key``, ``secret``,
            ``anon``, ``connection_string``...), passed to the source's filesystem.
        tags : iterable of str
            Labels recorded in the manifest.
        parent : str or None
            ``"auto"`` (the latest snapshot of this host and these paths), a snapshot
            reference, or None. Files whose size, mtime, ctime and inode match the parent's
            are not read again.
        full : bool
            Read every file, trusting no metadata (storage still deduplicates).
        hostname : str, optional
            Recorded host; default this machine's name.
        now : datetime, optional
            The snapshot time; default the engine's clock.
        progress : callable, optional
            Called as ``progress(bytes_read, path)`` while files are read.
        should_stop : callable, optional
            Polled during the walk; returning True cancels the backup (JobCancelled, no
            manifest written, uploaded data indexed for reuse).
        on_file : callable, optional
            Called as ``on_file(path, size, unchanged)`` after each regular file.
        callback : fsspec.callbacks.Callback, optional
            Told the bytes the backup covers and each stretch done: ``set_size`` with the
            total of a scan of local sources (an estimate: only ``exclude`` applies; no scan,
            and so no early size, for URL sources), then ``relative_update`` with the bytes
            read and the size of each file taken unread from the parent. When the backup
            completes, ``set_size`` makes the size the exact count, so ``value == size``.
        executor : distributed.Client, optional
            Back up with the workers of this Dask cluster (the ``dask`` extra): this process
            lists the sources (only the top of a local source; workers walk whole
            directories below it) and commits, the workers read, chunk, seal and upload (local
            sources must be at the same path on every worker). The snapshot is the one this
            process would have made. ``callback`` and ``progress`` get the workers' bytes. See
            :func:`snapvault.distributed.distributed_backup` and docs/howto/dask.md.
        processes : int
            Processes that back up local sources (default 1: this process alone). With more,
            this process hands whole directories below the top of each source to a pool of
            processes on this machine, which walk, read and store them on the other cores,
            and commits one snapshot, the one it would have made alone (see
            :mod:`snapvault.distributed.pool`). Worth it for first backups of many small
            files; each process holds its own copy of the index. URL sources, and sources
            with fewer than two directories to hand out, run in this process alone.

        Returns
        -------
        Manifest
            The committed snapshot. ``manifest.errors`` lists files that could not be read.

        Raises
        ------
        SourceError
            If a source path or URL does not exist (nothing is written).
        ConfigError
            If a pattern, an exclude-if-present name or a size is invalid, or local paths and
            URLs are mixed (nothing is written).
        JobCancelled
            If ``should_stop`` asked to stop.
        """
        policy = _as_policy(paths)
        if policy is not None:
            return self.run_policy(
                policy,
                hostname=hostname,
                now=now,
                progress=progress,
                should_stop=should_stop,
                on_file=on_file,
                callback=callback,
            )
        from snapvault.dr.records import check_write_target

        tags = list(tags)
        exclude = list(exclude)
        # A DR plan stored here that covers these tags (or every snapshot) and failed over:
        # this repository is not the primary, and a backup here would fork what it keeps.
        check_write_target(self.repo, self.repo.config.repository_id, None, tags, now, self.settings.clock)
        sources = [os.fspath(p) for p in paths]
        host = hostname or _hostname()
        parent_m: Manifest | None = None
        if parent == "auto":
            parent_m = self.find_parent(sources, host)
        elif parent is not None:
            parent_m = self.repo.resolve(parent)
        if executor is not None and processes != 1:
            raise ConfigError("give either executor (a Dask cluster) or processes, not both")
        if executor is not None:
            from snapvault.distributed import distributed_backup

            return distributed_backup(
                self.repo,
                sources,
                executor,
                source_options=source_options,
                exclude=exclude,
                exclude_if_present=exclude_if_present,
                exclude_caches=exclude_caches,
                exclude_larger_than=exclude_larger_than,
                one_file_system=one_file_system,
                tags=tags,
                hostname=host,
                now=now or self.settings.clock(),
                parent=parent_m,
                read_all=full,
                callback=callback,
                progress=progress,
                should_stop=should_stop,
                on_file=on_file,
                max_pending_bytes=self.settings.max_pending_bytes,
            )
        meter = Meter(callback)
        progress, on_file = meter.backup_hooks(progress, on_file)
        if meter:
            _scan(meter, sources, exclude, should_stop)
        opts = BackupOptions(
            paths=sources,
            exclude=list(exclude),
            exclude_if_present=list(exclude_if_present),
            exclude_caches=exclude_caches,
            exclude_larger_than=None if exclude_larger_than is None else parse_size(exclude_larger_than),
            one_file_system=one_file_system,
            source_options=dict(source_options or {}),
            tags=list(tags),
            parent=parent_m,
            read_all=full,
            hostname=host,
            now=now or self.settings.clock(),
            workers=self.settings.workers,
            max_pending=self.settings.max_pending_bytes,
            progress=progress,
            should_stop=should_stop,
            on_file=on_file,
        )
        if processes != 1:
            # Imported when asked for: the pool is a layer above the archiver.
            from snapvault.distributed.pool import pool_backup

            manifest = pool_backup(self.repo, opts, processes)
        else:
            manifest = run_backup(self.repo, opts).manifest
        meter.finish()
        return manifest

    def submit(self, paths: _Paths, *, callback: Any = None, **options: Any) -> BackupJob:
        """Start :meth:`backup` on a background thread and return its job.

        To run a policy as a job use :meth:`submit_policy`; for compatibility a
        :class:`Policy` given here is handed to it (with ``callback``, ``hostname`` and
        ``now``).

        Parameters
        ----------
        paths
            As for :meth:`backup`.
        callback : fsspec.callbacks.Callback, optional
            Receives the byte total (once the scan finishes) and byte progress; for example
            ``fsspec.callbacks.TqdmCallback()`` in a notebook.
        **options
            Passed to :meth:`backup` (``source_options`` for URL sources among them).
        """
        policy = _as_policy(paths)
        if policy is not None:
            return self.submit_policy(
                policy, callback=callback, hostname=options.get("hostname"), now=options.get("now")
            )
        sources = [os.fspath(p) for p in paths]
        exclude = list(options.get("exclude", ()))

        def work(job: Job[Any]) -> Manifest:
            scan_totals(job, sources, exclude)

            def on_read(n: int, path: str) -> None:
                job.advance(n, path)

            return self.backup(
                sources, progress=on_read, should_stop=lambda: job.cancelled, on_file=file_progress(job), **options
            )

        job = BackupJob(work, callback=callback, clock=self.settings.clock)
        return job.start()  # type: ignore[return-value]

    async def abackup(self, paths: _Paths, **options: Any) -> Manifest:
        """Async form of :meth:`backup` (a Policy: :meth:`arun_policy`), run in a worker thread.

        Cancelling the task that awaits it cancels the backup: the walk stops at the next file
        or chunk, no snapshot is written (the data already uploaded is indexed for reuse, as
        for any cancelled backup), the worker thread has ended, and then
        :class:`asyncio.CancelledError` is raised. Only a cancellation that arrives after the
        snapshot's commit point leaves it committed. A ``should_stop`` given in ``options``
        is still obeyed (then JobCancelled is raised).
        """
        return await _cancellable(self.backup, paths, options)

    # -- policies --------------------------------------------------------------------------

    def run_policy(
        self,
        policy: Policy,
        *,
        hostname: str | None = None,
        now: datetime | None = None,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_file: Callable[[str, int, bool], None] | None = None,
        callback: Any = None,
    ) -> Manifest:
        """Run one backup of ``policy``, record the run, and return the new snapshot's manifest.

        The policy's sources, excludes and other exclusion rules, backup type, tags, hooks,
        compression, verification and concurrency apply. A run record is written whatever the
        outcome (see :meth:`stats`).

        Parameters
        ----------
        policy : Policy
            The policy to run (stored or not).
        hostname, now, progress, should_stop, on_file, callback
            As for :meth:`backup` (the scan covers the policy's sources and excludes).

        Returns
        -------
        Manifest
            The committed snapshot, with ``policy``, ``backup_type`` and ``verification``.

        Raises
        ------
        SourceError
            If a source path does not exist (nothing is written).
        IntegrityError
            If the read-back after the backup failed (nothing committed; the packs the run
            uploaded are quarantined).
        HookError
            If a pre-hook failed, or the policy has a shell hook that ``allowed_hooks`` does
            not allow (then nothing ran and nothing was written).
        StalePrimaryError
            If a DR plan stored here covers the policy and its failover records say another
            site is the primary (nothing is written; see :class:`snapvault.DRPlan`).
        JobCancelled
            If ``should_stop`` asked to stop.

        Notes
        -----
        Backup types (every snapshot stays independently restorable):

        ``full``
            Reads and hashes every file; no metadata shortcut. Change counts are relative to
            the policy's latest snapshot (a file read again with equal content is unchanged).
        ``incremental``
            Parent is the policy's latest snapshot; unchanged files are taken from it unread.
        ``differential``
            Base (and parent) is the policy's latest ``full`` snapshot; counts and the
            shortcut are relative to it. Without a full snapshot it runs as ``full``.
        ``snapshot``
            Runs the pre-hooks (quiesce), reads like ``incremental``, re-reads a file whose
            size, mtime or ctime changed during its read up to 3 times, then lists it in
            ``manifest.inconsistent``. Post-hooks always run.
        """
        from snapvault.dr.records import check_write_target
        from snapvault.policy.run import run_policy

        # A DR plan that covers this policy and failed over elsewhere: writing here would fork
        # the history (the failover records this repository holds say so).
        check_write_target(
            self.repo, self.repo.config.repository_id, policy.name, list(policy.tags), now, self.settings.clock
        )
        meter = Meter(callback)
        progress, on_file = meter.backup_hooks(progress, on_file)
        if meter:
            _scan(meter, policy.sources, policy.exclude, should_stop)
        manifest = run_policy(
            self.repo,
            self.settings,
            policy,
            hostname=hostname,
            now=now,
            progress=progress,
            should_stop=should_stop,
            on_file=on_file,
            allowed_hooks=self.allowed_hooks,
        )
        meter.finish()
        return manifest

    def submit_policy(
        self, policy: Policy, *, callback: Any = None, hostname: str | None = None, now: datetime | None = None
    ) -> BackupJob:
        """Start :meth:`run_policy` on a background thread and return its job (named after the policy).

        Parameters
        ----------
        policy : Policy
        callback : fsspec.callbacks.Callback, optional
            As for :meth:`submit`.
        hostname, now
            As for :meth:`run_policy`.
        """
        from snapvault.dr.records import check_write_target
        from snapvault.policy.run import run_policy

        def work(job: Job[Any]) -> Manifest:
            # As run_policy does: a policy a DR plan moved elsewhere is refused here (the
            # job fails with StalePrimaryError, nothing written).
            check_write_target(
                self.repo, self.repo.config.repository_id, policy.name, list(policy.tags), now, self.settings.clock
            )
            scan_totals(job, policy.sources, policy.exclude)

            def on_read(n: int, path: str) -> None:
                job.advance(n, path)

            return run_policy(
                self.repo,
                self.settings,
                policy,
                hostname=hostname,
                now=now,
                job=job,
                progress=on_read,
                allowed_hooks=self.allowed_hooks,
            )

        job = BackupJob(work, callback=callback, clock=self.settings.clock, name=policy.name)
        return job.start()  # type: ignore[return-value]

    async def arun_policy(self, policy: Policy, **options: Any) -> Manifest:
        """Async form of :meth:`run_policy`, run in a worker thread; cancellable as :meth:`abackup` is.

        A cancelled run is recorded as any cancelled run is (see :meth:`stats`).
        """
        return await _cancellable(self.run_policy, policy, options)

    def stats(self, policy: Policy | str, *, last: int = 30) -> PolicyStats:
        """Monitoring figures of a policy over its last ``last`` runs; see ``snapvault.PolicyStats``."""
        from snapvault.policy.run import policy_stats

        return policy_stats(self.repo, policy if isinstance(policy, str) else policy.name, last=last)


def _scan(meter: Meter, sources: Iterable[str], exclude: Iterable[str], should_stop: Callable[[], bool] | None) -> None:
    """Tell ``meter`` the estimated bytes of a backup of local ``sources``."""
    totals = scan_sizes(sources, exclude, should_stop)
    if totals is not None:
        meter.size(totals[1])


def _hostname() -> str:
    import socket

    return socket.gethostname()


async def _cancellable(run: Callable[..., Manifest], source: Any, options: dict[str, Any]) -> Manifest:
    """``run(source, **options)`` in a thread, stopped when the awaiting task is cancelled."""
    from snapvault.jobs import run_cancellable

    given = options.pop("should_stop", None)

    def work(stopping: Callable[[], bool]) -> Manifest:
        def should_stop() -> bool:
            return stopping() or (given is not None and bool(given()))

        return run(source, should_stop=should_stop, **options)

    return await run_cancellable(work)
