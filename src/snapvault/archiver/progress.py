"""Progress of a backup: totals from a scan, counts as files are read, and the fsspec
``Callback`` of the long calls.

:class:`Meter` is the one adapter between a long call's own progress and the fsspec
``Callback`` a caller passes (``set_size`` once a total is known, ``relative_update`` per
unit done, ``size == value`` once a run completes); backups, checks, copies and prunes use it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterable
from typing import Any

from snapvault.jobs import Job
from snapvault.pipeline.patterns import PathFilter

__all__ = ["Meter", "file_progress", "scan_sizes", "scan_totals"]


class Meter:
    """Feeds an fsspec ``Callback`` (or nothing, when it is None) from any thread.

    Parameters
    ----------
    callback : fsspec.callbacks.Callback or None
        What to tell; None makes every method a no-op, so callers need no test of their own.

    Notes
    -----
    fsspec's ``Callback`` is not thread-safe (``relative_update`` adds to ``value``), and the
    long calls report from worker threads: every call here holds one lock.
    """

    def __init__(self, callback: Any) -> None:
        self.callback = callback
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return self.callback is not None

    def size(self, total: int) -> None:
        """The total is known (or grew): ``set_size(total)``."""
        if self.callback is not None:
            with self._lock:
                self.callback.set_size(total)

    def add(self, n: int) -> None:
        """``n`` more units are done: ``relative_update(n)`` (nothing for 0)."""
        if self.callback is not None and n:
            with self._lock:
                self.callback.relative_update(n)

    def finish(self) -> None:
        """The run completed: a size that was an estimate (or never set) becomes the count,
        so ``value == size`` whatever the estimate missed."""
        if self.callback is not None:
            with self._lock:
                if self.callback.size != self.callback.value:
                    self.callback.set_size(self.callback.value)

    def backup_hooks(
        self,
        progress: Callable[[int, str], None] | None,
        on_file: Callable[[str, int, bool], None] | None,
    ) -> tuple[Callable[[int, str], None] | None, Callable[[str, int, bool], None] | None]:
        """A backup's ``progress`` and ``on_file`` that also count on the callback: the bytes
        read, and the size of each file taken unread from the parent; the given ones still
        run. Unchanged when there is no callback."""
        if self.callback is None:
            return progress, on_file

        def read(n: int, path: str) -> None:
            self.add(n)
            if progress is not None:
                progress(n, path)

        def done(path: str, size: int, unchanged: bool) -> None:
            if unchanged:
                self.add(size)
            if on_file is not None:
                on_file(path, size, unchanged)

        return read, done


def file_progress(job: Job[Any]) -> Callable[[str, int, bool], None]:
    """An ``on_file`` callback that counts files (and unchanged files' bytes) on a job."""

    def on_file(path: str, size: int, unchanged: bool) -> None:
        job.advance(size if unchanged else 0, path, files=1)

    return on_file


def scan_sizes(
    paths: Iterable[str], exclude: Iterable[str], stopped: Callable[[], bool] | None = None
) -> tuple[int, int] | None:
    """The files and bytes a backup of local ``paths`` will cover, as an estimate.

    It costs one ``lstat`` per entry, which the backup's own walk then finds in the kernel's
    cache. Only ``exclude`` is applied (not the other exclusion rules), so the totals may be
    high. None for URL sources (listing a bucket twice is not worth a progress bar) and when
    ``stopped()`` turns true.
    """
    from snapvault.archiver.fsspec_source import is_url

    paths = list(paths)
    if any(is_url(p) for p in paths):
        return None
    flt = PathFilter(exclude=exclude)
    files = nbytes = 0
    for src in paths:
        if os.path.isfile(src) and not os.path.islink(src):
            files += 1
            nbytes += os.path.getsize(src)
            continue
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            rel = "" if rel == "." else rel
            dirnames[:] = [d for d in dirnames if not flt.excluded(f"{rel}/{d}" if rel else d, True)]
            for f in filenames:
                if flt.excluded(f"{rel}/{f}" if rel else f, False):
                    continue
                try:
                    st = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    files += 1
                    nbytes += st.st_size
        if stopped is not None and stopped():
            return None
    return files, nbytes


def scan_totals(job: Job[Any], paths: Iterable[str], exclude: Iterable[str]) -> None:
    """Count the files and bytes a backup will cover (:func:`scan_sizes`), as the job's totals.

    Runs before the backup on the job's thread.
    """
    totals = scan_sizes(paths, exclude, lambda: job.cancelled)
    if totals is not None:
        job.set_totals(*totals)
