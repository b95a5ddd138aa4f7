"""``Engine``: runs backups into a repository."""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from snapvault._version import __version__
from snapvault.archiver.sink import BlobSink
from snapvault.archiver.walker import Walker
from snapvault.errors import ConfigError, SnapshotNotFound, SourceError
from snapvault.manifest import Manifest, SnapshotStats
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.tree import Node
from snapvault.repository import Repository

__all__ = ["Engine"]

_Trie = dict[str, "Any"]  # name -> _Trie, or None where a source ends


def _source_trie(paths: Sequence[str]) -> tuple[_Trie | None, list[str]]:
    """Arrange absolute source paths as a trie of path components; drop nested duplicates."""
    roots = sorted({os.path.normpath(os.path.abspath(p)) for p in paths})
    kept: list[str] = []
    for p in roots:
        if any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            continue
        kept.append(p)
    if "/" in kept:
        return None, ["/"]
    trie: _Trie = {}
    for p in kept:
        parts = [c for c in p.split("/") if c]
        node = trie
        for c in parts[:-1]:
            node = node.setdefault(c, {})
        node[parts[-1]] = None
    return trie, kept


class Engine:
    """Backs up local files into a repository.

    Parameters
    ----------
    repo : Repository
        The open repository.
    workers : int, optional
        Threads for compression and encryption; default the number of CPUs.
    max_pending_bytes : int
        Upper bound on plaintext bytes waiting to be encoded (memory stays bounded whatever
        the file sizes).
    """

    def __init__(self, repo: Repository, *, workers: int | None = None, max_pending_bytes: int = 64 << 20) -> None:
        self.repo = repo
        self.workers = workers or os.cpu_count() or 2
        self.max_pending_bytes = max_pending_bytes

    def find_parent(self, paths: Sequence[str], hostname: str) -> Manifest | None:
        """The latest snapshot of the same host and the same source paths, if any."""
        _, kept = _source_trie(paths)
        best = None
        for m in self.repo.snapshots():
            if m.hostname == hostname and sorted(m.paths) == sorted(kept):
                best = m
        return best

    def backup(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        exclude: Iterable[str] = (),
        tags: Iterable[str] = (),
        parent: str | None = "auto",
        full: bool = False,
        hostname: str | None = None,
        now: datetime | None = None,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Manifest:
        """Back up ``paths`` and return the new snapshot's manifest.

        Parameters
        ----------
        paths : iterable of path-like
            Files and directories; stored under their absolute paths.
        exclude : iterable of str
            gitignore-style patterns, matched against paths relative to each source.
        tags : iterable of str
            Labels recorded in the manifest.
        parent : str or None
            ``"auto"`` (the latest snapshot of this host and these paths), a snapshot
            reference, or None for no parent. Files whose size, mtime, ctime and inode match
            the parent's are not read again.
        full : bool
            Read every file, trusting no metadata (storage still deduplicates).
        hostname : str, optional
            Recorded host; default this machine's name.
        now : datetime, optional
            The snapshot time; default the current time (UTC).
        progress : callable, optional
            Called as ``progress(bytes_read, path)`` while files are read.
        should_stop : callable, optional
            Polled during the walk; returning True cancels the backup (no manifest is written).
        extra : dict, optional
            Additional manifest fields (used by policies).

        Returns
        -------
        Manifest
            The committed snapshot. ``manifest.errors`` lists files that could not be read.

        Raises
        ------
        SourceError
            If a source path does not exist (nothing is written).
        """
        started = time.monotonic()
        path_list = [os.fspath(p) for p in paths]
        if not path_list:
            raise ConfigError("nothing to back up: give at least one path")
        for p in path_list:
            try:
                os.lstat(p)
            except OSError as e:
                raise SourceError(f"cannot read source {p}: {e.strerror or e}", path=p) from None
        trie, kept = _source_trie(path_list)
        excludes = list(exclude)
        flt = PathFilter(exclude=excludes)
        host = hostname or socket.gethostname()
        parent_m: Manifest | None = None
        if parent == "auto":
            parent_m = self.find_parent(path_list, host)
        elif parent is not None:
            parent_m = self.repo.resolve(parent)
        repo = self.repo
        with BlobSink(repo, workers=self.workers, max_pending=self.max_pending_bytes) as sink:
            try:
                walker = Walker(
                    sink,
                    repo.chunker,
                    repo.read_tree,
                    use_parent_shortcut=not full,
                    progress=progress,
                    should_stop=should_stop,
                )
                parent_tree = parent_m.tree if parent_m is not None else None
                if trie is None:
                    root = walker.directory("/", "", flt, parent_tree) or walker.store_tree([])
                else:
                    root = self._build(walker, trie, "", flt, parent_tree)
                sink.flush()
            except BaseException:
                sink.cancel()
                raise
        w = walker.stats
        s = sink.stats
        stats = SnapshotStats(
            files_new=w.files_new,
            files_changed=w.files_changed,
            files_unchanged=w.files_unchanged,
            dirs=w.dirs,
            other=w.other,
            total_files=w.files_new + w.files_changed + w.files_unchanged,
            total_bytes=w.total_bytes,
            bytes_read=w.bytes_read,
            data_blobs_added=s.data_blobs,
            tree_blobs_added=s.tree_blobs,
            bytes_added=s.bytes_added,
            bytes_stored=s.bytes_stored,
            packs_written=s.packs,
            duration_s=round(time.monotonic() - started, 3),
        )
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = ""
        manifest = Manifest(
            time=now or datetime.now(UTC),
            hostname=host,
            username=user,
            uid=os.getuid() if hasattr(os, "getuid") else 0,
            gid=os.getgid() if hasattr(os, "getgid") else 0,
            paths=kept,
            tags=sorted(set(tags)),
            excludes=excludes,
            parent=parent_m.id if parent_m is not None else None,
            tree=root,
            stats=stats,
            errors=w.errors,
            program_version=__version__,
            **(extra or {}),
        )
        return repo.save_manifest(manifest)

    def _parent_nodes(self, walker: Walker, tree: str | None) -> dict[str, Node]:
        if tree is None:
            return {}
        try:
            return {n.name: n for n in walker.read_parent(tree)}
        except Exception:  # noqa: BLE001 - a damaged parent only costs the shortcut
            return {}

    def _build(self, walker: Walker, trie: _Trie, prefix: str, flt: PathFilter, parent_tree: str | None) -> str:
        parents = self._parent_nodes(walker, parent_tree)
        nodes: list[Node] = []
        for name in sorted(trie):
            path = f"{prefix}/{name}"
            sub = trie[name]
            pnode = parents.get(name)
            if sub is None:
                node = walker.entry(name, path, "", flt, pnode)
            else:
                st = os.lstat(path)
                meta = walker.stat_node(name, path, st)
                if meta is None:
                    continue
                ptree = pnode.subtree if pnode is not None and pnode.type == "dir" else None
                from dataclasses import replace

                node = replace(meta, subtree=self._build(walker, sub, path, flt, ptree))
            if node is not None:
                nodes.append(node)
        return walker.store_tree(nodes)


_ = SnapshotNotFound
