"""What a worker runs: read files (or back up whole directories), seal and upload their
chunks, return their content IDs (and the directories' tree IDs).

Each task opens a :class:`~snapvault.archiver.sink.BlobSink` on the repository planted on its
worker (:mod:`snapvault.distributed.transport`), reads its files with the archiver's own
walkers (so chunks, IDs and change detection are a single-process backup's), then flushes:
every pack is uploaded and listed in the task's own index file before the task returns. A task
whose worker dies leaves at worst packs no snapshot references, for a prune; its retry stores
what it needs again (or reuses what the lost attempt indexed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from snapvault.archiver.fsspec_source import ObjectWalker, _Object
from snapvault.archiver.sink import BlobSink
from snapvault.archiver.walker import Walker
from snapvault.distributed.items import (
    FileItem,
    FileResult,
    ObjectItem,
    SubtreeItem,
    TaskOutcome,
    file_ident,
    object_ident,
)
from snapvault.distributed.runner import ProgressRelay, StopPoll
from snapvault.distributed.subtrees import WalkRules, back_up_subtrees, flushed, local_walker, outcome
from snapvault.distributed.transport import worker_context
from snapvault.pipeline.tree import Node
from snapvault.repository.repo import Repository

__all__ = ["TaskSettings", "WalkRules", "list_prefix", "read_files", "read_objects", "walk_subtrees"]


class TaskSettings(NamedTuple):
    """How a task reads and where it reports (no secret: this travels in the task graph)."""

    plugin: str
    stop_event: str
    progress_topic: str
    workers: int | None = None
    max_pending: int = 24 << 20
    read_all: bool = False
    consistency_retries: int | None = None


def _threads(settings: TaskSettings) -> int:
    """A task's encode threads: as asked, else the worker machine's CPUs (as ``Engine`` uses
    the CPUs of the machine it runs on)."""
    return settings.workers or os.cpu_count() or 2


def _local_walker(
    repo: Repository, sink: BlobSink, settings: TaskSettings, progress: ProgressRelay, rules: WalkRules
) -> Walker:
    """The archiver's walker of local files, as a Dask task runs it."""
    return local_walker(
        repo,
        sink,
        progress,
        StopPoll(settings.stop_event),
        rules,
        read_all=settings.read_all,
        consistency_retries=settings.consistency_retries,
    )


def read_files(items: list[FileItem], settings: TaskSettings) -> TaskOutcome:
    """Read local files (on a filesystem the workers share with the driver) and store their chunks."""
    repo = worker_context(settings.plugin).repo
    progress = ProgressRelay(settings.progress_topic)
    results: list[FileResult] = []
    with BlobSink(repo, workers=_threads(settings), max_pending=settings.max_pending) as sink:
        walker = _local_walker(repo, sink, settings, progress, WalkRules())
        stats = walker.stats
        with flushed(sink, progress):
            for item in items:
                errors, inconsistent, reported = len(stats.errors), len(stats.inconsistent), progress.total
                got = walker.file(item.path, item.node, item.parent)
                error = stats.errors[-1].error if len(stats.errors) > errors else ""
                results.append(
                    FileResult(
                        item.path,
                        file_ident(item.node),
                        None if got is None else got[0],
                        0 if got is None else got[1],
                        error=error,
                        unread=progress.total == reported and got is not None and got[1] > 0,
                        inconsistent=len(stats.inconsistent) > inconsistent,
                    )
                )
    return outcome(results, walker, sink)


def walk_subtrees(items: list[SubtreeItem], settings: TaskSettings, rules: WalkRules) -> TaskOutcome:
    """Back up whole local directories (:func:`~snapvault.distributed.subtrees.back_up_subtrees`)
    on the repository planted on this worker."""
    return back_up_subtrees(
        worker_context(settings.plugin).repo,
        items,
        rules,
        threads=_threads(settings),
        max_pending=settings.max_pending,
        read_all=settings.read_all,
        consistency_retries=settings.consistency_retries,
        progress=ProgressRelay(settings.progress_topic),
        should_stop=StopPoll(settings.stop_event),
    )


def _directories(items: Iterable[ObjectItem]) -> list[list[ObjectItem]]:
    """Items grouped by the directory (source and prefix) they lie in, in order."""
    groups: dict[tuple[str, str], list[ObjectItem]] = {}
    for item in items:
        groups.setdefault((item.source, item.path.rstrip("/").rpartition("/")[0]), []).append(item)
    return list(groups.values())


def read_objects(items: list[ObjectItem], settings: TaskSettings) -> TaskOutcome:
    """Read objects below URL sources and store their chunks."""
    import fsspec

    context = worker_context(settings.plugin)
    repo = context.repo
    progress = ProgressRelay(settings.progress_topic)
    filesystems: dict[str, Any] = {}
    results: list[FileResult] = []
    with BlobSink(repo, workers=_threads(settings), max_pending=settings.max_pending) as sink:
        walker = ObjectWalker(
            sink,
            repo.chunker,
            repo.read_tree,
            use_parent_shortcut=not settings.read_all,
            workers=_threads(settings),
            progress=progress,
            should_stop=StopPoll(settings.stop_event),
            consistency_retries=settings.consistency_retries,
        )
        stats = walker.stats
        # The object walker reads one directory's objects at a time, a few ahead on its pool:
        # the private steps it takes inside its own backup().
        walker._pool = ThreadPoolExecutor(walker.workers, thread_name_prefix="snapvault-source")
        try:
            with flushed(sink, progress):
                for group in _directories(items):
                    source = group[0].source
                    if source not in filesystems:
                        filesystems[source] = fsspec.core.url_to_fs(source, **context.options)[0]
                    fs = filesystems[source]
                    errors, inconsistent = len(stats.errors), len(stats.inconsistent)
                    nodes = walker._files(
                        [(_Object(fs, i.path, i.url, i.size, i.mtime_ns, i.xattrs), i.parent) for i in group]
                    )
                    results.extend(
                        _object_results(group, nodes, stats.errors[errors:], stats.inconsistent[inconsistent:])
                    )
        finally:
            walker._pool.shutdown(wait=True, cancel_futures=True)
            walker._pool = None
    return outcome(results, walker, sink)


def _object_results(
    group: list[ObjectItem], nodes: list[Node], errors: Iterable[Any], inconsistent: Iterable[str]
) -> list[FileResult]:
    by_name = {n.name: n for n in nodes}
    error_of = {e.path: e.error for e in errors}
    changed = set(inconsistent)
    out = []
    for i in group:
        node = by_name.get(i.path.rstrip("/").rsplit("/", 1)[-1])
        ident = object_ident(i.size, i.mtime_ns, i.xattrs)
        if node is None:
            out.append(FileResult(i.url, ident, None, 0, error=error_of.get(i.url, "not read")))
            continue
        out.append(
            FileResult(
                i.url,
                ident,
                node.content,
                node.size,
                # The walker hands back the parent's own node for an object it took unread.
                unread=node is i.parent,
                inconsistent=i.url in changed,
                node=node,
            )
        )
    return out


def list_prefix(source: str, path: str, plugin: str) -> dict[str, Any]:
    """Every object below ``path`` on the filesystem of URL ``source``: ``fs.find``'s details."""
    import fsspec

    fs = fsspec.core.url_to_fs(source, **worker_context(plugin).options)[0]
    # fsspec shares filesystem instances within a process: a listing cached by an earlier
    # run on this worker would hide what changed since.
    fs.invalidate_cache()
    found: dict[str, Any] = fs.find(path, detail=True)
    return found
