"""``Engine``: runs backups into a repository, directly, per policy, or as background jobs."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from snapvault.archiver.session import BackupOptions, run_backup, source_paths
from snapvault.jobs import BackupJob, Job
from snapvault.repository import Repository
from snapvault.repository.manifest import Manifest

if TYPE_CHECKING:
    from snapvault.policy.model import Policy

__all__ = ["Engine"]


def _paths(source: object) -> list[str]:
    return [os.fspath(p) for p in cast(Iterable[str | os.PathLike[str]], source)]


def _is_policy(source: object) -> TypeGuard[Policy]:
    # Without importing snapvault.policy.model (its pydantic model costs every plain backup a few
    # milliseconds of start-up): if the module was never imported, nothing is a Policy.
    module = sys.modules.get("snapvault.policy.model")
    return module is not None and isinstance(source, module.Policy)


class Engine:
    """Backs up local files into a repository.

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
    """

    def __init__(
        self,
        repo: Repository,
        *,
        workers: int | None = None,
        max_pending_bytes: int = 24 << 20,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.repo = repo
        self.workers = workers or os.cpu_count() or 2
        self.max_pending_bytes = max_pending_bytes
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rng = rng or random.Random()

    def find_parent(self, paths: Iterable[str], hostname: str) -> Manifest | None:
        """The latest snapshot of the same host and the same source paths, if any."""
        kept = source_paths(list(paths))
        best = None
        for m in self.repo.snapshots():
            if m.hostname == hostname and sorted(m.paths) == kept:
                best = m
        return best

    def backup(
        self,
        source: Policy | Iterable[str | os.PathLike[str]],
        *,
        exclude: Iterable[str] = (),
        tags: Iterable[str] = (),
        parent: str | None = "auto",
        full: bool = False,
        hostname: str | None = None,
        now: datetime | None = None,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_file: Callable[[str, int, bool], None] | None = None,
    ) -> Manifest:
        """Back up paths, or run a policy, and return the new snapshot's manifest.

        Parameters
        ----------
        source : Policy or iterable of path-like
            A :class:`Policy` (its sources, excludes, type, tags, hooks, compression,
            verification and concurrency apply; the other arguments except ``hostname``,
            ``now``, ``progress`` and ``should_stop`` are ignored), or files and directories.
            Paths are stored under their absolute paths.
        exclude : iterable of str
            gitignore-style patterns, matched against paths relative to each source.
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

        Returns
        -------
        Manifest
            The committed snapshot. ``manifest.errors`` lists files that could not be read.

        Raises
        ------
        SourceError
            If a source path does not exist (nothing is written).
        JobCancelled
            If ``should_stop`` asked to stop.

        Notes
        -----
        Backup types of a policy (every snapshot stays independently restorable):

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
        if _is_policy(source):
            from snapvault.policy.run import run_policy

            return run_policy(
                self, source, hostname=hostname, now=now, progress=progress, should_stop=should_stop, on_file=on_file
            )
        paths = _paths(source)
        host = hostname or _hostname()
        parent_m: Manifest | None = None
        if parent == "auto":
            parent_m = self.find_parent(paths, host)
        elif parent is not None:
            parent_m = self.repo.resolve(parent)
        opts = BackupOptions(
            paths=paths,
            exclude=list(exclude),
            tags=list(tags),
            parent=parent_m,
            read_all=full,
            hostname=host,
            now=now or self.clock(),
            workers=self.workers,
            max_pending=self.max_pending_bytes,
            progress=progress,
            should_stop=should_stop,
            on_file=on_file,
        )
        return run_backup(self.repo, opts).manifest

    def submit(
        self,
        source: Policy | Iterable[str | os.PathLike[str]],
        *,
        callback: Any = None,
        **options: Any,
    ) -> BackupJob:
        """Start :meth:`backup` on a background thread and return its job.

        Parameters
        ----------
        source
            As for :meth:`backup`.
        callback : fsspec.callbacks.Callback, optional
            Receives the byte total (once the scan finishes) and byte progress; for example
            ``fsspec.callbacks.TqdmCallback()`` in a notebook.
        **options
            Passed to :meth:`backup`.
        """
        src: Policy | list[str] = source if _is_policy(source) else _paths(source)

        def work(job: Job[Any]) -> Manifest:
            from snapvault.policy.run import scan_totals

            paths = src.sources if _is_policy(src) else cast(list[str], src)
            excludes = src.exclude if _is_policy(src) else list(options.get("exclude", ()))
            scan_totals(job, paths, excludes)

            def on_read(n: int, path: str) -> None:
                job.advance(n, path)

            return self._backup_for_job(src, job, on_read, options)

        job = BackupJob(work, callback=callback, clock=self.clock, name=src.name if _is_policy(src) else "")
        return job.start()  # type: ignore[return-value]

    def _backup_for_job(
        self, src: Policy | list[str], job: Job[Any], on_read: Callable[[int, str], None], options: dict[str, Any]
    ) -> Manifest:
        from snapvault.policy.run import run_policy

        if _is_policy(src):
            return run_policy(
                self, src, hostname=options.get("hostname"), now=options.get("now"), job=job, progress=on_read
            )
        from snapvault.policy.run import file_progress

        return self.backup(
            src, progress=on_read, should_stop=lambda: job.cancelled, on_file=file_progress(job), **options
        )

    async def abackup(self, source: Policy | Iterable[str | os.PathLike[str]], **options: Any) -> Manifest:
        """Async form of :meth:`backup`: runs it in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.backup, source, **options)

    def stats(self, policy: Policy | str, *, last: int = 30) -> Any:
        """Monitoring figures of a policy; see :class:`snapvault.policy.run.PolicyStats`."""
        from snapvault.policy.run import policy_stats

        return policy_stats(self.repo, policy if isinstance(policy, str) else policy.name, last=last)


def _hostname() -> str:
    import socket

    return socket.gethostname()
