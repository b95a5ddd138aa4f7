"""Progress of a backup running as a job: totals from a scan, counts as files are read."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from typing import Any

from snapvault.jobs import Job
from snapvault.pipeline.patterns import PathFilter

__all__ = ["file_progress", "scan_totals"]


def file_progress(job: Job[Any]) -> Callable[[str, int, bool], None]:
    """An ``on_file`` callback that counts files (and unchanged files' bytes) on a job."""

    def on_file(path: str, size: int, unchanged: bool) -> None:
        job.advance(size if unchanged else 0, path, files=1)

    return on_file


def scan_totals(job: Job[Any], paths: Iterable[str], exclude: Iterable[str]) -> None:
    """Count the files and bytes a backup will cover, for progress totals.

    Runs before the backup on the job's thread; it costs one ``lstat`` per entry, which the
    backup's own walk then finds in the kernel's cache.
    """
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
        if job.cancelled:
            return
    job.set_totals(files, nbytes)
