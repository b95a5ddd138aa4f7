"""One backup by many Dask workers, committed by the driver as one snapshot.

The driver lists the sources (the archiver's walk, storing nothing), cuts the files to read
into tasks of bounded bytes and file counts, and submits them as it goes; workers read, chunk,
seal and upload their own packs and index files and return content IDs. The driver then walks
again with the workers' results, builds and stores the trees exactly as a backup on one
machine does, and commits one manifest.

A local source's walk is split too (``split_walk``): the driver explores the top of the
source breadth first, hands the directories it stops at to workers, which back each up whole
(walk, read, store its files and trees) and return its tree ID; the driver walks only the
levels above them. See docs/howto/dask.md for the cost model.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from snapvault.archiver.fsspec_source import ObjectSource
from snapvault.archiver.session import (
    BackupOptions,
    PreparedSources,
    prepare_sources,
    snapshot_manifest,
    walk_into,
    walk_sources,
)
from snapvault.archiver.sink import BlobSink, SinkStats
from snapvault.archiver.walker import Cancelled, WalkStats
from snapvault.distributed.items import FileItem, FileResult, ObjectItem, SubtreeItem, SubtreeResult, TaskOutcome
from snapvault.distributed.runner import TaskRunner
from snapvault.distributed.tasks import TaskSettings, WalkRules, list_prefix, read_files, read_objects, walk_subtrees
from snapvault.distributed.transport import planted
from snapvault.distributed.walkers import DeferringObjectWalker, DeferringWalker, ListingSink, explore
from snapvault.errors import ConfigError, JobCancelled
from snapvault.pipeline.patterns import parse_size, tag_rules
from snapvault.repository.lifecycle import check_before_commit
from snapvault.repository.manifest import Manifest
from snapvault.repository.repo import Repository

__all__ = ["DEFAULT_SPLIT_DEPTH", "DEFAULT_TASK_BYTES", "DEFAULT_TASK_FILES", "distributed_backup"]

#: A task reads at most about this many bytes (a larger file is a task of its own)...
DEFAULT_TASK_BYTES = 256 << 20
#: ... and at most this many files.
DEFAULT_TASK_FILES = 2000
#: A split walk explores at most this many levels below a local source.
DEFAULT_SPLIT_DEPTH = 4


def distributed_backup(
    repo: Repository,
    sources: Iterable[str | os.PathLike[str]],
    client: Any,
    *,
    source_options: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    exclude_if_present: Iterable[str] = (),
    exclude_caches: bool = False,
    exclude_larger_than: int | str | None = None,
    one_file_system: bool = False,
    tags: Iterable[str] = (),
    hostname: str | None = None,
    now: datetime | None = None,
    parent: Manifest | None = None,
    read_all: bool = False,
    callback: Any = None,
    progress: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_file: Callable[[str, int, bool], None] | None = None,
    task_bytes: int = DEFAULT_TASK_BYTES,
    task_files: int = DEFAULT_TASK_FILES,
    workers: int | None = None,
    max_pending_bytes: int = 24 << 20,
    consistency_retries: int | None = None,
    retries: int = 1,
    split_listing: bool = True,
    split_walk: bool = True,
    split_subtrees: int | None = None,
    split_depth: int = DEFAULT_SPLIT_DEPTH,
) -> Manifest:
    """Back up ``sources`` with the workers of a Dask ``client``; return the committed snapshot.

    The snapshot is the one a single-process backup of the same sources, with the same keys
    and parent, would commit: same trees (so same tree IDs), same statistics except those of
    storage (``data_blobs_added``, ``bytes_stored``... sum the workers', whose duplicates
    stored at once count twice) and the duration.

    Parameters
    ----------
    repo : Repository
        The open repository. Its store and master keys are planted on every worker by a
        worker plugin for the run's duration (never in the task graph); see
        :mod:`snapvault.distributed.transport` for what the scheduler can see.
    sources : iterable of path-like
        As for ``Engine.backup``: local paths (on a filesystem every worker mounts at the same
        place) or fsspec URLs of one protocol.
    client : distributed.Client
        The cluster's client.
    source_options : mapping, optional
        fsspec options of URL sources (credentials too: planted with the keys, not in tasks).
    exclude, exclude_if_present, exclude_caches, exclude_larger_than, one_file_system, tags, hostname
        As for ``Engine.backup``.
    now : datetime, optional
        The snapshot's time (default: the time of the commit).
    parent : Manifest, optional
        The parent snapshot: files it recorded unchanged are neither listed as work nor read.
    read_all : bool
        Read every file (a ``full`` backup).
    callback : fsspec.callbacks.Callback, optional
        Progress of the whole run, on the driver: ``set_size`` with the bytes the listing
        found, ``relative_update`` with the bytes of unchanged files, then with the bytes the
        workers read as they report them; at the end ``value == size``, the exact total.
    progress : callable, optional
        ``progress(bytes, path)`` on the driver as bytes are read: the workers' (``path`` is
        "", from the same events as the callback) and the driver's own. Files taken unread
        from the parent are not reported here (``on_file`` names them).
    should_stop : callable, optional
        Polled on the driver; True cancels the run: every worker stops at its next chunk,
        nothing is committed (JobCancelled).
    on_file : callable, optional
        ``on_file(path, size, unchanged)`` for each regular file, on the driver, as the
        snapshot's trees are built.
    task_bytes, task_files : int
        A task reads at most about ``task_bytes`` (a larger file is a task alone) and at most
        ``task_files`` files.
    workers : int, optional
        Encode threads of each task's sink (and reads ahead for objects); default the CPUs of
        the worker's machine.
    max_pending_bytes : int
        Each task's bound on plaintext waiting to be encoded.
    consistency_retries : int, optional
        As for a ``snapshot`` backup: re-read a file that changed while read.
    retries : int
        Times Dask runs a task again after it raised (a worker that died is retried anyway).
    split_listing : bool
        List an object source with the workers: the driver lists its first level of
        prefixes and a task lists each (``fs.find``), in parallel.
    split_walk : bool
        Split the walk of a local source: the driver explores its top breadth first (see
        ``split_subtrees``, ``split_depth``) and hands each directory where it stops to a
        task that backs it up whole (walks it, reads and stores its files, stores its trees)
        and returns its tree ID; the driver walks only the levels above, whose files tasks
        read as without a split. Off: the driver walks the whole source (twice). Same
        snapshot either way.
    split_subtrees : int, optional
        How many directories a split walk looks for (default: 4 per thread of the cluster);
        they are cut into about this many tasks.
    split_depth : int
        A split walk explores at most this many levels below a source.

    Returns
    -------
    Manifest
        The committed snapshot.

    Raises
    ------
    SourceError, ConfigError
        As ``Engine.backup`` (nothing written).
    JobCancelled
        When ``should_stop`` asked to stop; nothing committed, workers' packs are indexed.
    """
    if task_bytes < 1 or task_files < 1:
        raise ConfigError(f"task_bytes and task_files must be positive, not {task_bytes} and {task_files}")
    if split_depth < 1 or (split_subtrees is not None and split_subtrees < 1):
        raise ConfigError(f"split_depth and split_subtrees must be positive, not {split_depth} and {split_subtrees}")
    started = time.monotonic()
    opts = BackupOptions(
        paths=[os.fspath(p) for p in sources],
        exclude=list(exclude),
        exclude_if_present=list(exclude_if_present),
        exclude_caches=exclude_caches,
        exclude_larger_than=None if exclude_larger_than is None else parse_size(exclude_larger_than),
        one_file_system=one_file_system,
        source_options=dict(source_options or {}),
        tags=list(tags),
        parent=parent,
        read_all=read_all,
        hostname=hostname,
        now=now,
        # The driver's own threads: its trees, and reading a file that changed since listed.
        workers=2,
        max_pending=max_pending_bytes,
        consistency_retries=consistency_retries,
        should_stop=should_stop,
        on_file=on_file,
    )
    prepared = prepare_sources(opts)
    host = hostname or socket.gethostname()
    run = _Run(client, opts, prepared, callback, progress, task_bytes, task_files, retries)
    run.task_workers = workers
    run.split_listing = split_listing
    run.split_walk = split_walk
    run.split_subtrees = split_subtrees
    run.split_depth = split_depth
    # The driver is the writer prunes see, from before anything is deduplicated (its index
    # and every task's) until the commit: the workers' packs are covered by its records.
    with repo.writer_session(host=host) as session, planted(client, repo, opts.source_options) as plugin:
        root, walk, sink = run.build(repo, plugin)
        manifest = snapshot_manifest(opts, prepared.kept, host, root, walk, sink, started, dict(opts.extra))
        check_before_commit(repo, session, root)
        saved = repo.save_manifest(manifest)
    run.finish(walk.total_bytes)
    return saved


class _Run:
    """One distributed backup's driver state: the tasks being cut, and their results."""

    def __init__(
        self,
        client: Any,
        opts: BackupOptions,
        prepared: PreparedSources,
        callback: Any,
        progress: Callable[[int, str], None] | None,
        task_bytes: int,
        task_files: int,
        retries: int,
    ) -> None:
        self.client = client
        self.opts = opts
        self.prepared = prepared
        self.task_bytes = task_bytes
        self.task_files = task_files
        self.runner = TaskRunner(
            client, "read", callback=callback, progress=progress, should_stop=opts.should_stop, retries=retries
        )
        self._batch: list[FileItem | ObjectItem] = []
        self._batch_bytes = 0
        self._listed_bytes = 0
        self.settings: TaskSettings | None = None
        #: Encode threads of each task (None: the worker's CPUs).
        self.task_workers: int | None = None
        #: Whether an object source's listing is split across the workers, by prefix.
        self.split_listing = True
        #: Whether a local source's walk is split across the workers, by directory.
        self.split_walk = True
        self.split_subtrees: int | None = None
        self.split_depth = DEFAULT_SPLIT_DEPTH
        #: The directories handed to workers whole (path -> path relative to its source).
        self.split: dict[str, str] = {}
        self._subtree_batch: list[SubtreeItem] = []
        self._subtrees_per_task = 1
        self.rules = WalkRules()
        #: The callback's size: what the listing found, plus each finished subtree's bytes.
        self._size = 0
        #: The finished tasks' counters, summed.
        self.outcome = TaskOutcome()

    def finish(self, total: int) -> None:
        """Make the callback's value the exact total."""
        self.runner.finish(total)

    # -- tasks -------------------------------------------------------------------------------

    def _record(self, item: FileItem | ObjectItem) -> None:
        size = item.node.size if isinstance(item, FileItem) else item.size
        self._batch.append(item)
        self._batch_bytes += size
        self._listed_bytes += size
        if len(self._batch) >= self.task_files or self._batch_bytes >= self.task_bytes:
            self._submit()

    def _submit(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self.runner.submit(read_files if isinstance(batch[0], FileItem) else read_objects, batch, self.settings)

    def _delegate(self, item: SubtreeItem) -> None:
        self._subtree_batch.append(item)
        if len(self._subtree_batch) >= self._subtrees_per_task:
            self._submit_subtrees()

    def _submit_subtrees(self) -> None:
        if self._subtree_batch:
            batch, self._subtree_batch = self._subtree_batch, []
            self.runner.submit(walk_subtrees, batch, self.settings, self.rules)

    def _explore(self) -> None:
        """Choose the directories of local sources that workers back up whole."""
        opts = self.opts
        if self.prepared.sources is not None or not self.split_walk:
            return
        want = self.split_subtrees or 4 * max(1, sum(self.client.nthreads().values()))
        self.split = explore(self.prepared.kept, self.prepared.flt, want, self.split_depth, opts.should_stop)
        self._subtrees_per_task = max(1, -(-len(self.split) // want))
        self.rules = WalkRules(
            exclude=tuple(opts.exclude),
            exclude_if_present=tuple(opts.exclude_if_present),
            exclude_caches=opts.exclude_caches,
            larger_than=None if opts.exclude_larger_than is None else parse_size(opts.exclude_larger_than),
            one_file_system=opts.one_file_system,
            events=opts.on_file is not None,
        )

    def _list_split(self, src: ObjectSource) -> dict[str, Any]:
        """List a source with the workers: the driver lists its first level, each prefix there
        is listed by a task."""
        top = src.fs.ls(src.path, detail=True)
        prefixes = [e["name"] for e in top if e.get("type") == "directory"]
        if len(prefixes) < 2:
            found: dict[str, Any] = src.fs.find(src.path, detail=True)
            return found
        listing = {e["name"]: e for e in top if e.get("type") == "file"}
        runner = TaskRunner(self.client, "list", should_stop=self.opts.should_stop, retries=self.runner.retries)
        assert self.settings is not None
        for prefix in prefixes:
            runner.submit(list_prefix, src.url, prefix, self.settings.plugin)
        try:
            for part in runner.results():
                listing.update(part)
        except BaseException:
            runner.stop()
            raise
        return listing

    def _gather(self) -> tuple[dict[str, FileResult], dict[str, SubtreeResult]]:
        """Every task's results by path (or URL), and every subtree's by its directory's path;
        raise Cancelled when asked to stop."""
        results: dict[str, FileResult] = {}
        subtrees: dict[str, SubtreeResult] = {}
        for out in self.runner.results():
            for r in out.results:
                results[r.key] = r
            for t in out.subtrees:
                subtrees[t.path] = t
                # The listing did not see a subtree's bytes: the size grows by them, and the
                # bytes its task took unread from the parent are done.
                self._size += t.stats.total_bytes
                self.runner.sized(self._size)
                self.runner.credit(t.unread_bytes)
            for name in ("bytes_read", "rereads", *_SINK_FIELDS):
                setattr(self.outcome, name, getattr(self.outcome, name) + getattr(out, name))
        return results, subtrees

    # -- the two passes ----------------------------------------------------------------------

    def _walker(
        self,
        sink: Any,
        repo: Repository,
        results: dict[str, FileResult],
        *,
        listing: bool,
        previous: DeferringObjectWalker | None = None,
        subtrees: dict[str, SubtreeResult] | None = None,
    ) -> DeferringWalker | DeferringObjectWalker:
        opts = self.opts
        larger = None if opts.exclude_larger_than is None else parse_size(opts.exclude_larger_than)
        record = self._record if listing else None
        if self.prepared.sources is not None:
            return DeferringObjectWalker(
                sink,
                repo.chunker,
                repo.read_tree,
                results=results,
                record=record,
                listing=None if previous is None else previous.listing,
                lister=self._list_split if listing and self.split_listing else None,
                use_parent_shortcut=not opts.read_all,
                workers=opts.workers,
                progress=self.runner.advance,
                should_stop=opts.should_stop,
                on_file=None if listing else opts.on_file,
                consistency_retries=opts.consistency_retries,
                larger_than=larger,
            )
        return DeferringWalker(
            sink,
            repo.chunker,
            repo.tree_nodes,
            results=results,
            record=record,
            split=self.split if listing else None,
            delegate=self._delegate if listing else None,
            subtrees=subtrees,
            use_parent_shortcut=not opts.read_all,
            progress=self.runner.advance,
            should_stop=opts.should_stop,
            consistency_retries=opts.consistency_retries,
            on_file=None if listing else opts.on_file,
            tag_rules=tag_rules(opts.exclude_if_present, caches=opts.exclude_caches),
            larger_than=larger,
            one_file_system=opts.one_file_system,
        )

    def build(self, repo: Repository, plugin: str) -> tuple[str, WalkStats, SinkStats]:
        """List, have the workers read, build the trees: the root's ID and the run's counters."""
        opts = self.opts
        self.settings = TaskSettings(
            plugin=plugin,
            stop_event=self.runner.stop_name,
            progress_topic=self.runner.topic,
            workers=self.task_workers,
            max_pending=opts.max_pending,
            read_all=opts.read_all,
            consistency_retries=opts.consistency_retries,
        )
        parent_tree = opts.parent.tree if opts.parent is not None else None
        runner = self.runner
        try:
            with runner.listening():
                self._explore()
                listing = self._walker(ListingSink(repo.index), repo, {}, listing=True)
                walk_sources(listing, self.prepared, parent_tree)
                self._submit()
                self._submit_subtrees()
                self._size = self._listed_bytes + listing.stats.total_bytes
                runner.sized(self._size)
                # Files taken unread from the parent are done already.
                runner.credit(listing.stats.total_bytes)
                results, subtrees = self._gather()
            with BlobSink(repo, workers=opts.workers, max_pending=opts.max_pending) as sink:
                previous = listing if isinstance(listing, DeferringObjectWalker) else None
                walker = self._walker(sink, repo, results, listing=False, previous=previous, subtrees=subtrees)
                root = walk_into(walker, sink, self.prepared, parent_tree)
        except Cancelled:
            runner.stop()
            raise JobCancelled("backup cancelled; no snapshot was written") from None
        except BaseException:
            runner.stop()
            raise
        walk = walker.stats
        walk.bytes_read += self.outcome.bytes_read
        walk.rereads += self.outcome.rereads
        total = SinkStats(**{name: getattr(sink.stats, name) + getattr(self.outcome, name) for name in _SINK_FIELDS})
        return root, walk, total


_SINK_FIELDS = ("data_blobs_added", "tree_blobs_added", "bytes_added", "bytes_stored", "packs_written")
