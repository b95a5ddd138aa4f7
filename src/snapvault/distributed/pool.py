"""One backup of local sources by a pool of processes on this machine, committed as one snapshot.

Python threads cannot share a small file's work (the walk, the node, the tree are Python and
hold the interpreter's lock; each C call in between is too short to pay for releasing it), so
a backup of many small files runs on one core however many encode threads it has. This module
puts the other cores to work the way a Dask split walk does (:mod:`snapvault.distributed.backup`),
without Dask:

1. The driver (this process) explores the top of each source breadth first
   (:func:`~snapvault.distributed.walkers.explore`) and picks directories to hand out whole.
2. A listing pass over the levels above them (storing nothing) finds each one's tree in the
   parent snapshot and submits it to the pool as soon as it is reached.
3. Each pool process opens the repository from the driver's store and master keys
   (:mod:`snapvault.distributed.handoff`), backs its directories up with the archiver's own
   walker (reads, chunks, seals and stores their files and trees in its own packs and index
   file) and returns their tree IDs and counters.
4. Meanwhile the driver walks the levels above again, reading their files itself, and takes
   each handed-out directory's tree ID when the walk reaches it; then it commits one manifest.

The snapshot is the one a single-process backup would commit: same trees, same tree IDs,
same counters except those of storage (blobs that two processes stored at once count, and are
stored, twice; the next prune removes the copy). The driver's writer session covers the pool's
packs for prunes, as it covers a Dask run's. Processes start with ``forkserver`` where the
platform has it (never a plain ``fork`` of a process that runs threads), else ``spawn``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import socket
import time
from dataclasses import fields
from typing import Any, NamedTuple

from snapvault.archiver.session import (
    BackupOptions,
    PreparedSources,
    prepare_sources,
    run_backup,
    snapshot_manifest,
    walk_into,
    walk_sources,
)
from snapvault.archiver.sink import BlobSink, SinkStats
from snapvault.archiver.walker import Cancelled, WalkStats
from snapvault.distributed.handoff import handle_bytes, open_handle, shared_between_processes
from snapvault.distributed.items import SubtreeItem, SubtreeResult
from snapvault.distributed.runner import BatchedProgress, PolledFlag
from snapvault.distributed.subtrees import WalkRules, walk_subtrees_into
from snapvault.distributed.walkers import DeferringWalker, ListingSink, explore
from snapvault.errors import ConfigError, JobCancelled, SnapvaultError
from snapvault.pipeline.codecs import Codec
from snapvault.pipeline.patterns import tag_rules
from snapvault.repository.lifecycle import check_before_commit
from snapvault.repository.manifest import Manifest
from snapvault.repository.repo import Repository

__all__ = ["SPLIT_DEPTH", "SUBTREES_PER_PROCESS", "WIDE", "pool_backup"]

#: The driver looks for about this many directories to hand out per process: enough that one
#: large directory does not leave the other processes idle at the end.
SUBTREES_PER_PROCESS = 8
#: ... at most this many levels below a source.
SPLIT_DEPTH = 4
#: A directory without subdirectories passed on the way down is handed out when it holds at
#: least this many entries (a wide folder next to deep ones).
WIDE = 1000
# How often the driver passes the pool's progress on, and a process adds to it or asks
# whether to stop; how long the driver waits at a time for a message.
_PUMP_S = 0.1
_REPORT_S = 0.25
_WAIT_S = 0.05
# How long a run that failed or was cancelled waits for its processes to stop and index what
# they stored, before it ends them.
_DRAIN_S = 60.0
# ... and how long once a process died without a word (not one that reported an error and
# ended): it may have died holding a lock the others need (the task queue's, held while a
# process waits for a task; the progress counter's), and then they wait for it forever. What
# they stored and did not index stays as unindexed packs, which the next prune removes.
_ORPHANED_S = 5.0


def pool_backup(repo: Repository, opts: BackupOptions, processes: int) -> Manifest:
    """Back up the local sources of ``opts`` with ``processes`` processes; return the snapshot.

    Falls back to a backup in this process alone (same snapshot) when there is nothing to
    share: one process asked for, URL sources, a ``before_commit`` hook (it needs every blob
    the run stored), a repository on fsspec's memory filesystem (other processes cannot see
    it), or sources with fewer than two directories to hand out.

    Parameters
    ----------
    repo : Repository
        The open repository; each pool process opens its own handle from its store and
        master keys (never the password).
    opts : BackupOptions
        As for :func:`~snapvault.archiver.session.run_backup`. ``opts.workers`` encode threads
        are shared among the processes (at least one each).
    processes : int
        Processes that walk and store handed-out directories (the driver walks and stores
        the levels above them besides).

    Raises
    ------
    ConfigError
        ``processes`` below 1, or what :func:`prepare_sources` refuses.
    SourceError
        A source that does not exist (nothing written).
    JobCancelled
        ``opts.should_stop`` asked to stop: nothing committed; every process has stopped and
        indexed what it stored.
    SnapvaultError
        A pool process ended without returning (killed, out of memory): nothing committed.
    """
    if processes < 1:
        raise ConfigError(f"processes must be 1 or more, not {processes}")
    started = time.monotonic()
    prepared = prepare_sources(opts)
    if (
        processes == 1
        or prepared.sources is not None
        or opts.before_commit is not None
        or not shared_between_processes(repo)
    ):
        return run_backup(repo, opts).manifest
    want = SUBTREES_PER_PROCESS * processes
    split = explore(prepared.kept, prepared.flt, want, SPLIT_DEPTH, opts.should_stop, wide=WIDE)
    if len(split) < 2:
        return run_backup(repo, opts).manifest
    host = opts.hostname or socket.gethostname()
    with repo.writer_session(host=host) as session:
        with _Pool(repo, opts, processes) as pool:
            root, walk, stats = _walk(repo, opts, prepared, split, pool)
        manifest = snapshot_manifest(opts, prepared.kept, host, root, walk, stats, started, dict(opts.extra))
        check_before_commit(repo, session, root)
        return repo.save_manifest(manifest)


def _walk(
    repo: Repository, opts: BackupOptions, prepared: PreparedSources, split: dict[str, str], pool: _Pool
) -> tuple[str, WalkStats, SinkStats]:
    """The two passes of the driver: hand out, then build the trees; the root and counters."""
    parent_tree = opts.parent.tree if opts.parent is not None else None
    common: dict[str, Any] = {
        "use_parent_shortcut": not opts.read_all,
        "consistency_retries": opts.consistency_retries,
        "tag_rules": tag_rules(opts.exclude_if_present, caches=opts.exclude_caches),
        "larger_than": opts.exclude_larger_than,
        "one_file_system": opts.one_file_system,
    }
    try:
        listing = DeferringWalker(
            ListingSink(repo.index),
            repo.chunker,
            repo.tree_nodes,
            results={},
            # Files above the handed-out directories are the final pass's to read.
            record=lambda item: None,
            split=split,
            delegate=pool.delegate,
            should_stop=pool.should_stop,
            **common,
        )
        walk_sources(listing, prepared, parent_tree)
        pool.submit(_largest_first(split))
        with BlobSink(repo, workers=opts.workers, max_pending=opts.max_pending, codec=opts.codec) as sink:
            walker = DeferringWalker(
                sink,
                repo.chunker,
                repo.tree_nodes,
                results={},
                subtrees=pool.results,
                progress=opts.progress,
                should_stop=pool.should_stop,
                on_file=opts.on_file,
                **common,
            )
            root = walk_into(walker, sink, prepared, parent_tree)
    except Cancelled:
        raise JobCancelled("backup cancelled; no snapshot was written") from None
    o = pool.finish()
    # The processes' index files, so that this handle (and the commit's checks) knows every
    # blob the snapshot references.
    repo.refresh_index()
    stats = SinkStats(**{f.name: getattr(sink.stats, f.name) + getattr(o, f.name) for f in fields(SinkStats)})
    return root, walker.stats, stats


class _Settings(NamedTuple):
    """How a pool process reads and stores (the run's options a process needs)."""

    threads: int
    max_pending: int
    read_all: bool
    consistency_retries: int | None
    codec: Codec | None


class _Pool:
    """The processes of one run: a queue of directories to back up, a queue of what they
    found, and the progress counter and stop event they share.

    Each process opens the repository once and keeps one sink for the whole run (so the run
    writes full packs, not a partial pack per directory); a ``None`` on the task queue tells
    it to flush that sink (or, once the run is stopping, to keep only what is safely stored),
    report its counters and end. Each process takes exactly one ``None``, because it ends
    after it.
    """

    def __init__(self, repo: Repository, opts: BackupOptions, processes: int) -> None:
        self.opts = opts
        ctx: Any = multiprocessing.get_context(_start_method())
        #: Bytes the processes read, added to by each; the driver passes the growth on.
        self._counter: Any = ctx.Value("q", 0)
        self._stop: Any = ctx.Event()
        self._tasks: Any = ctx.Queue()
        self._found: Any = ctx.Queue()
        self._passed = 0
        self._next_pump = 0.0
        rules = WalkRules(
            exclude=tuple(opts.exclude),
            exclude_if_present=tuple(opts.exclude_if_present),
            exclude_caches=opts.exclude_caches,
            larger_than=opts.exclude_larger_than,
            one_file_system=opts.one_file_system,
            events=opts.on_file is not None,
        )
        settings = _Settings(
            max(1, opts.workers // processes), opts.max_pending, opts.read_all, opts.consistency_retries, opts.codec
        )
        store_bytes, keys_json = handle_bytes(repo)
        args = (store_bytes, keys_json, self._tasks, self._found, self._counter, self._stop, rules, settings)
        # Started now: a process opens the repository while the driver explores the sources.
        self._procs: list[Any] = []
        for _ in range(processes):
            proc = ctx.Process(target=_serve, args=args, name="snapvault-backup", daemon=True)
            proc.start()
            self._procs.append(proc)
        self.results = _Results(self)
        self._held: list[SubtreeItem] = []
        self._finals: dict[int, SinkStats] = {}
        #: Processes that reported an error (one that failed to flush ends without a final).
        self._reported: set[int] = set()

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            # Ask every process to stop at its next file or chunk and keep what it stored, and
            # wait (bounded) until none runs: when the backup raises, nothing of it still reads
            # or writes.
            self._stop.set()
            with contextlib.suppress(Exception):
                self._end(deadline=time.monotonic() + _DRAIN_S, raise_errors=False)
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5)
        for q in (self._tasks, self._found):
            q.close()
            q.join_thread()
        # Drop every reference to the shared locks and queues now: their semaphores are
        # unlinked when collected, and a CLI that leaves with os._exit would otherwise leave
        # them for the resource tracker to warn about.
        self._procs = []
        self._tasks = self._found = self._counter = self._stop = None

    # -- tasks -------------------------------------------------------------------------------

    def delegate(self, item: SubtreeItem) -> None:
        """Take one directory for the processes, as the listing pass reaches it."""
        self._held.append(item)
        self.results.expect(item.path)

    def submit(self, order: list[str]) -> None:
        """Queue the directories taken, one task each, in ``order`` (their paths)."""
        rank = {path: i for i, path in enumerate(order)}
        for item in sorted(self._held, key=lambda i: rank.get(i.path, len(rank))):
            self._tasks.put([item])
        self._held = []

    def receive(self) -> None:
        """Wait (briefly) for one message from the processes and take it in; raise a
        process's error, or SnapvaultError when one ended without a word."""
        try:
            kind, pid, payload = self._found.get(timeout=_WAIT_S)
        except queue.Empty:
            self.pump()
            if any(p.exitcode is not None and p.pid not in self._finals for p in self._procs):
                raise SnapvaultError("a backup process ended before finishing its directories") from None
            return
        if kind == "done":
            self.results.found(payload)
        elif kind == "final":
            self._finals[pid] = payload
        else:
            self._reported.add(pid)
            raise payload
        self.pump(force=True)

    def finish(self) -> SinkStats:
        """Have every process flush its sink and end; their counters, summed."""
        self._end(deadline=None, raise_errors=True)
        total = SinkStats()
        for stats in self._finals.values():
            for f in fields(SinkStats):
                setattr(total, f.name, getattr(total, f.name) + getattr(stats, f.name))
        return total

    def _end(self, *, deadline: float | None, raise_errors: bool) -> None:
        for _ in self._procs:
            self._tasks.put(None)
        while len(self._finals) < len(self._procs):
            if deadline is not None and time.monotonic() > deadline:
                return
            try:
                self.receive()
            except Exception:
                if raise_errors:
                    raise
                # A process that died, failed or stopped: the others may still report.
                if all(p.exitcode is not None for p in self._procs):
                    return
                if any(
                    p.exitcode is not None and p.pid not in self._finals and p.pid not in self._reported
                    for p in self._procs
                ):
                    orphaned = time.monotonic() + _ORPHANED_S
                    deadline = orphaned if deadline is None else min(deadline, orphaned)

    # -- signals -----------------------------------------------------------------------------

    def should_stop(self) -> bool:
        """The run's ``should_stop``; also passes the pool's progress on (on this thread)."""
        self.pump()
        return self.opts.should_stop is not None and self.opts.should_stop()

    def pump(self, *, force: bool = False) -> None:
        """Report the bytes the processes read since the last report to ``opts.progress``."""
        now = time.monotonic()
        if self.opts.progress is None or (not force and now < self._next_pump):
            return
        self._next_pump = now + _PUMP_S
        total = self._counter.value
        if total > self._passed:
            n, self._passed = total - self._passed, total
            self.opts.progress(n, "")


def _largest_first(split: dict[str, str]) -> list[str]:
    """The handed-out directories, those with the most entries first (walk order among
    equals): the longest tasks start first, so that no process is left with one at the end.
    Entries are counted with ``scandir`` (no ``lstat``); a directory's own entries stand for
    its size, which finds wide folders, the usual long tasks."""

    def entries(path: str) -> int:
        try:
            with os.scandir(path) as it:
                return sum(1 for _ in it)
        except OSError:
            return 0

    size = {path: entries(path) for path in split}
    return sorted(split, key=lambda path: -size[path])


class _Results:
    """The handed-out directories' results by path, as the final pass asks for them: ``pop``
    waits until the processes have sent the directory's (and keeps the run's progress and
    cancellation moving meanwhile)."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._expected: set[str] = set()
        self._done: dict[str, SubtreeResult] = {}

    def __len__(self) -> int:
        return len(self._expected) + len(self._done)

    def expect(self, path: str) -> None:
        self._expected.add(path)

    def found(self, results: list[SubtreeResult]) -> None:
        for r in results:
            self._expected.discard(r.path)
            self._done[r.path] = r

    def pop(self, path: str, default: None, /) -> SubtreeResult | None:
        if path not in self._expected:
            return self._done.pop(path, default)
        while path in self._expected:
            if self._pool.should_stop():
                raise Cancelled
            self._pool.receive()
        return self._done.pop(path, default)


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


# -- in the pool's processes -------------------------------------------------------------------


class _SharedProgress(BatchedProgress):
    """A process's progress: bytes read, added to the run's shared counter in batches."""

    def __init__(self, counter: Any) -> None:
        super().__init__(_REPORT_S)
        self._counter = counter

    def _send(self, n: int) -> None:
        with self._counter.get_lock():
            self._counter.value += n


def _serve(
    store_bytes: bytes,
    keys_json: bytes,
    tasks: Any,
    found: Any,
    counter: Any,
    stop: Any,
    rules: WalkRules,
    settings: _Settings,
) -> None:
    """A pool process: back up the directories queued in ``tasks`` until a ``None``, then
    flush (or abandon) its sink and report its counters."""
    threads, max_pending, read_all, consistency_retries, codec = settings
    pid = os.getpid()
    progress = _SharedProgress(counter)
    should_stop = PolledFlag(stop, _REPORT_S)
    sink: BlobSink | None = None
    failed = False
    try:
        repo = open_handle(store_bytes, keys_json)
    except BaseException as e:  # noqa: BLE001 - reported to the driver, which raises it
        found.put(("error", pid, _sendable(e)))
        failed = True
    while True:
        items = tasks.get()
        if items is None:
            break
        if failed or stop.is_set():
            continue
        try:
            if sink is None:
                sink = BlobSink(repo, workers=threads, max_pending=max_pending, codec=codec)
            done, _ = walk_subtrees_into(
                sink,
                repo,
                items,
                rules,
                read_all=read_all,
                consistency_retries=consistency_retries,
                progress=progress,
                should_stop=should_stop,
            )
            progress.flush()
            found.put(("done", pid, done))
        except BaseException as e:  # noqa: BLE001 - reported to the driver, which raises it
            failed = True
            found.put(("error", pid, _sendable(e)))
    stats = SinkStats()
    if sink is not None:
        try:
            if failed or stop.is_set():
                # Keep what is queued only on a clean stop; either way index what landed.
                sink.abandon(keep=not failed)
            else:
                sink.flush()
        except BaseException as e:  # noqa: BLE001 - reported to the driver, which raises it
            found.put(("error", pid, _sendable(e)))
            sink.close()
            return
        sink.close()
        stats = sink.stats
    found.put(("final", pid, stats))


def _sendable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling, else an error that says what it was."""
    if isinstance(e, Cancelled):
        return e
    try:
        pickle.loads(pickle.dumps(e))  # this process's own object, to see whether it travels
    except Exception:  # noqa: BLE001 - any failure to pickle: send the text
        return SnapvaultError(f"{type(e).__name__}: {e}")
    return e
