"""One backup run: sources -> trees and blobs -> manifest. Engine and policies build on this."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from snapvault._version import __version__
from snapvault.archiver.fsspec_source import ObjectSource, ObjectWalker, is_url, normal_url, open_sources
from snapvault.archiver.sink import BlobSink, SinkRepository, SinkStats
from snapvault.archiver.walker import Cancelled, Walker, WalkStats
from snapvault.errors import ConfigError, JobCancelled, SourceError
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.pipeline.codecs import Codec
from snapvault.pipeline.patterns import PathFilter, parse_size, tag_rules
from snapvault.pipeline.tree import Node
from snapvault.repository.lifecycle import CommitRepository, WriterSession, check_before_commit
from snapvault.repository.manifest import Manifest, SnapshotStats, cap_errors, cap_paths

__all__ = [
    "BackupOptions",
    "BackupRepository",
    "PreparedSources",
    "prepare_sources",
    "run_backup",
    "snapshot_manifest",
    "source_paths",
    "walk_into",
    "walk_sources",
]


class BackupRepository(SinkRepository, CommitRepository, Protocol):
    """What one backup run needs of a repository: the sink's needs, plus the chunker, the
    parent snapshot's trees, the writer's presence for prunes to see, and the commit."""

    def writer_session(
        self, *, writer_id: str | None = None, host: str = "", clock: Callable[[], datetime] | None = None
    ) -> WriterSession:
        """Announce this writer and load the index as it stands."""
        ...

    @property
    def chunker(self) -> ChunkerParams:
        """Chunk size bounds and the secret seed."""
        ...

    def read_tree(self, tree_id: str) -> list[Node]:
        """Fetch and parse a tree blob."""
        ...

    def tree_nodes(self, tree_id: str) -> Iterable[Node]:
        """A tree blob's nodes in order, parsed as they are iterated (each iteration again)."""
        ...

    def save_manifest(self, manifest: Manifest) -> Manifest:
        """Write a manifest (the commit point) and return it with its ID."""
        ...


_Trie = dict[str, Any]  # name -> _Trie, or None where a source ends


def _normal(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def source_paths(paths: Sequence[str]) -> list[str]:
    """Absolute, normalised, de-duplicated sources, nested ones dropped, sorted (URLs: without
    trailing slashes, de-duplicated, sorted)."""
    if any(is_url(p) for p in paths):
        return sorted({normal_url(p) for p in paths})
    roots = sorted({_normal(p) for p in paths})
    kept: list[str] = []
    for p in roots:
        if any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            continue
        kept.append(p)
    return ["/"] if "/" in kept else kept


def _refuse_hidden_sources(paths: Sequence[str], kept: list[str]) -> None:
    """Refuse a nested source that the source covering it would record as a symlink.

    ``/a`` covers ``/a/b``, so ``/a/b`` is dropped; but when a component between them is a
    symlink (``/a/link/b``), the backup of ``/a`` records ``link`` as a symlink and never
    reads ``b``: dropping it would silently lose what the user asked for.
    """
    for p in {_normal(p) for p in paths} - set(kept):
        outer = next(k for k in kept if k == "/" or p.startswith(k + "/"))
        step = outer
        for part in p[len(outer) :].strip("/").split("/")[:-1]:
            if os.path.islink(step):
                break
            step = os.path.join(step, part)
        if os.path.islink(step):
            raise ConfigError(
                f"source {p} lies inside source {outer} through the symlink {step}, which {outer} "
                "records as a link; give the symlink's target as a source instead"
            )


def _trie(kept: list[str]) -> _Trie | None:
    if kept == ["/"]:
        return None
    trie: _Trie = {}
    for p in kept:
        parts = [c for c in p.split("/") if c]
        node = trie
        for c in parts[:-1]:
            node = node.setdefault(c, {})
        node[parts[-1]] = None
    return trie


@dataclass
class BackupOptions:
    """Everything one backup run needs besides the repository.

    The exclusion rules besides ``exclude`` (restic's options of the same names):
    ``exclude_if_present`` (``NAME`` or ``NAME:HEADER``: a directory holding such a file keeps
    only that file), ``exclude_caches`` (the same for a ``CACHEDIR.TAG`` with the standard's
    signature), ``exclude_larger_than`` (bytes; larger regular files are left out) and
    ``one_file_system`` (nothing below a source on another file system; mount points are
    recorded as empty directories). Excluded entries are not errors.

    ``paths`` may instead be fsspec URLs (``s3://bucket/prefix``), all of one protocol, opened
    with ``source_options`` (see :mod:`snapvault.archiver.fsspec_source`).
    """

    paths: list[str]
    exclude: list[str] = field(default_factory=list)
    exclude_if_present: list[str] = field(default_factory=list)
    exclude_caches: bool = False
    exclude_larger_than: int | None = None
    one_file_system: bool = False
    #: fsspec storage options for URL sources (``key``, ``endpoint_url``, ``anon``...).
    source_options: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    parent: Manifest | None = None
    read_all: bool = False
    hostname: str | None = None
    now: datetime | None = None
    workers: int = 2
    max_pending: int = 24 << 20
    codec: Codec | None = None
    consistency_retries: int | None = None
    progress: Callable[[int, str], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_file: Callable[[str, int, bool], None] | None = None
    #: Called with the IDs of the blobs and of the packs stored, after they landed and before
    #: the manifest is written; returns extra manifest fields (or raises to stop the commit).
    before_commit: Callable[[list[bytes], list[bytes]], dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackupOutcome:
    """A committed manifest and the IDs of the blobs the run stored."""

    manifest: Manifest
    added: list[bytes]


def run_backup(repo: BackupRepository, opts: BackupOptions) -> BackupOutcome:
    """Back up ``opts.paths``; raise JobCancelled (no manifest written) when stopped."""
    started = time.monotonic()
    prepared = prepare_sources(opts)
    host = opts.hostname or socket.gethostname()
    # Announced before the sink loads the index, and present until the commit: a prune that
    # marks packs meanwhile waits for this run before deleting them.
    with repo.writer_session(host=host) as session:
        return _run(repo, opts, prepared, host, session, started)


@dataclass(frozen=True)
class PreparedSources:
    """The sources of a backup, checked before anything is written.

    Attributes
    ----------
    kept : list of str
        The paths (or URLs) the manifest lists: normalised, nested ones dropped, sorted.
    flt : PathFilter
        The exclude patterns.
    sources : list of ObjectSource, optional
        The opened URL sources; None for local paths.
    """

    kept: list[str]
    flt: PathFilter
    sources: list[ObjectSource] | None = None


def prepare_sources(opts: BackupOptions) -> PreparedSources:
    """Check the sources and rules of ``opts`` and open URL sources, before anything is written.

    Raises
    ------
    SourceError
        A source that does not exist or cannot be read.
    ConfigError
        No sources, local paths mixed with URLs, an invalid rule, or a nested source hidden
        behind a symlink.
    """
    if not opts.paths:
        raise ConfigError("nothing to back up: give at least one path")
    if any(is_url(p) for p in opts.paths):
        return _prepare_urls(opts)
    for p in opts.paths:
        try:
            os.lstat(p)
            # ".." is resolved in the text of the path, as restic does; the result must exist too.
            os.lstat(_normal(p))
        except OSError as e:
            raise SourceError(f"cannot read source {p}: {e.strerror or e}", path=p) from None
    kept = source_paths(opts.paths)
    _refuse_hidden_sources(opts.paths, kept)
    flt = PathFilter(exclude=opts.exclude)
    # Checked before anything is written, as the patterns are.
    tag_rules(opts.exclude_if_present, caches=opts.exclude_caches)
    if opts.exclude_larger_than is not None:
        parse_size(opts.exclude_larger_than)
    return PreparedSources(kept, flt)


def _prepare_urls(opts: BackupOptions) -> PreparedSources:
    """fsspec URLs: checked and opened before anything is written."""
    if not all(is_url(p) for p in opts.paths):
        raise ConfigError("one backup takes either local paths or URLs, not both")
    if opts.exclude_if_present or opts.exclude_caches:
        raise ConfigError("exclude_if_present and exclude_caches apply to local sources only")
    kept = source_paths(opts.paths)
    flt = PathFilter(exclude=opts.exclude)
    if opts.exclude_larger_than is not None:
        parse_size(opts.exclude_larger_than)
    return PreparedSources(kept, flt, open_sources(kept, opts.source_options))


def walk_sources(walker: Walker | ObjectWalker, prepared: PreparedSources, parent_tree: str | None) -> str:
    """Walk the prepared sources with ``walker`` and return the root tree's hex ID.

    Every backup builds its root here: local sources under their absolute paths with the
    directories above them, URL sources under their bucket and prefix.
    """
    if isinstance(walker, ObjectWalker):
        assert prepared.sources is not None
        return walker.backup(prepared.sources, prepared.flt, parent_tree)
    trie = _trie(prepared.kept)
    if trie is None:
        return walker.directory("/", "", prepared.flt, parent_tree) or walker.store_tree([])
    return _build(walker, trie, "", prepared.flt, parent_tree)


def walk_into(walker: Walker | ObjectWalker, sink: BlobSink, prepared: PreparedSources, parent_tree: str | None) -> str:
    """Walk the sources into ``sink`` and flush it; the root tree's hex ID.

    On any failure the sink is abandoned before the error goes on: a cancel (``Cancelled``)
    still packs and indexes what was queued, so the next run reuses it; any other failure
    keeps only what landed.
    """
    try:
        root = walk_sources(walker, prepared, parent_tree)
        sink.flush()
    except BaseException as e:
        # The original failure is the one to report, not a second one while cleaning up.
        with contextlib.suppress(Exception):
            sink.abandon(keep=isinstance(e, Cancelled))
        raise
    return root


def _run(
    repo: BackupRepository,
    opts: BackupOptions,
    prepared: PreparedSources,
    host: str,
    session: WriterSession,
    started: float,
) -> BackupOutcome:
    with BlobSink(repo, workers=opts.workers, max_pending=opts.max_pending, codec=opts.codec) as sink:
        parent_tree = opts.parent.tree if opts.parent is not None else None
        walker: Walker | ObjectWalker
        if prepared.sources is not None:
            walker = ObjectWalker(
                sink,
                repo.chunker,
                repo.read_tree,
                use_parent_shortcut=not opts.read_all,
                workers=opts.workers,
                progress=opts.progress,
                should_stop=opts.should_stop,
                on_file=opts.on_file,
                consistency_retries=opts.consistency_retries,
                larger_than=None if opts.exclude_larger_than is None else parse_size(opts.exclude_larger_than),
            )
        else:
            walker = Walker(
                sink,
                repo.chunker,
                repo.tree_nodes,
                use_parent_shortcut=not opts.read_all,
                progress=opts.progress,
                should_stop=opts.should_stop,
                consistency_retries=opts.consistency_retries,
                on_file=opts.on_file,
                tag_rules=tag_rules(opts.exclude_if_present, caches=opts.exclude_caches),
                larger_than=None if opts.exclude_larger_than is None else parse_size(opts.exclude_larger_than),
                one_file_system=opts.one_file_system,
            )
        try:
            root = walk_into(walker, sink, prepared, parent_tree)
        except Cancelled:
            raise JobCancelled("backup cancelled; no snapshot was written") from None
    extra = dict(opts.extra)
    if opts.before_commit is not None:
        extra.update(opts.before_commit(sink.added, sink.packs_written))
    manifest = snapshot_manifest(opts, prepared.kept, host, root, walker.stats, sink.stats, started, extra)
    check_before_commit(repo, session, root)
    return BackupOutcome(repo.save_manifest(manifest), sink.added)


def snapshot_manifest(
    opts: BackupOptions,
    kept: list[str],
    host: str,
    root: str,
    w: WalkStats,
    s: SinkStats,
    started: float,
    extra: dict[str, Any],
) -> Manifest:
    """The manifest of a backup that built ``root``, from its walk's and its sinks' counters.

    ``started`` is the ``time.monotonic()`` of the run's start; ``extra`` adds fields.
    """
    # The walker's and the sink's counters carry the manifest's field names, so the snapshot's
    # statistics are their union plus two derived figures (a test pins that they cover it).
    stats = SnapshotStats(
        **_counts(w),
        **_counts(s),
        total_files=w.files_new + w.files_changed + w.files_unchanged,
        duration_s=round(time.monotonic() - started, 3),
    )
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return Manifest(
        time=opts.now or datetime.now(UTC),
        hostname=host,
        username=user,
        uid=os.getuid() if hasattr(os, "getuid") else 0,
        gid=os.getgid() if hasattr(os, "getgid") else 0,
        paths=kept,
        tags=sorted(set(opts.tags)),
        excludes=list(opts.exclude),
        parent=opts.parent.id if opts.parent is not None else None,
        tree=root,
        stats=stats,
        errors=cap_errors(w.errors),
        program_version=__version__,
        inconsistent=cap_paths(w.inconsistent),
        rereads=w.rereads,
        **extra,
    )


_STATS_FIELDS = frozenset(SnapshotStats.model_fields)


def _counts(counters: WalkStats | SinkStats) -> dict[str, int]:
    """The fields of a walker's or sink's counters that a manifest records."""
    return {f.name: getattr(counters, f.name) for f in fields(counters) if f.name in _STATS_FIELDS}


def _parent_nodes(walker: Walker, tree: str | None) -> dict[str, Node]:
    if tree is None:
        return {}
    try:
        return {n.name: n for n in walker.read_parent(tree)}
    except Exception:  # noqa: BLE001 - a damaged parent only costs the shortcut
        return {}


def _build(walker: Walker, trie: _Trie, prefix: str, flt: PathFilter, parent_tree: str | None) -> str:
    """Back up the sources in ``trie`` and the directories above them; the root tree's ID.

    Iterative (an explicit stack of the directories above sources still open), like the walk
    below each source: a source's depth must not be a bound on Python's recursion.
    """
    # Each frame: the names still to visit (reversed), the trie level, the path, the parent's
    # nodes, the nodes so far, and the directory's own node (None for the root).
    stack: list[tuple[list[str], _Trie, str, dict[str, Node], list[Node], Node | None]] = [
        (sorted(trie, reverse=True), trie, prefix, _parent_nodes(walker, parent_tree), [], None)
    ]
    while True:
        todo, level, base, parents, nodes, own = stack[-1]
        while todo:
            name = todo.pop()
            path = f"{base}/{name}"
            sub = level[name]
            pnode = parents.get(name)
            if sub is None:
                node = walker.entry(name, path, "", flt, pnode)
                if node is not None:
                    nodes.append(node)
                continue
            # A directory above a source is recorded as the directory it resolves to, even
            # when the path names it through a symlink (restic and borg do the same): only a
            # directory node can hold the subtree that leads to the source.
            try:
                st = os.stat(path)
            except OSError as e:
                raise SourceError(f"cannot read {path}: {e.strerror or e}", path=path) from None
            if not stat.S_ISDIR(st.st_mode):
                raise SourceError(f"{path} is no longer a directory", path=path)
            meta = walker.stat_node(name, os.path.realpath(path), st)
            if meta is None:
                continue
            ptree = pnode.subtree if pnode is not None and pnode.type == "dir" else None
            stack.append((sorted(sub, reverse=True), sub, path, _parent_nodes(walker, ptree), [], meta))
            break
        else:
            stack.pop()
            tree = walker.store_tree(nodes)
            if not stack:
                return tree
            assert own is not None
            stack[-1][4].append(own._replace(subtree=tree))
