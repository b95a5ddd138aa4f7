"""A local source's walk split across the workers: the driver walks only the top, workers back
up whole directories, and the snapshot is still the single-process one."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.archiver.session import BackupOptions, run_backup
from snapvault.errors import JobCancelled
from snapvault.pipeline.patterns import PathFilter
from tests.distributed.common import Recorder, cluster_with_a_killer, same_source_tree, too_long, walk_stats
from tests.treecompare import assert_same_tree

distributed = pytest.importorskip("distributed")

from snapvault.distributed import distributed_backup  # noqa: E402 - after the skip
from snapvault.distributed.walkers import explore  # noqa: E402


def _wide_tree(root: Path, *, top_files: bool = True, big: int = 0, seed: int = 3) -> Path:
    """Six top directories of three subdirectories each (18 below the top), files of many sizes
    (and one of ``big`` bytes in each subdirectory), hardlinks whose names lie in different
    subdirectories (and one at the top), a symlink, a FIFO and an empty directory."""
    rnd = random.Random(seed)
    src = root / "src"
    for d in range(6):
        for s in range(3):
            sub = src / f"d{d}" / f"s{s}"
            (sub / "deeper").mkdir(parents=True)
            for f in range(5):
                (sub / f"f{f}").write_bytes(rnd.randbytes(rnd.choice([0, 30, 4000, 300_000])))
            (sub / "deeper" / "g").write_bytes(rnd.randbytes(2000))
            if big:
                (sub / "big").write_bytes(rnd.randbytes(big))
        if top_files:
            (src / f"d{d}" / "top.bin").write_bytes(rnd.randbytes(rnd.choice([10, 70_000])))
    (src / "empty").mkdir()
    if top_files:
        (src / "root.bin").write_bytes(rnd.randbytes(1_200_000))
        os.link(src / "root.bin", src / "d4" / "s0" / "root-link")
    os.link(src / "d0" / "s0" / "f1", src / "d3" / "s2" / "cross-link")
    os.link(src / "d0" / "s0" / "f2", src / "d0" / "s1" / "sibling-link")
    (src / "d2" / "s1" / "link").symlink_to("../s0/f0")
    os.mkfifo(src / "d5" / "s2" / "fifo")
    return src


def _single(repo: sv.Repository, paths: list[str], **kw: Any) -> sv.Manifest:
    return run_backup(repo, BackupOptions(paths=paths, **kw)).manifest


class _LstatCounter:
    """Records every path this process lstats (the driver's walk; workers are other processes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, below: Path) -> None:
        self.paths: list[str] = []
        self._below = str(below) + "/"
        real = os.lstat

        def lstat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            p = os.fsdecode(path)
            if p.startswith(self._below):
                self.paths.append(p[len(self._below) :])
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "lstat", lstat)

    def deepest(self) -> int:
        return max(p.count("/") + 1 for p in self.paths)


def test_the_driver_walks_only_the_top_and_the_snapshot_is_the_single_process_one(
    client: Any, local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _wide_tree(tmp_path)
    single = _single(local_repo, [str(src)])
    with monkeypatch.context() as patch:
        counted = _LstatCounter(patch, src)
        m = distributed_backup(local_repo, [str(src)], client, task_files=3)
    # Two threads in the cluster: 8 directories wanted, so the 18 two levels down are handed
    # out; the driver lstats them and what lies above, nothing inside them.
    assert counted.deepest() == 2
    assert "d0/s0" in counted.paths
    assert "d0/top.bin" in counted.paths
    assert same_source_tree(local_repo, single, m, src)
    assert walk_stats(m) == walk_stats(single)
    assert m.errors == single.errors == []
    with monkeypatch.context() as patch:
        whole = _LstatCounter(patch, src)
        unsplit = distributed_backup(local_repo, [str(src)], client, split_walk=False)
    assert whole.deepest() == 4
    assert len(whole.paths) > 2 * len(counted.paths)
    assert same_source_tree(local_repo, single, unsplit, src)
    out = tmp_path / "out"
    assert sv.Restorer(local_repo).restore(m.id, str(out)).ok
    # The hardlinks across the handed-out directories are restored as links.
    assert_same_tree(src, out / str(src).lstrip("/"))
    restored = out / str(src).lstrip("/")
    assert os.path.samefile(restored / "d0" / "s0" / "f1", restored / "d3" / "s2" / "cross-link")
    assert os.path.samefile(restored / "root.bin", restored / "d4" / "s0" / "root-link")
    assert local_repo.check(read_data=True).ok


def test_incremental_split_run_counts_reads_and_reports_as_one_process(
    client: Any, local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = _wide_tree(tmp_path)
    first = distributed_backup(local_repo, [str(src)], client, split_subtrees=5)
    (src / "d1" / "s2" / "f3").write_bytes(b"changed below a handed-out directory")
    (src / "d4" / "top.bin").write_bytes(b"changed at the top")
    (src / "d2" / "s0" / "deeper" / "new").write_bytes(b"new")
    (src / "d5" / "s1" / "f0").unlink()
    (src / "d5" / "s1" / "f1").unlink()
    (src / "new-top").write_bytes(b"new at the top")
    seen_single: list[tuple[str, int, bool]] = []
    single = _single(local_repo, [str(src)], parent=first, on_file=lambda p, n, same: seen_single.append((p, n, same)))
    seen: list[tuple[str, int, bool]] = []
    cb = Recorder()
    second = distributed_backup(
        local_repo,
        [str(src)],
        client,
        parent=first,
        callback=cb,
        on_file=lambda p, n, same: seen.append((p, n, same)),
        split_subtrees=5,
    )
    assert walk_stats(second) == walk_stats(single)
    assert (second.stats.files_new, second.stats.files_changed, second.stats.files_removed) == (2, 2, 2)
    written = [b"changed below a handed-out directory", b"changed at the top", b"new", b"new at the top"]
    assert second.stats.bytes_read == sum(map(len, written))
    assert same_source_tree(local_repo, single, second, src)
    # on_file is called for every file, in the single-process walk's order.
    assert seen == seen_single
    # One callback for the run: the bytes taken unread from the parent, below the handed-out
    # directories too, were counted as done; it ends exact.
    assert sum(cb.updates) >= second.stats.total_bytes - second.stats.bytes_read
    assert cb.size == cb.value == second.stats.total_bytes


def test_errors_below_handed_out_directories_keep_the_single_process_order(
    client: Any, local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = _wide_tree(tmp_path, top_files=False)
    too_long(src / "d4" / "s1")
    too_long(src / "d1" / "s0" / "deeper")
    rules: dict[str, Any] = {"exclude": ["f4", "d3/s1"], "exclude_larger_than": 100_000, "one_file_system": True}
    single = _single(local_repo, [str(src)], **rules)
    m = distributed_backup(local_repo, [str(src)], client, **rules)
    assert len(single.errors) == 2
    assert m.errors == single.errors
    assert "d1/s0/deeper" in m.errors[0].path
    assert "d4/s1" in m.errors[1].path
    assert same_source_tree(local_repo, single, m, src)
    assert walk_stats(m) == walk_stats(single)


def test_several_sources_are_explored_together(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = _wide_tree(tmp_path)
    paths = [str(src / "d1"), str(src / "d3"), str(src / "root.bin")]
    single = _single(local_repo, paths)
    m = distributed_backup(local_repo, paths, client, split_subtrees=4)
    assert same_source_tree(local_repo, single, m, src)
    assert walk_stats(m) == walk_stats(single)


def test_explore_stops_at_the_level_that_holds_enough_directories(tmp_path: Path) -> None:
    src = _wide_tree(tmp_path)
    everything = PathFilter()
    top = explore([str(src)], everything, 7, 4)
    assert top == {str(src / name): name for name in ["d0", "d1", "d2", "d3", "d4", "d5", "empty"]}
    below = explore([str(src)], everything, 8, 4)
    assert len(below) == 18
    assert below[str(src / "d2" / "s1")] == "d2/s1"
    # The depth bound ends it early; a level without directories ends it at the one above.
    assert explore([str(src)], everything, 1000, 1) == top
    deepest = explore([str(src)], everything, 1000, 10)
    assert len(deepest) == 18
    assert all(rel.endswith("/deeper") for rel in deepest.values())
    # Excluded directories and symlinks to directories are never handed out; two sources are
    # one search; a source that is a file has nothing below it.
    (src / "d0" / "to-s1").symlink_to("s1")
    picked = explore([str(src / "d0"), str(src / "d1"), str(src / "root.bin")], PathFilter(exclude=["s2"]), 3, 4)
    assert sorted(picked) == sorted(str(src / d / s) for d in ("d0", "d1") for s in ("s0", "s1"))
    assert picked[str(src / "d1" / "s0")] == "s0"
    assert explore([str(src / "root.bin")], everything, 3, 4) == {}


def test_a_worker_killed_while_backing_up_a_directory_still_commits_the_snapshot(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    # No file above the handed-out directories: every byte is read by a directory's task.
    src = _wide_tree(tmp_path, top_files=False, big=3_000_000)
    with cluster_with_a_killer() as (cluster, client, killer, killed):
        m = distributed_backup(local_repo, [str(src)], client, callback=killer, split_subtrees=2)
        assert killed
        lost = [t for t in cluster.scheduler.transition_log if t[1] == "processing" and t[2] == "released"]
        assert any(str(t[0]).startswith("snapvault-read") for t in lost)
    single = _single(local_repo, [str(src)])
    assert same_source_tree(local_repo, single, m, src)
    assert walk_stats(m) == walk_stats(single)
    sv.Restorer(local_repo).restore(m.id, str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
    assert local_repo.check(read_data=True).ok


def test_cancelling_a_split_run_commits_nothing(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = _wide_tree(tmp_path, top_files=False)
    stop = threading.Event()
    cb = Recorder(lambda rec: stop.set() if sum(rec.updates) > 0 else None)
    with pytest.raises(JobCancelled):
        distributed_backup(local_repo, [str(src)], client, callback=cb, should_stop=stop.is_set, split_subtrees=2)
    assert local_repo.snapshot_ids() == []
    running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
    assert not any(k.startswith("snapvault-read") for keys in running.values() for k in keys)
    assert local_repo.list_keys("writers") == []
    assert local_repo.check().ok


def test_split_options_are_checked(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    with pytest.raises(sv.ConfigError, match="split_depth"):
        distributed_backup(local_repo, [str(tmp_path)], client, split_depth=0)
    with pytest.raises(sv.ConfigError, match="split_subtrees"):
        distributed_backup(local_repo, [str(tmp_path)], client, split_subtrees=0)
