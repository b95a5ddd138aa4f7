"""A backup by a pool of processes on this machine: the driver hands whole directories to the
processes, and the snapshot is still the single-process one."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.archiver.session import BackupOptions, run_backup
from snapvault.distributed.pool import pool_backup
from snapvault.distributed.walkers import explore
from snapvault.errors import ConfigError, JobCancelled, SnapvaultError
from snapvault.pipeline.patterns import PathFilter
from tests.distributed.common import Recorder, same_source_tree, too_long, walk_stats
from tests.treecompare import assert_same_tree


def _tree(root: Path, *, seed: int = 5, big: int = 0) -> Path:
    """A wide folder next to deep ones: ``wide`` (1,200 small files, no subdirectory) and four
    chains three levels deep, files of many sizes, hardlinks across handed-out directories, a
    symlink, a FIFO, an empty directory and files at the top."""
    rnd = random.Random(seed)
    src = root / "src"
    wide = src / "wide"
    wide.mkdir(parents=True)
    for i in range(1200):
        (wide / f"w{i:04d}").write_bytes(rnd.randbytes(rnd.choice([0, 20, 700, 3000])))
    for c in range(4):
        d = src / "chains" / f"c{c}"
        for level in range(3):
            d = d / f"l{level}"
            d.mkdir(parents=True)
            for f in range(6):
                (d / f"f{f}").write_bytes(rnd.randbytes(rnd.choice([0, 50, 9000, 150_000])))
        if big:
            (d / "big").write_bytes(rnd.randbytes(big))
    (src / "top.bin").write_bytes(rnd.randbytes(80_000))
    (src / "empty").mkdir()
    os.link(src / "wide" / "w0003", src / "chains" / "c2" / "l0" / "cross-link")
    (src / "chains" / "c1" / "link").symlink_to("../c0/l0/f1")
    os.mkfifo(src / "chains" / "c3" / "fifo")
    return src


def _single(repo: sv.Repository, paths: list[str], **kw: Any) -> sv.Manifest:
    return run_backup(repo, BackupOptions(paths=paths, **kw)).manifest


def _no_pool_process_left() -> bool:
    return not [p for p in multiprocessing.active_children() if p.name == "snapvault-backup"]


def test_the_pool_commits_the_single_process_snapshot(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    single = _single(local_repo, [str(src)])
    m = sv.Engine(local_repo).backup([str(src)], parent=None, processes=2)
    assert same_source_tree(local_repo, single, m, src)
    assert walk_stats(m) == walk_stats(single)
    assert m.errors == single.errors == []
    # The pool stored its own copy of the blobs (a fresh repository handle per process: the
    # blobs the single run stored are in its index too, so it reused them).
    out = tmp_path / "out"
    assert sv.Restorer(local_repo).restore(m.id, str(out)).ok
    restored = out / str(src).lstrip("/")
    assert_same_tree(src, restored)
    assert os.path.samefile(restored / "wide" / "w0003", restored / "chains" / "c2" / "l0" / "cross-link")
    assert local_repo.check(read_data=True).ok
    assert _no_pool_process_left()


def test_a_first_backup_by_the_pool_stores_full_packs_and_restores(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = _tree(tmp_path, big=2_000_000)
    m = sv.Engine(local_repo).backup([str(src)], processes=3)
    # Each process keeps one sink for the run: a partial pack per process and kind, not one
    # per handed-out directory (nine of them here).
    assert m.stats.packs_written <= 2 * (3 + 1) + m.stats.bytes_stored // (16 << 20) + 2
    assert m.stats.data_blobs_added > 0
    out = tmp_path / "out"
    assert sv.Restorer(local_repo).restore(m.id, str(out)).ok
    assert_same_tree(src, out / str(src).lstrip("/"))
    single = sv.Engine(local_repo).backup([str(src)], parent=None)
    assert same_source_tree(local_repo, single, m, src)
    assert local_repo.check(read_data=True).ok


def test_an_incremental_pool_run_reads_and_reports_as_one_process(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    first = sv.Engine(local_repo).backup([str(src)], processes=2)
    (src / "chains" / "c1" / "l0" / "l1" / "f3").write_bytes(b"changed below a handed-out directory")
    (src / "top.bin").write_bytes(b"changed at the top")
    (src / "wide" / "new").write_bytes(b"new in the wide folder")
    (src / "wide" / "w0100").unlink()
    seen_single: list[tuple[str, int, bool]] = []
    single = _single(local_repo, [str(src)], parent=first, on_file=lambda p, n, same: seen_single.append((p, n, same)))
    seen: list[tuple[str, int, bool]] = []
    cb = Recorder()
    second = sv.Engine(local_repo).backup(
        [str(src)], parent=first.id, processes=2, callback=cb, on_file=lambda p, n, same: seen.append((p, n, same))
    )
    assert second.parent == first.id
    assert walk_stats(second) == walk_stats(single)
    assert (second.stats.files_new, second.stats.files_changed, second.stats.files_removed) == (1, 2, 1)
    assert second.stats.bytes_read == sum(
        map(len, [b"changed below a handed-out directory", b"changed at the top", b"new in the wide folder"])
    )
    assert same_source_tree(local_repo, single, second, src)
    # on_file for every file, in the single-process walk's order; the callback ends exact.
    assert seen == seen_single
    assert cb.size == cb.value == second.stats.total_bytes
    assert all(u >= 0 for u in cb.updates)


def test_progress_counts_the_bytes_the_processes_read(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = _tree(tmp_path, big=3_000_000)
    read: list[int] = []
    m = sv.Engine(local_repo).backup([str(src)], processes=2, progress=lambda n, path: read.append(n))
    assert sum(read) == m.stats.bytes_read == m.stats.total_bytes


def test_errors_and_exclusions_below_handed_out_directories_match_the_single_process_run(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    too_long(src / "chains" / "c2" / "l0")
    too_long(src / "chains" / "c3" / "l0" / "l1")
    rules: dict[str, Any] = {"exclude": ["f4", "chains/c0/l0/l1"], "exclude_larger_than": 100_000}
    single = _single(local_repo, [str(src)], **rules)
    m = sv.Engine(local_repo).backup([str(src)], parent=None, processes=2, **rules)
    assert len(single.errors) == 2
    assert m.errors == single.errors
    assert "chains/c2/l0" in m.errors[0].path
    assert "chains/c3/l0/l1" in m.errors[1].path
    assert same_source_tree(local_repo, single, m, src)
    assert walk_stats(m) == walk_stats(single)


def test_a_cancelled_pool_run_commits_nothing_and_stops_every_process(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = _tree(tmp_path, big=4_000_000)
    read = [0]

    def progress(n: int, path: str) -> None:
        read[0] += n

    with pytest.raises(JobCancelled):
        sv.Engine(local_repo).backup(
            [str(src)], processes=2, progress=progress, should_stop=lambda: read[0] > 2_000_000
        )
    assert list(local_repo.snapshots()) == []
    assert _no_pool_process_left()
    assert local_repo.check().ok
    # What the processes stored is indexed: the next backup reuses it and completes.
    m = sv.Engine(local_repo).backup([str(src)], processes=2)
    assert local_repo.check(read_data=True).ok
    out = tmp_path / "out"
    assert sv.Restorer(local_repo).restore(m.id, str(out)).ok
    assert_same_tree(src, out / str(src).lstrip("/"))


def test_a_pool_process_killed_mid_run_fails_the_backup_and_leaves_a_sound_repository(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = _tree(tmp_path, big=6_000_000)
    killed: list[int] = []

    def progress(n: int, path: str) -> None:
        # The first bytes a pool process reports: kill that process's sibling or itself.
        if not killed and path == "":
            victim = next(p for p in multiprocessing.active_children() if p.name == "snapvault-backup")
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    with pytest.raises(SnapvaultError, match="backup process ended"):
        sv.Engine(local_repo).backup([str(src)], processes=2, progress=progress)
    assert killed
    assert list(local_repo.snapshots()) == []
    assert _no_pool_process_left()
    assert local_repo.check().ok
    m = sv.Engine(local_repo).backup([str(src)], processes=2)
    assert local_repo.check(read_data=True).ok
    assert m.stats.total_files == _single(local_repo, [str(src)]).stats.total_files


def test_what_the_pool_cannot_share_runs_in_this_process(
    local_repo: sv.Repository, memory_repo: sv.Repository, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    # A flat folder: nothing to hand out.
    flat = sv.Engine(local_repo).backup([str(src / "wide")], processes=2)
    assert flat.stats.total_files == 1200
    # fsspec's memory filesystem lives in this process: the pool would write where no one
    # reads; the backup runs here instead and restores.
    m = sv.Engine(memory_repo).backup([str(src)], processes=2)
    out = tmp_path / "out"
    assert sv.Restorer(memory_repo).restore(m.id, str(out)).ok
    assert_same_tree(src, out / str(src).lstrip("/"))
    assert _no_pool_process_left()
    with pytest.raises(ConfigError, match="processes"):
        pool_backup(local_repo, BackupOptions(paths=[str(src)]), 0)
    with pytest.raises(ConfigError, match="not both"):
        sv.Engine(local_repo).backup([str(src)], processes=2, executor=object())


def test_explore_hands_out_a_wide_folder_passed_on_the_way_down_first(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    everything = PathFilter()
    without = explore([str(src)], everything, 4, 4)
    assert str(src / "wide") not in without
    found = explore([str(src)], everything, 4, 4, wide=1000)
    assert next(iter(found)) == str(src / "wide")
    assert found[str(src / "wide")] == "wide"
    assert {k: v for k, v in found.items() if k != str(src / "wide")} == without
    # Below the threshold, or empty, a folder without subdirectories stays with the walk above.
    assert str(src / "wide") not in explore([str(src)], everything, 4, 4, wide=5000)
    assert str(src / "empty") not in found
