"""Restores by many Dask workers: each worker restores the files of some directories.

The driver walks the snapshot's trees and cuts the directories that hold files into tasks of
bounded bytes and file counts. A task restores each of its directories with the restorer
itself (:class:`~snapvault.restore.restorer.Restorer`), limited to that directory's own files
by exclude patterns: every entry off the path from the root to it is excluded, and so are its
subdirectories. A worker therefore reads only the trees on that path, and writes each file
as a restore on one machine does (under a temporary name, renamed once verified).

On a local target (a filesystem the workers share with the driver) the workers restore the
regular files; the driver then restores the snapshot once more with ``skip_existing``, which
finds those files in place and writes what remains: directories (with their metadata, set
after every file below them was written), symlinks, FIFOs, devices, and hardlinked files, so
that the members of a group are linked, not copied. On an fsspec target the workers restore
every entry but directories, which such targets do not keep.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from snapvault.archiver.walker import Cancelled
from snapvault.distributed.backup import DEFAULT_TASK_BYTES, DEFAULT_TASK_FILES
from snapvault.distributed.runner import ProgressRelay, StopPoll, TaskRunner
from snapvault.distributed.transport import planted, worker_context
from snapvault.errors import ConfigError, IntegrityError, JobCancelled, ObjectNotFound
from snapvault.pipeline.patterns import PathFilter
from snapvault.repository.manifest import Manifest
from snapvault.repository.repo import Repository
from snapvault.restore.restorer import Restorer
from snapvault.restore.result import RestoreFileError, RestoreResult
from snapvault.restore.writer import TEMP_PREFIX, local_target

__all__ = ["DirWork", "directory_excludes", "distributed_restore"]

_COUNTS = (
    "files",
    "dirs",
    "symlinks",
    "hardlinks",
    "other",
    "files_skipped",
    "bytes_written",
    "devices_skipped",
    "setuid_dropped",
)


class DirWork(NamedTuple):
    """One directory a task restores the entries of (not its subdirectories).

    ``skip`` names entries left to the driver's pass (hardlinked files and entries that are
    not files, on a local target).
    """

    parts: tuple[str, ...]
    skip: tuple[str, ...]
    files: int
    bytes: int


class RestoreSettings(NamedTuple):
    """How a task restores (no secret: this travels in the task graph)."""

    plugin: str
    stop_event: str
    progress_topic: str
    snapshot_id: str
    target: str
    exclude: tuple[str, ...]
    workers: int | None
    skip_existing: bool
    verify_existing: bool
    sparse: bool
    numeric_owner: bool
    setuid: bool


_SPECIAL = re.compile(r"([\\*?\[\]!#])")


def _escape(name: str) -> str:
    """A name as a gitignore pattern matching exactly it."""
    out = _SPECIAL.sub(r"\\\1", name)
    return out[:-1] + "\\ " if out.endswith(" ") else out


def directory_excludes(parts: tuple[str, ...], skip: Iterable[str] = ()) -> list[str]:
    """Exclude patterns that leave exactly the entries of directory ``parts`` (and the
    directories above it), without its subdirectories and without the names in ``skip``.

    gitignore's last match wins: everything is excluded, each directory on the path is
    taken back, and its other entries excluded again.
    """
    lines = []
    path = ""
    for name in parts:
        lines.append(f"{path}/*")
        path = f"{path}/{_escape(name)}"
        lines.append(f"!{path}/")
    lines.append(f"{path}/*/")
    lines.extend(f"{path}/{_escape(name)}" for name in skip)
    return lines


def restore_dirs(work: list[DirWork], settings: RestoreSettings) -> RestoreResult:
    """Restore the entries of each directory of ``work`` (a worker's task)."""
    context = worker_context(settings.plugin)
    restorer = Restorer(context.repo, workers=settings.workers)
    stop = StopPoll(settings.stop_event)
    progress = ProgressRelay(settings.progress_topic)
    total = RestoreResult(snapshot_id=settings.snapshot_id, target=settings.target)
    try:
        for d in work:
            if stop():
                raise JobCancelled("restore cancelled")
            got = restorer.restore(
                settings.snapshot_id,
                settings.target,
                target_options=context.options or None,
                exclude=[*directory_excludes(d.parts, d.skip), *settings.exclude],
                progress=progress,
                should_stop=stop,
                skip_existing=settings.skip_existing,
                verify_existing=settings.verify_existing,
                sparse=settings.sparse,
                numeric_owner=settings.numeric_owner,
                setuid=settings.setuid,
            )
            _add(total, got)
    finally:
        progress.flush()
    return total


def _add(total: RestoreResult, got: RestoreResult) -> None:
    for name in _COUNTS:
        setattr(total, name, getattr(total, name) + getattr(got, name))
    for kind, n in got.metadata_dropped.items():
        total.metadata_dropped[kind] = total.metadata_dropped.get(kind, 0) + n
    total.errors.extend(got.errors)


def _plan(
    repo: Repository, m: Manifest, flt: PathFilter, *, local: bool
) -> tuple[list[DirWork], int, list[RestoreFileError]]:
    """The directories holding work, the bytes of the files to restore (a hardlink group's
    once), and the directories whose trees cannot be read (the root's raises, as a restore's
    does: nothing can be restored)."""
    work: list[DirWork] = []
    total = 0
    linked: set[tuple[int, int]] = set()
    unreadable: list[RestoreFileError] = []
    stack: list[tuple[tuple[str, ...], str]] = [((), m.tree)]
    while stack:
        parts, tree = stack.pop()
        try:
            nodes = repo.read_tree(tree)
        except (IntegrityError, ObjectNotFound) as e:
            if not parts:
                raise
            error = f"directory cannot be read: {e}"
            unreadable.append(
                RestoreFileError(path="/".join(parts), error=error, kind="damaged", type="dir", blob_id=tree)
            )
            continue
        files = size = 0
        skip: list[str] = []
        for n in nodes:
            rel = "/".join((*parts, n.name))
            if flt.excluded(rel, n.type == "dir"):
                continue
            if n.type == "dir":
                if n.subtree is not None:
                    stack.append(((*parts, n.name), n.subtree))
                continue
            group = n.type == "file" and n.links > 1 and n.inode != 0
            if n.type == "file" and not (group and (n.dev, n.inode) in linked):
                total += n.size
            if group:
                linked.add((n.dev, n.inode))
            if local and (n.type != "file" or group):
                skip.append(n.name)
                continue
            files += 1
            size += n.size if n.type == "file" else 0
        if files:
            work.append(DirWork(parts, tuple(skip), files, size))
    return work, total, unreadable


def distributed_restore(
    repo: Repository,
    snapshot: str | Manifest,
    target: str | os.PathLike[str],
    client: Any,
    *,
    target_options: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    callback: Any = None,
    progress: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    task_bytes: int = DEFAULT_TASK_BYTES,
    task_files: int = DEFAULT_TASK_FILES,
    workers: int | None = None,
    skip_existing: bool = True,
    verify_existing: bool = False,
    sparse: bool = True,
    numeric_owner: bool = False,
    setuid: bool = False,
    retries: int = 1,
) -> RestoreResult:
    """Restore a snapshot with the workers of a Dask ``client``.

    Parameters
    ----------
    repo : Repository
        The open repository (planted on the workers as for a backup, outside the task graph).
    snapshot : str or Manifest
        A manifest, full ID, unique prefix or ``latest``.
    target : path-like
        A local directory on a filesystem every worker mounts at the same path, or an fsspec
        URL (opened on each worker with ``target_options``, which are planted with the keys).
    exclude : iterable of str
        As for ``Restorer.restore`` (without ``!`` re-inclusions, which could take back what
        another task restores).
    callback : fsspec.callbacks.Callback, optional
        The bytes to restore, then the bytes each worker writes; ``value == size`` at the end.
    progress : callable, optional
        ``progress(bytes, path)`` on the driver as bytes are written (``path`` is "" for the
        workers', reported by the same events as the callback's).
    should_stop : callable, optional
        Polled on the driver; True stops every worker between files (JobCancelled). No file
        is left half-written under its name.
    task_bytes, task_files : int
        A task restores directories holding at most about these many bytes and files (a
        larger directory is a task alone).
    workers, skip_existing, verify_existing, sparse, numeric_owner, setuid
        As for ``Restorer`` and ``Restorer.restore``, for each task (and the driver's pass).
    retries : int
        Times Dask runs a task again after it raised.

    Returns
    -------
    RestoreResult
        The counts of every task and of the driver's pass, and every path not restored.

    Raises
    ------
    ConfigError
        A re-including exclude pattern, or ``target_options`` with a local target.
    JobCancelled
        When ``should_stop`` asked to stop.
    """
    exclude = list(exclude)
    if any(p.lstrip().startswith("!") for p in exclude):
        raise ConfigError("a distributed restore takes no re-including (!) exclude patterns")
    local = local_target(target)
    if local is not None and target_options:
        raise ConfigError("target_options are for URL targets; the target is a local directory")
    m = snapshot if isinstance(snapshot, Manifest) else repo.resolve(snapshot)
    where = os.path.abspath(local) if local is not None else os.fspath(target)
    work, total_bytes, unreadable = _plan(repo, m, PathFilter(exclude=exclude), local=local is not None)
    runner = TaskRunner(
        client, "restore", callback=callback, progress=progress, should_stop=should_stop, retries=retries
    )
    result = RestoreResult(snapshot_id=m.id, target=where)
    with planted(client, repo, dict(target_options or {})) as plugin, runner.listening():
        settings = RestoreSettings(
            plugin,
            runner.stop_name,
            runner.topic,
            m.id,
            where,
            tuple(exclude),
            workers,
            skip_existing,
            verify_existing,
            sparse,
            numeric_owner,
            setuid,
        )
        runner.sized(total_bytes)
        try:
            for batch in _batches(work, task_bytes, task_files):
                runner.submit(restore_dirs, batch, settings)
            for got in runner.results():
                _add(result, got)
        except Cancelled:
            runner.stop()
            raise JobCancelled("restore cancelled; no partial file was left") from None
        except BaseException:
            runner.stop()
            raise
    if local is not None:
        _remove_leftovers(where, work)
        # The driver's pass walks the whole snapshot: it reports unreadable directories itself.
        result = _finish_local(repo, m, where, exclude, result, runner, should_stop, settings)
    else:
        result.errors.extend(unreadable)
    result.errors.sort(key=lambda e: e.path)
    runner.finish(total_bytes)
    return result


def _batches(work: list[DirWork], task_bytes: int, task_files: int) -> list[list[DirWork]]:
    out: list[list[DirWork]] = []
    batch: list[DirWork] = []
    files = size = 0
    for d in work:
        if batch and (files + d.files > task_files or size + d.bytes > task_bytes):
            out.append(batch)
            batch, files, size = [], 0, 0
        batch.append(d)
        files += d.files
        size += d.bytes
    if batch:
        out.append(batch)
    return out


def _remove_leftovers(where: str, work: list[DirWork]) -> None:
    """Remove the temporary files of tasks whose worker died mid-file.

    A restore writes each file under a temporary name and renames it once verified; a worker
    killed in between leaves that name behind (its task ran again elsewhere). Every task of
    this run has ended, so the restore's temporary names in the directories it restored are
    all such leftovers.
    """
    for d in work:
        path = os.path.join(where, *d.parts)
        try:
            names = [n for n in os.listdir(path) if n.startswith(TEMP_PREFIX)]
        except OSError:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(path, name))


def _finish_local(
    repo: Repository,
    m: Manifest,
    where: str,
    exclude: list[str],
    tasks: RestoreResult,
    runner: TaskRunner,
    should_stop: Callable[[], bool] | None,
    settings: RestoreSettings,
) -> RestoreResult:
    """The driver's pass over a local target: what the workers left (directories and their
    metadata, links, special files, hardlinked files, and any file a task failed on)."""
    final = Restorer(repo, workers=settings.workers).restore(
        m.id,
        where,
        exclude=exclude,
        progress=runner.advance,
        should_stop=should_stop,
        skip_existing=True,
        sparse=settings.sparse,
        numeric_owner=settings.numeric_owner,
        setuid=settings.setuid,
    )
    out = RestoreResult(snapshot_id=m.id, target=where)
    _add(out, final)
    out.files += tasks.files
    out.bytes_written += tasks.bytes_written
    out.setuid_dropped += tasks.setuid_dropped
    # The workers' files are in place when the driver's pass looks: skipped there, not here.
    out.files_skipped = max(0, final.files_skipped - tasks.files)
    # A file a task could not restore was tried again by the driver's pass, which reports it
    # if it failed again: its errors are the ones that stand.
    return out
