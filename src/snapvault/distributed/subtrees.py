"""Backing up whole local directories in another process, as a single-process backup walks
them: the part of a worker's task that needs neither Dask nor anything else of the cluster.

A Dask task (:mod:`snapvault.distributed.tasks`) and a local process pool's task
(:mod:`snapvault.distributed.pool`) both call :func:`back_up_subtrees` with their own way of
reporting progress and of being told to stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from snapvault.archiver.fsspec_source import ObjectWalker
from snapvault.archiver.sink import BlobSink
from snapvault.archiver.walker import Cancelled, Walker, WalkStats
from snapvault.distributed.items import FileResult, SubtreeItem, SubtreeResult, TaskOutcome
from snapvault.pipeline.patterns import PathFilter, tag_rules
from snapvault.repository.repo import Repository

__all__ = [
    "FileEvents",
    "Progress",
    "WalkRules",
    "back_up_subtrees",
    "flushed",
    "local_walker",
    "outcome",
    "walk_subtrees_into",
]


class WalkRules(NamedTuple):
    """A backup's exclusion rules, for a task that walks directories (plain data, no secret).

    ``events``: keep each file's ``on_file`` call for the driver (the run has an ``on_file``).
    """

    exclude: tuple[str, ...] = ()
    exclude_if_present: tuple[str, ...] = ()
    exclude_caches: bool = False
    larger_than: int | None = None
    one_file_system: bool = False
    events: bool = False


class Progress(Protocol):
    """A task's progress: ``progress(bytes, path)`` as it reads, ``flush()`` at the end."""

    total: int

    def __call__(self, n: int, path: str) -> None: ...

    def flush(self) -> None: ...


def outcome(
    results: list[FileResult],
    walker: Walker | ObjectWalker,
    sink: BlobSink,
    subtrees: list[SubtreeResult] | None = None,
) -> TaskOutcome:
    """A task's result: its files' or directories' results, and what its sink added."""
    s = sink.stats
    return TaskOutcome(
        results=results,
        subtrees=subtrees or [],
        # A subtree's reads are counted in its own stats.
        bytes_read=0 if subtrees else walker.stats.bytes_read,
        rereads=0 if subtrees else walker.stats.rereads,
        data_blobs_added=s.data_blobs_added,
        tree_blobs_added=s.tree_blobs_added,
        bytes_added=s.bytes_added,
        bytes_stored=s.bytes_stored,
        packs_written=s.packs_written,
    )


@contextlib.contextmanager
def flushed(sink: BlobSink, progress: Progress) -> Iterator[None]:
    """Flush the sink at the end (packs and the task's index file); on failure keep what landed."""
    try:
        yield
        sink.flush()
    except BaseException as e:
        with contextlib.suppress(Exception):
            sink.abandon(keep=isinstance(e, Cancelled))
        raise
    finally:
        progress.flush()


def local_walker(
    repo: Repository,
    sink: BlobSink,
    progress: Progress,
    should_stop: Callable[[], bool],
    rules: WalkRules,
    *,
    read_all: bool,
    consistency_retries: int | None,
) -> Walker:
    """The archiver's walker of local files, as a task runs it."""
    return Walker(
        sink,
        repo.chunker,
        repo.tree_nodes,
        use_parent_shortcut=not read_all,
        progress=progress,
        should_stop=should_stop,
        consistency_retries=consistency_retries,
        tag_rules=tag_rules(rules.exclude_if_present, caches=rules.exclude_caches),
        larger_than=rules.larger_than,
        one_file_system=rules.one_file_system,
    )


class FileEvents:
    """``on_file`` for a subtree's walk: the bytes taken unread from the parent (progress no
    read reports), and each call when the driver has an ``on_file`` to give them to."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.events: list[tuple[str, int, bool]] = []
        self.unread = 0

    def __call__(self, path: str, size: int, unchanged: bool) -> None:
        if unchanged:
            self.unread += size
        if self.keep:
            self.events.append((path, size, unchanged))


def walk_subtrees_into(
    sink: BlobSink,
    repo: Repository,
    items: list[SubtreeItem],
    rules: WalkRules,
    *,
    read_all: bool,
    consistency_retries: int | None,
    progress: Progress,
    should_stop: Callable[[], bool],
) -> tuple[list[SubtreeResult], Walker]:
    """Walk whole local directories into ``sink`` (which the caller flushes): each one's tree
    ID and the counters of its walk, and the walker.

    Each directory is walked exactly as a single-process backup walks it below its source
    (its path relative to the source is what exclude patterns match; the parent snapshot's
    tree gives the unchanged-file shortcuts), so its tree ID is that backup's.
    """
    flt = PathFilter(exclude=rules.exclude)
    done: list[SubtreeResult] = []
    walker = local_walker(
        repo, sink, progress, should_stop, rules, read_all=read_all, consistency_retries=consistency_retries
    )
    for item in items:
        # Counters of this directory alone: the driver adds them where the directory lies in
        # its walk, so errors keep a single-process backup's order.
        walker.stats = WalkStats()
        walker.on_file = events = FileEvents(rules.events)
        tree = walker.directory(item.path, item.rel, flt, item.parent_tree)
        done.append(SubtreeResult(item.path, item.ident, tree, walker.stats, tuple(events.events), events.unread))
    return done, walker


def back_up_subtrees(
    repo: Repository,
    items: list[SubtreeItem],
    rules: WalkRules,
    *,
    threads: int,
    max_pending: int,
    read_all: bool,
    consistency_retries: int | None,
    progress: Progress,
    should_stop: Callable[[], bool],
) -> TaskOutcome:
    """Back up whole local directories (:func:`walk_subtrees_into`) with a sink of their own:
    every pack is stored and listed in an index file before this returns."""
    with BlobSink(repo, workers=threads, max_pending=max_pending) as sink, flushed(sink, progress):
        done, walker = walk_subtrees_into(
            sink,
            repo,
            items,
            rules,
            read_all=read_all,
            consistency_retries=consistency_retries,
            progress=progress,
            should_stop=should_stop,
        )
    return outcome([], walker, sink, done)
