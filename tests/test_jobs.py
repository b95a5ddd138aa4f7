"""Background jobs: status, progress, fsspec callbacks, failure, cancellation, asyncio facades."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fsspec.callbacks import Callback

import snapvault as sv
from snapvault.jobs import Job
from snapvault.policy.hooks import hook_hash
from snapvault.policy.records import load_runs
from tests.conftest import FAST_KDF, PASSWORD, write

T0 = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)


class Recorder(Callback):
    """A real fsspec callback that remembers what it was told."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.updates: list[int] = []
        self.closed = 0
        self.threads: set[str] = set()

    def set_size(self, size: int) -> None:
        self.sizes.append(size)
        super().set_size(size)

    def relative_update(self, inc: int = 1) -> None:
        self.updates.append(inc)
        self.threads.add(threading.current_thread().name)
        super().relative_update(inc)

    def close(self) -> None:
        self.closed += 1


def make_tree(src: Path, n: int = 12) -> dict[str, bytes]:
    files = {f"d{i % 3}/f{i}.bin": os.urandom(10_000 + 997 * i) for i in range(n)}
    files["big.bin"] = os.urandom(700_000)
    for rel, data in files.items():
        write(src / rel, data)
    return files


def tree_bytes(files: dict[str, bytes]) -> int:
    return sum(len(v) for v in files.values())


# -- status ------------------------------------------------------------------------------------


def test_job_moves_pending_running_completed() -> None:
    gate = threading.Event()
    seen: list[sv.JobStatus] = []

    def work(job: Job[Any]) -> str:
        seen.append(job.status)
        gate.wait(5)
        return "done"

    job = sv.BackupJob(work)
    assert job.status is sv.JobStatus.PENDING
    assert job.started is None
    assert job.ended is None
    assert not job.done
    assert not job.status.finished
    job.start()
    deadline = time.monotonic() + 5
    while job.status is sv.JobStatus.PENDING and time.monotonic() < deadline:
        time.sleep(0.001)
    assert job.status is sv.JobStatus.RUNNING
    assert job.started is not None
    assert job.ended is None
    with pytest.raises(TimeoutError):
        job.result(timeout=0.01)
    gate.set()
    assert job.wait(5) is sv.JobStatus.COMPLETED
    assert job.status.finished
    assert job.done
    assert seen == [sv.JobStatus.RUNNING]
    assert job.result() == "done"
    assert job.error is None
    assert job.ended is not None
    assert job.started <= job.ended


def test_a_finished_status_means_the_result_can_be_taken() -> None:
    # The job's clock is read for ``ended`` after the work returned and before the job is
    # marked done: what an observer sees then must not already say "completed".
    jobs: list[Job[Any]] = []
    at_end: list[tuple[sv.JobStatus, bool]] = []

    def clock() -> datetime:
        job = jobs[0]
        if job.started is not None:
            at_end.append((job.status, job.done))
        return datetime.now(UTC)

    job = sv.BackupJob(lambda _job: "done", clock=clock)
    jobs.append(job)
    job.start()
    assert job.wait(5) is sv.JobStatus.COMPLETED
    assert at_end == [(sv.JobStatus.RUNNING, False)]
    assert job.result(timeout=0) == "done"


def test_backup_job_statuses_and_progress_totals(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo, workers=2)
    release = threading.Event()
    seen: list[sv.JobStatus] = []
    holder: dict[str, sv.BackupJob] = {}

    def pre() -> None:
        release.wait(5)
        seen.append(holder["job"].status)

    pol = sv.Policy(name="jobs", sources=[str(src)], pre_hooks=[pre])
    job = engine.submit(pol, now=T0)
    holder["job"] = job
    assert isinstance(job, sv.BackupJob)
    assert len(job.id) == 32
    assert int(job.id, 16) >= 0
    assert job.status in (sv.JobStatus.PENDING, sv.JobStatus.RUNNING)
    release.set()
    assert job.wait(30) is sv.JobStatus.COMPLETED
    assert seen == [sv.JobStatus.RUNNING]
    m = job.result()
    assert isinstance(m, sv.Manifest)
    assert m.policy == "jobs"
    assert m.time == T0
    p = job.progress
    assert p.files_total == len(files)
    assert p.bytes_total == tree_bytes(files)
    assert p.files_done == p.files_total
    assert p.bytes_done == p.bytes_total
    assert p.current_path.startswith(str(src))
    assert job.started is not None
    assert job.ended is not None
    assert job.started <= job.ended
    runs = load_runs(local_repo, "jobs")
    assert [r.status for r in runs] == ["completed"]
    assert runs[0].job_id == job.id

    # An incremental run reads nothing; unchanged files still count towards the progress.
    job2 = engine.submit(pol, now=T0 + timedelta(hours=1))
    m2 = job2.result(30)
    assert m2.stats.bytes_read == 0
    p2 = job2.progress
    assert (p2.files_done, p2.bytes_done) == (len(files), tree_bytes(files))
    assert (p2.files_total, p2.bytes_total) == (len(files), tree_bytes(files))


def test_path_backup_job_progress_totals(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo, workers=2)
    job = engine.submit([src], exclude=["*.nothing"])
    m = job.result(30)
    assert m.policy is None
    p = job.progress
    assert (p.files_total, p.bytes_total) == (len(files), tree_bytes(files))
    assert p.bytes_done == tree_bytes(files)
    assert p.files_done == len(files)


def test_path_backup_job_progress_counts_unchanged_files(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo, workers=2)
    engine.submit([src]).result(30)
    job = engine.submit([src])
    m = job.result(30)
    assert m.stats.files_unchanged == len(files)
    assert job.progress.bytes_done == job.progress.bytes_total == tree_bytes(files)


def test_progress_totals_respect_excludes(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    write(src / "skip" / "x.tmp", b"x" * 5000)
    write(src / "y.tmp", b"y" * 300)
    pol = sv.Policy(name="ex", sources=[str(src)], exclude=["*.tmp", "skip/"])
    job = sv.Engine(local_repo).submit(pol)
    m = job.result(30)
    assert m.stats.total_files == len(files)
    assert (job.progress.files_total, job.progress.bytes_total) == (len(files), tree_bytes(files))


def test_failed_job(local_repo: sv.Repository, tmp_path: Path) -> None:
    pol = sv.Policy(name="broken", sources=[str(tmp_path / "does-not-exist")])
    cb = Recorder()
    job = sv.Engine(local_repo).submit(pol, callback=cb)
    assert job.wait(30) is sv.JobStatus.FAILED
    assert isinstance(job.error, sv.SourceError)
    assert "does-not-exist" in str(job.error)
    with pytest.raises(sv.SourceError):
        job.result()
    assert job.ended is not None
    assert cb.closed == 1
    assert local_repo.snapshots() == []
    assert [r.status for r in load_runs(local_repo, "broken")] == ["failed"]


def test_failed_job_from_a_hook(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 2)
    pol = sv.Policy(name="hookfail", sources=[str(src)], pre_hooks=["exit 7"])
    job = sv.Engine(local_repo, allowed_hooks={hook_hash("exit 7")}).submit(pol)
    assert job.wait(30) is sv.JobStatus.FAILED
    assert isinstance(job.error, sv.HookError)
    with pytest.raises(sv.HookError, match="exited with 7"):
        job.result()


def test_fsspec_callback_gets_size_and_updates(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    cb = Recorder()
    job = sv.Engine(local_repo).submit(sv.Policy(name="cb", sources=[str(src)]), callback=cb)
    job.result(30)
    assert cb.sizes == [tree_bytes(files)]
    assert cb.size == tree_bytes(files)
    assert cb.updates
    assert all(u > 0 for u in cb.updates)
    assert sum(cb.updates) == cb.value == tree_bytes(files)
    assert cb.closed == 1
    assert all(name.startswith("snapvault-backup-") for name in cb.threads)


def test_restore_job_with_callback(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    m = sv.Engine(local_repo).backup([src])
    cb = Recorder()
    job = sv.Restorer(local_repo).submit(m.id, tmp_path / "out", callback=cb)
    assert isinstance(job, sv.RestoreJob)
    assert job.restore_type == "full"
    res = job.result(30)
    assert job.status is sv.JobStatus.COMPLETED
    assert res.files == len(files)
    assert res.bytes_written == tree_bytes(files)
    p = job.progress
    assert (p.files_done, p.bytes_done) == (len(files), tree_bytes(files))
    assert (p.files_total, p.bytes_total) == (len(files), tree_bytes(files))
    assert cb.sizes == [tree_bytes(files)]
    assert sum(cb.updates) == tree_bytes(files)
    assert cb.closed == 1
    root = tmp_path / "out" / str(src).lstrip("/")
    assert {str(q.relative_to(root)): q.read_bytes() for q in root.rglob("*") if q.is_file()} == files


def test_asyncio_facades(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, 4)
    engine = sv.Engine(local_repo)
    restorer = sv.Restorer(local_repo)
    pol = sv.Policy(name="aio", sources=[str(src)], backup_type="full")

    async def main() -> tuple[sv.Manifest, sv.Manifest, sv.RestoreResult]:
        m1 = await engine.abackup(pol, now=T0)
        m2 = await engine.abackup([src], now=T0 + timedelta(minutes=1), tags=["plain"])
        res = await restorer.arestore(None, tmp_path / "out", policy="aio", at=T0 + timedelta(seconds=30))
        return m1, m2, res

    m1, m2, res = asyncio.run(main())
    assert m1.policy == "aio"
    assert m1.backup_type == "full"
    assert m2.policy is None
    assert m2.tags == ["plain"]
    assert res.snapshot_id == m1.id
    assert res.files == len(files)

    async def concurrently() -> list[sv.Manifest]:
        return await asyncio.gather(engine.abackup(pol), engine.abackup(pol))

    both = asyncio.run(concurrently())
    assert len({m.id for m in both}) == 2
    assert local_repo.check(read_data=True).ok


# -- cancellation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """~128 MiB of random data in eight files."""
    src = tmp_path_factory.mktemp("big") / "src"
    src.mkdir()
    for i in range(8):
        (src / f"part{i}.bin").write_bytes(os.urandom(16 << 20))
    return src, 8 * (16 << 20)


def test_cancelled_job_writes_no_snapshot_and_the_next_run_reuses_its_uploads(
    tmp_path: Path, big_tree: tuple[Path, int]
) -> None:
    src, total = big_tree
    path = str(tmp_path / "repo")
    repo = sv.Repository.init(path, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    engine = sv.Engine(repo, workers=1, max_pending_bytes=8 << 20)
    pol = sv.Policy(name="big", sources=[str(src)], backup_type="incremental")

    cb = Recorder()
    job = engine.submit(pol, callback=cb)
    threshold = 48 << 20
    deadline = time.monotonic() + 30
    while job.progress.bytes_done < threshold and not job.done and time.monotonic() < deadline:
        time.sleep(0.002)
    assert not job.done, "the backup finished before it could be cancelled"
    job.cancel()
    assert job.cancelled
    assert job.wait(60) is sv.JobStatus.CANCELLED
    with pytest.raises(sv.JobCancelled):
        job.result()
    assert job.progress.bytes_done < total
    assert cb.closed == 1

    # No snapshot, a consistent repository, and a cancelled run record.
    assert repo.snapshots() == []
    reopened = sv.Repository.open(path, PASSWORD)
    assert reopened.snapshot_ids() == []
    report = reopened.check(read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert report.packs > 0  # something was uploaded before the cancel
    runs = load_runs(repo, "big")
    assert [r.status for r in runs] == ["cancelled"]
    assert runs[0].snapshot is None
    assert runs[0].job_id == job.id
    st = engine.stats(pol)
    assert st.runs == 1
    assert st.success_rate == 0.0
    assert st.last_success is None
    assert st.snapshots == 0

    # The next run reuses what the cancelled one uploaded.
    m = engine.backup(pol)
    assert m.stats.total_bytes == total
    fresh = sv.Repository.init(str(tmp_path / "fresh"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    fresh_m = sv.Engine(fresh, workers=1).backup(pol)
    assert m.stats.bytes_stored < fresh_m.stats.bytes_stored
    assert m.stats.bytes_stored < total
    assert repo.check(read_data=True).ok
    assert [r.status for r in load_runs(repo, "big")] == ["cancelled", "completed"]
    assert engine.stats(pol).success_rate == 0.5


def test_cancel_of_a_path_job(local_repo: sv.Repository, big_tree: tuple[Path, int]) -> None:
    src, _ = big_tree
    engine = sv.Engine(local_repo, workers=1, max_pending_bytes=8 << 20)
    job = engine.submit([src])
    deadline = time.monotonic() + 30
    while job.progress.bytes_done < (16 << 20) and not job.done and time.monotonic() < deadline:
        time.sleep(0.002)
    job.cancel()
    assert job.wait(60) is sv.JobStatus.CANCELLED
    with pytest.raises(sv.JobCancelled):
        job.result()
    assert local_repo.snapshots() == []
    assert local_repo.check(read_data=True).ok


def test_cancel_before_the_walk_starts(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 3)
    holder: dict[str, sv.BackupJob] = {}
    ready = threading.Event()

    def pre() -> None:
        ready.wait(5)
        holder["job"].cancel()

    pol = sv.Policy(name="early", sources=[str(src)], pre_hooks=[pre])
    job = sv.Engine(local_repo).submit(pol)
    holder["job"] = job
    ready.set()
    assert job.wait(30) is sv.JobStatus.CANCELLED
    with pytest.raises(sv.JobCancelled):
        job.result()
    assert local_repo.snapshots() == []
    assert [r.status for r in load_runs(local_repo, "early")] == ["cancelled"]


def test_cancel_after_the_commit_agrees_with_the_repository(local_repo: sv.Repository, tmp_path: Path) -> None:
    """A cancel that arrives once the snapshot is committed (here from a post-hook) must not
    make the job claim "cancelled, no snapshot" while the snapshot and a completed run record
    exist."""
    src = tmp_path / "src"
    make_tree(src, 3)
    holder: dict[str, sv.BackupJob] = {}
    ready = threading.Event()
    pol = sv.Policy(
        name="late",
        sources=[str(src)],
        pre_hooks=[lambda: ready.wait(5)],
        post_hooks=[lambda: holder["job"].cancel()],
    )
    job = sv.Engine(local_repo).submit(pol)
    holder["job"] = job
    ready.set()
    job.wait(30)
    snaps = local_repo.snapshots()
    runs = load_runs(local_repo, "late")
    assert len(snaps) == 1
    assert [r.status for r in runs] == ["completed"]
    # The job's own report must agree with what happened.
    assert job.status is sv.JobStatus.COMPLETED
    assert job.result().id == snaps[0].id


def test_restore_job_with_hardlinks_ends_with_progress_equal_to_its_totals(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "a", os.urandom(1000))
    os.link(src / "a", src / "b")
    write(src / "c", os.urandom(300))
    m = sv.Engine(local_repo).backup([src])
    cb = Recorder()
    job = sv.Restorer(local_repo).submit(m.id, tmp_path / "out", callback=cb)
    res = job.result(30)
    assert job.status is sv.JobStatus.COMPLETED
    p = job.progress
    # A hardlink is a name for a file already written: it is not a file of its own to write.
    assert (p.files_done, p.bytes_done) == (p.files_total, p.bytes_total)
    assert (p.files_done, p.bytes_done) == (res.files, res.bytes_written) == (2, 1300)
    assert res.hardlinks == 1
    assert cb.sizes == [1300]
    assert sum(cb.updates) == 1300
    out = tmp_path / "out" / os.path.relpath(src, "/")
    assert os.stat(out / "a").st_ino == os.stat(out / "b").st_ino
