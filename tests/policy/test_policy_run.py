"""Running policies: read-back verification, point-in-time restore, monitoring and forget."""

from __future__ import annotations

import os
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fsspec.callbacks import Callback

import snapvault as sv
from snapvault.policy import retention
from snapvault.policy.hooks import hook_hash
from snapvault.policy.records import load_runs
from snapvault.policy.retention import KeepLast
from snapvault.storage import open_store
from snapvault.storage.wrappers import _Wrapper
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.policy.retention_plugin import KeepOldest

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def restored(repo: sv.Repository, snap: sv.Manifest | str, src: Path, target: Path) -> dict[str, bytes]:
    sv.Restorer(repo).restore(snap if isinstance(snap, str) else snap.id, target)
    return files_under(target / str(src).lstrip("/"))


def leftovers(target: Path) -> list[Path]:
    """Temporary files a restore left behind."""
    return [p for p in target.rglob("*") if p.name.startswith(".sv-restore-")]


class Clock:
    """A deterministic engine clock: one minute later on every call."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(minutes=1)
            return self.now


# -- verification ---------------------------------------------------------------------------


class FlipDataOnPut(_Wrapper):
    """Stores every pack with its first byte flipped: storage that damages data on upload."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.flipped: list[str] = []

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key.startswith("data/"):
            data = bytes([data[0] ^ 0xFF]) + data[1:]
            self.flipped.append(key)
        return self.inner.put_if_absent(key, data)


def many_files(src: Path, n: int) -> dict[str, bytes]:
    files = {f"f{i:03d}.bin": os.urandom(500 + i) for i in range(n)}
    for rel, data in files.items():
        write(src / rel, data)
    return files


def test_verify_all_checks_every_added_blob(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 20)
    engine = sv.Engine(local_repo, rng=random.Random(7))
    m = engine.backup(sv.Policy(name="v", sources=[str(src)], verify="all"), now=T0)
    v = m.verification
    assert v is not None
    assert v.mode == "all"
    assert v.ok
    assert v.errors == []
    assert v.blobs_added == m.stats.data_blobs_added + m.stats.tree_blobs_added
    assert v.blobs_checked == v.blobs_added >= 21


def test_verify_sample_checks_about_a_tenth(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 80)
    engine = sv.Engine(local_repo, rng=random.Random(3))
    pol = sv.Policy(name="v", sources=[str(src)], verify="sample:10%")
    m = engine.backup(pol, now=T0)
    v = m.verification
    assert v is not None
    assert v.mode == "sample:10%"
    assert v.ok
    assert v.blobs_added == m.stats.data_blobs_added + m.stats.tree_blobs_added >= 81
    assert v.blobs_checked == round(v.blobs_added * 0.10)
    assert 1 <= v.blobs_checked < v.blobs_added

    # A run that adds a few blobs still checks at least one.
    write(src / "f000.bin", b"changed")
    m2 = engine.backup(pol, now=T0 + timedelta(hours=1))
    v2 = m2.verification
    assert v2 is not None
    assert 1 <= v2.blobs_added < 10
    assert v2.blobs_checked == 1


def test_verify_none_records_nothing(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 3)
    m = sv.Engine(local_repo).backup(sv.Policy(name="v", sources=[str(src)]), now=T0)
    assert m.verification is None


def test_corrupted_upload_fails_verification_and_commits_nothing(repo_path: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 10)
    sv.Repository.init(repo_path, PASSWORD, kdf=FAST_KDF)
    store = FlipDataOnPut(open_store(repo_path))
    repo = sv.Repository.open(repo_path, PASSWORD, store=store)
    engine = sv.Engine(repo, clock=Clock(T0))
    pol = sv.Policy(name="v", sources=[str(src)], verify="all")
    with pytest.raises(sv.IntegrityError, match="verification"):
        engine.backup(pol, now=T0)
    assert store.flipped  # the damage really happened
    assert repo.snapshots() == []
    assert sv.Repository.open(repo_path, PASSWORD).snapshot_ids() == []
    runs = load_runs(repo, "v")
    assert [r.status for r in runs] == ["failed"]
    assert runs[0].snapshot is None
    assert "verification" in (runs[0].error or "")
    st = engine.stats("v")
    assert st.runs == 1
    assert st.success_rate == 0.0
    assert st.last_failure is not None
    assert st.snapshots == 0


@pytest.mark.commits_damage
def test_without_verification_the_damaged_backup_is_committed(repo_path: str, tmp_path: Path) -> None:
    # The contrast: it is the read-back that keeps the damaged snapshot out.
    src = tmp_path / "src"
    many_files(src, 10)
    sv.Repository.init(repo_path, PASSWORD, kdf=FAST_KDF)
    repo = sv.Repository.open(repo_path, PASSWORD, store=FlipDataOnPut(open_store(repo_path)))
    m = sv.Engine(repo).backup(sv.Policy(name="v", sources=[str(src)], verify="none"), now=T0)
    assert [s.id for s in repo.snapshots()] == [m.id]
    assert not sv.Repository.open(repo_path, PASSWORD).check(read_data=True).ok


def test_backup_after_a_failed_verification_does_not_reuse_damaged_blobs(repo_path: str, tmp_path: Path) -> None:
    """Blobs that failed the read-back must not be trusted by the next backup of the same data."""
    src = tmp_path / "src"
    files = many_files(src, 10)
    sv.Repository.init(repo_path, PASSWORD, kdf=FAST_KDF)
    bad = sv.Repository.open(repo_path, PASSWORD, store=FlipDataOnPut(open_store(repo_path)))
    pol = sv.Policy(name="v", sources=[str(src)], verify="all")
    with pytest.raises(sv.IntegrityError):
        sv.Engine(bad).backup(pol, now=T0)
    # The store is healthy again; the same policy runs on the same data.
    good = sv.Repository.open(repo_path, PASSWORD)
    try:
        m = sv.Engine(good).backup(pol, now=T0 + timedelta(hours=1))
    except sv.IntegrityError:
        return  # refusing is acceptable too
    # Committed, so it must be sound: every blob it references reads back.
    report = good.check(read_data=True)
    damaged = {p.snapshot for p in report.problems if p.snapshot}
    assert m.id not in damaged, [str(p) for p in report.problems][:3]
    assert report.ok
    assert restored(good, m, src, tmp_path / "out") == files


# -- point-in-time restore ------------------------------------------------------------------


@pytest.fixture
def three_versions(local_repo: sv.Repository, tmp_path: Path) -> tuple[sv.Repository, Path, list[Any]]:
    """Three snapshots of policy "pit" at T0, T0+1h, T0+2h, each of a different tree."""
    src = tmp_path / "src"
    engine = sv.Engine(local_repo)
    pol = sv.Policy(name="pit", sources=[str(src)])
    versions = []
    for i in range(3):
        files = {"doc.txt": f"version {i}\n".encode(), "data/blob.bin": os.urandom(3000 + i)}
        if i == 2:
            files["added-later.txt"] = b"new"
        for rel, data in files.items():
            write(src / rel, data)
        m = engine.backup(pol, now=T0 + timedelta(hours=i))
        versions.append((m, files))
    # Noise: another policy and a plain snapshot in between must not be picked.
    engine.backup(sv.Policy(name="other", sources=[str(src)]), now=T0 + timedelta(minutes=90))
    engine.backup([src], now=T0 + timedelta(minutes=100))
    return local_repo, src, versions


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (T0, 0),
        (T0 + timedelta(minutes=59), 0),
        (T0 + timedelta(hours=1), 1),
        (T0 + timedelta(minutes=119), 1),
        (T0 + timedelta(hours=2), 2),
        (T0 + timedelta(days=30), 2),
    ],
)
def test_point_in_time_restore_picks_the_latest_at_or_before(
    three_versions: tuple[sv.Repository, Path, list[Any]], tmp_path: Path, at: datetime, expected: int
) -> None:
    repo, src, versions = three_versions
    target = tmp_path / "out"
    res = sv.Restorer(repo).restore(None, target, policy="pit", at=at)
    m, files = versions[expected]
    assert res.snapshot_id == m.id
    assert files_under(target / str(src).lstrip("/")) == files


def test_point_in_time_in_another_timezone_and_without_at(
    three_versions: tuple[sv.Repository, Path, list[Any]], tmp_path: Path
) -> None:
    repo, _, versions = three_versions
    restorer = sv.Restorer(repo)
    berlin = (T0 + timedelta(minutes=61)).astimezone(ZoneInfo("Europe/Berlin"))
    assert berlin.hour == 12  # same instant (10:01 UTC), other wall clock
    assert restorer.resolve(None, policy="pit", at=berlin).id == versions[1][0].id
    assert restorer.resolve(None, policy="pit", at=None).id == versions[2][0].id
    res = restorer.restore(None, tmp_path / "latest", policy="pit")
    assert res.snapshot_id == versions[2][0].id


def test_point_in_time_errors(three_versions: tuple[sv.Repository, Path, list[Any]], tmp_path: Path) -> None:
    repo, _, versions = three_versions
    restorer = sv.Restorer(repo)
    with pytest.raises(sv.SnapshotNotFound):
        restorer.restore(None, tmp_path / "o1", policy="pit", at=T0 - timedelta(seconds=1))
    assert not (tmp_path / "o1").exists()
    with pytest.raises(sv.ConfigError, match="timezone-aware"):
        restorer.restore(None, tmp_path / "o2", policy="pit", at=datetime(2026, 6, 1, 12, 0))
    with pytest.raises(sv.SnapshotNotFound):
        restorer.restore(None, tmp_path / "o3", policy="no-such-policy", at=T0 + timedelta(days=1))
    with pytest.raises(sv.ConfigError):
        restorer.restore(versions[0][0].id, tmp_path / "o4", policy="pit")
    with pytest.raises(sv.ConfigError):
        restorer.restore(versions[0][0].id, tmp_path / "o5", at=T0)
    with pytest.raises(sv.ConfigError):
        restorer.restore(None, tmp_path / "o6")


def test_restore_job_types(three_versions: tuple[sv.Repository, Path, list[Any]], tmp_path: Path) -> None:
    repo, src, versions = three_versions
    restorer = sv.Restorer(repo)
    root = str(src).lstrip("/")

    pit = restorer.submit(None, tmp_path / "pit", policy="pit", at=T0 + timedelta(minutes=30))
    assert isinstance(pit, sv.RestoreJob)
    assert pit.restore_type == "point-in-time"
    assert pit.result(30).snapshot_id == versions[0][0].id
    assert files_under(tmp_path / "pit" / root) == versions[0][1]

    sel = restorer.submit(versions[2][0].id, tmp_path / "sel", include=["*.txt"])
    assert sel.restore_type == "selective"
    sel.result(30)
    assert files_under(tmp_path / "sel" / root) == {"doc.txt": b"version 2\n", "added-later.txt": b"new"}

    exc = restorer.submit(versions[2][0].id, tmp_path / "exc", exclude=["data/"])
    assert exc.restore_type == "selective"
    exc.result(30)
    assert set(files_under(tmp_path / "exc" / root)) == {"doc.txt", "added-later.txt"}

    full = restorer.submit(versions[1][0], tmp_path / "full")
    assert full.restore_type == "full"
    assert full.result(30).files == 2
    assert files_under(tmp_path / "full" / root) == versions[1][1]
    assert full.status is sv.JobStatus.COMPLETED

    bad = restorer.submit(None, tmp_path / "bad", policy="pit", at=T0 - timedelta(days=1))
    assert bad.restore_type == "point-in-time"
    assert bad.wait(30) is sv.JobStatus.FAILED
    assert isinstance(bad.error, sv.SnapshotNotFound)


# -- cancelled restore ------------------------------------------------------------------------


def big_files(src: Path, nested: bool) -> dict[str, bytes]:
    files = {}
    for i in range(12):
        rel = f"d{i % 4}/f{i:02d}.bin" if nested else f"f{i:02d}.bin"
        files[rel] = os.urandom((1 << 20) + 4096 * i)
        write(src / rel, files[rel])
    return files


def assert_no_wrong_files(target: Path, src: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    assert leftovers(target) == []
    root = target / str(src).lstrip("/")
    got = files_under(root) if root.exists() else {}
    for rel, data in got.items():
        assert data == files[rel], f"{rel} differs from the snapshot"
    return got


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_cancelled_restore_leaves_no_wrong_or_partial_file(
    local_repo: sv.Repository, tmp_path: Path, nested: bool
) -> None:
    src = tmp_path / "src"
    files = big_files(src, nested)
    m = sv.Engine(local_repo).backup([src])
    target = tmp_path / "out"
    written = [0]

    def progress(n: int, path: str) -> None:
        written[0] += n

    with pytest.raises(sv.JobCancelled):
        sv.Restorer(local_repo, workers=1).restore(
            m.id, target, progress=progress, should_stop=lambda: written[0] > (3 << 20)
        )
    got = assert_no_wrong_files(target, src, files)
    assert len(got) < len(files)


def test_cancelled_restore_job(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = big_files(src, nested=False)
    m = sv.Engine(local_repo).backup([src])
    ready = threading.Event()
    holder: dict[str, sv.RestoreJob] = {}

    class CancelOnFirstUpdate(Callback):
        def relative_update(self, inc: int = 1) -> None:
            super().relative_update(inc)
            ready.wait(5)
            holder["job"].cancel()

    target = tmp_path / "out"
    job = sv.Restorer(local_repo, workers=1).submit(m.id, target, callback=CancelOnFirstUpdate())
    holder["job"] = job
    ready.set()
    assert job.wait(30) is sv.JobStatus.CANCELLED
    with pytest.raises(sv.JobCancelled):
        job.result()
    got = assert_no_wrong_files(target, src, files)
    assert len(got) < len(files)
    assert job.progress.files_done == len(got)


# -- monitoring --------------------------------------------------------------------------------


def test_stats_after_three_successes_and_one_failure(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 5)
    engine = sv.Engine(local_repo, clock=Clock(T0), allowed_hooks={hook_hash("exit 2"), hook_hash("exit 1")})
    ok = sv.Policy(name="mon", sources=[str(src)])
    failing = sv.Policy(name="mon", sources=[str(src)], pre_hooks=["exit 2"])
    engine.backup(ok)
    write(src / "f001.bin", os.urandom(9000))
    engine.backup(ok)
    with pytest.raises(sv.HookError):
        engine.backup(failing)
    write(src / "extra.bin", os.urandom(4000))
    engine.backup(ok)
    # Noise from another policy and a plain snapshot.
    with pytest.raises(sv.HookError):
        engine.backup(sv.Policy(name="else", sources=[str(src)], pre_hooks=["exit 1"]))
    engine.backup([src])

    st = engine.stats("mon")
    assert isinstance(st, sv.PolicyStats)
    assert st.policy == "mon"
    assert st.runs == 4
    assert st.success_rate == 0.75
    runs = load_runs(local_repo, "mon")
    assert [r.status for r in runs] == ["completed", "completed", "failed", "completed"]
    assert st.last_failure == runs[2].ended
    assert st.last_success == runs[3].ended
    assert st.last_failure is not None
    assert st.last_success is not None
    assert st.last_failure < st.last_success
    assert len(st.bytes_added_per_run) == 4
    assert st.bytes_added_per_run[2] == 0
    assert all(st.bytes_added_per_run[i] > 0 for i in (0, 1, 3))
    snaps = [m for m in local_repo.snapshots() if m.policy == "mon"]
    assert st.snapshots == len(snaps) == 3
    assert st.storage_used == sum(m.stats.bytes_stored for m in snaps) > 0
    assert engine.stats(ok) == st

    recent = engine.stats("mon", last=2)
    assert recent.runs == 2
    assert recent.success_rate == 0.5
    assert recent.last_failure == runs[2].ended

    other = engine.stats("else")
    assert other.runs == 1
    assert other.success_rate == 0.0
    assert other.last_success is None
    nothing = engine.stats("never-ran")
    assert nothing.runs == 0
    assert nothing.success_rate is None
    assert nothing.storage_used == 0


# -- forget ------------------------------------------------------------------------------------


def test_forget_with_keep_last(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    repo = local_repo
    engine = sv.Engine(repo)
    pol = sv.Policy(name="daily", sources=[str(src)], retention=KeepLast(2))
    other = sv.Policy(name="other", sources=[str(src)], retention={"strategy": "keep-last", "n": 1})
    unmanaged = sv.Policy(name="noret", sources=[str(src)])
    for p in (pol, other, unmanaged):
        repo.save_policy(p, now=T0)

    snaps, contents = [], []
    for i in range(4):
        files = {"doc.txt": f"day {i}\n".encode(), "bin/x.bin": os.urandom(2000 + i)}
        for rel, data in files.items():
            write(src / rel, data)
        snaps.append(engine.backup(pol, now=T0 + timedelta(days=i)))
        contents.append(files)
    plain = engine.backup([src], now=T0 - timedelta(days=10))
    others = [engine.backup(other, now=T0 + timedelta(days=i, hours=12)) for i in range(2)]
    noret = engine.backup(unmanaged, now=T0 - timedelta(days=5))
    everything = set(repo.snapshot_ids())
    assert len(everything) == 8
    now = T0 + timedelta(days=10)

    # Dry run: reports, removes nothing.
    dry = sv.forget(repo, now=now, dry_run=True)
    assert [r.policy for r in dry] == ["daily", "other"]  # "noret" has no retention
    d = dry[0]
    assert isinstance(d, sv.ForgetResult)
    assert d.removed == []
    assert d.decision.remove == (snaps[1].id, snaps[0].id)
    assert d.decision.keep == (snaps[3].id, snaps[2].id)
    for sid in d.decision.remove:
        assert d.decision.reasons[sid] == ("not kept by any rule",)
    for sid in d.decision.keep:
        assert d.decision.reasons[sid] == ("last 2",)
    assert dry[1].decision.remove == (others[0].id,)
    assert dry[1].removed == []
    assert set(repo.snapshot_ids()) == everything

    # policy=name limits it to that policy.
    done = sv.forget(repo, policy="daily", now=now)
    assert len(done) == 1
    assert done[0].policy == "daily"
    assert sorted(done[0].removed) == sorted([snaps[0].id, snaps[1].id])
    assert set(repo.snapshot_ids()) == everything - {snaps[0].id, snaps[1].id}
    assert {others[0].id, others[1].id, plain.id, noret.id} <= set(repo.snapshot_ids())

    # The kept ones restore (snaps[2]'s parent is gone; it is independent), check passes.
    assert restored(repo, snaps[2], src, tmp_path / "r2") == contents[2]
    assert restored(repo, snaps[3], src, tmp_path / "r3") == contents[3]
    report = repo.check(read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert report.snapshots == 6

    st = engine.stats("daily")
    assert st.snapshots == 2
    assert st.storage_used == snaps[2].stats.bytes_stored + snaps[3].stats.bytes_stored

    # A second run over all policies: "daily" has nothing left to remove, "other" loses one.
    again = sv.forget(repo, now=now)
    assert [(r.policy, r.removed) for r in again] == [("daily", []), ("other", [others[0].id])]
    assert set(repo.snapshot_ids()) == {snaps[2].id, snaps[3].id, others[1].id, plain.id, noret.id}
    assert repo.check().ok

    with pytest.raises(sv.PolicyNotFound):
        sv.forget(repo, policy="missing", now=now)


def test_forget_keeps_future_snapshots_and_only_removes_manifests(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.txt", b"same data every time")
    engine = sv.Engine(local_repo)
    pol = sv.Policy(name="p", sources=[str(src)], retention=KeepLast(1))
    local_repo.save_policy(pol, now=T0)
    ms = [engine.backup(pol, now=T0 + timedelta(hours=h)) for h in (0, 1, 50)]
    packs_before = sorted(local_repo.packs())
    res = sv.forget(local_repo, now=T0 + timedelta(hours=2))
    # The snapshot "in the future" is kept and does not push out the newest past one.
    assert res[0].decision.reasons[ms[2].id] == ("in the future",)
    assert res[0].removed == [ms[0].id]
    assert set(local_repo.snapshot_ids()) == {ms[1].id, ms[2].id}
    assert sorted(local_repo.packs()) == packs_before  # data stays until a prune


def test_forget_skips_a_policy_it_cannot_read_and_applies_the_others(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    write(src / "a.txt", b"data")
    monkeypatch.setattr(retention, "_REGISTERED", {})
    sv.register_strategy(KeepOldest)
    engine = sv.Engine(local_repo)
    good = sv.Policy(name="good", sources=[str(src)], retention=KeepLast(1))
    odd = sv.Policy(name="odd", sources=[str(src)], retention=KeepOldest(1))
    for p in (good, odd):
        local_repo.save_policy(p, now=T0)
    g = [engine.backup(good, now=T0 + timedelta(hours=h)) for h in (1, 2)]
    o = [engine.backup(odd, now=T0 + timedelta(hours=h)) for h in (1, 2)]
    now = T0 + timedelta(days=1)
    # Where the strategy is installed, forget applies it like a built-in one.
    dry = sv.forget(local_repo, now=now, dry_run=True)
    assert [(r.policy, r.decision.remove) for r in dry] == [("good", (g[0].id,)), ("odd", (o[1].id,))]

    monkeypatch.setattr(retention, "_REGISTERED", {})
    done = sv.forget(local_repo, now=now)
    assert [(r.policy, r.removed) for r in done] == [("good", [g[0].id])]
    assert set(local_repo.snapshot_ids()) == {g[1].id, o[0].id, o[1].id}
    with pytest.raises(sv.UnknownStrategy):
        sv.forget(local_repo, policy="odd", now=now)
    assert set(local_repo.snapshot_ids()) == {g[1].id, o[0].id, o[1].id}


# -- Ctrl-C during a run ----------------------------------------------------------------------


def test_ctrl_c_during_the_walk_is_recorded_as_cancelled(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 10)
    pol = sv.Policy(name="p", sources=[str(src)])
    seen: list[str] = []

    def ctrl_c_on_the_third_file(path: str, size: int, unchanged: bool) -> None:
        seen.append(path)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sv.Engine(local_repo, clock=Clock(T0)).backup(pol, on_file=ctrl_c_on_the_third_file)
    [rec] = load_runs(local_repo, "p")
    assert rec.status == "cancelled"
    assert rec.snapshot is None
    assert local_repo.snapshot_ids() == []


def test_ctrl_c_in_a_pre_hook_is_recorded_as_cancelled(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 2)
    post: list[str] = []

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    pol = sv.Policy(name="p", sources=[str(src)], pre_hooks=[ctrl_c], post_hooks=[lambda: post.append("ran")])
    with pytest.raises(KeyboardInterrupt):
        sv.Engine(local_repo).backup(pol)
    assert post == ["ran"]
    assert [r.status for r in load_runs(local_repo, "p")] == ["cancelled"]
    assert local_repo.snapshot_ids() == []


def test_ctrl_c_after_the_commit_leaves_a_completed_run(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 2)

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    pol = sv.Policy(name="p", sources=[str(src)], post_hooks=[ctrl_c])
    with pytest.raises(KeyboardInterrupt):
        sv.Engine(local_repo).backup(pol)
    [rec] = load_runs(local_repo, "p")
    assert rec.status == "completed"
    assert rec.snapshot is not None
    assert local_repo.snapshot_ids() == [rec.snapshot]


# -- the policy layer's interfaces ------------------------------------------------------------


def test_a_policy_runs_through_policy_repository_and_the_settings_alone(repo_path: str, tmp_path: Path) -> None:
    """run_policy takes what it uses of a repository and the engine's settings, not the engine."""
    from snapvault.archiver.settings import BackupSettings
    from snapvault.policy.run import ForgetRepository, PolicyHistory, PolicyRepository, forget, policy_stats, run_policy
    from tests.narrow import narrow

    src = tmp_path / "src"
    many_files(src, 5)
    sv.Repository.init(repo_path, PASSWORD, kdf=FAST_KDF)
    # Damage on upload makes the run read back, fail, and quarantine: every part of the interface.
    store = FlipDataOnPut(open_store(repo_path))
    repo = sv.Repository.open(repo_path, PASSWORD, store=store)
    settings = BackupSettings(workers=2, clock=Clock(T0), rng=random.Random(1))
    pol = sv.Policy(name="p", sources=[str(src)], verify="all", retention=KeepLast(1))
    view = narrow(repo, PolicyRepository)
    with pytest.raises(sv.IntegrityError, match="verification"):
        run_policy(view, settings, pol)
    assert {"read_blob", "quarantine_packs", "write_sealed"} <= view.used
    assert repo.quarantined_packs()

    good = sv.Repository.open(repo_path, PASSWORD)
    good.save_policy(pol)
    view = narrow(good, PolicyRepository)
    first = run_policy(view, settings, pol)
    second = run_policy(view, settings, pol)
    assert (first.policy, second.parent) == ("p", first.id)
    assert [r.status for r in load_runs(good, "p")] == ["failed", "completed", "completed"]
    assert [r.started for r in load_runs(good, "p")] == sorted(r.started for r in load_runs(good, "p"))

    st = policy_stats(narrow(good, PolicyHistory), "p")
    assert (st.runs, st.snapshots) == (3, 2)
    [done] = forget(narrow(good, ForgetRepository), now=T0 + timedelta(days=1))
    assert done.removed == [first.id]
    assert good.snapshot_ids() == [second.id]


def test_engine_run_policy_and_backup_of_a_policy_are_the_same_run(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    many_files(src, 3)
    engine = sv.Engine(local_repo, clock=Clock(T0))
    pol = sv.Policy(name="p", sources=[str(src)], backup_type="full")
    a = engine.run_policy(pol)
    b = engine.backup(pol)  # the old single entry point still hands a Policy to run_policy
    assert (a.policy, a.backup_type, b.policy, b.backup_type) == ("p", "full", "p", "full")
    assert [r.status for r in load_runs(local_repo, "p")] == ["completed", "completed"]
    assert engine.stats(pol).runs == 2


# -- stored shell hooks run only where allowed (issue #17) ----------------------------------


def test_a_stored_shell_hook_is_refused_unless_allowed(local_repo: sv.Repository, tmp_path: Path) -> None:
    """Anyone with the password can store a newer policy record: its commands are repository
    content, so by default none runs, and a refused policy backs up nothing."""
    src = tmp_path / "src"
    write(src / "f", "x")
    marker = tmp_path / "ran"
    hook = f"touch '{marker}'"
    local_repo.save_policy(sv.Policy(name="p", sources=[str(src)], post_hooks=[hook]), now=T0)
    stored = local_repo.load_policy("p")
    for engine in (sv.Engine(local_repo), sv.Engine(local_repo, allowed_hooks={hook_hash("something else")})):
        with pytest.raises(sv.HookError, match=hook_hash(hook)):
            engine.run_policy(stored, now=T0)
        with pytest.raises(sv.HookError, match=hook_hash(hook)):
            engine.submit_policy(stored, now=T0).result(30)
    assert not marker.exists()
    assert local_repo.snapshots() == []
    assert load_runs(local_repo, "p") == []

    m = sv.Engine(local_repo, allowed_hooks={hook_hash(hook)}).run_policy(stored, now=T0)
    assert marker.exists()
    assert m.policy == "p"


def test_the_allowed_hash_is_of_the_exact_command(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "f", "x")
    engine = sv.Engine(local_repo, allowed_hooks={hook_hash("true")})
    engine.run_policy(sv.Policy(name="p", sources=[str(src)], pre_hooks=["true"]), now=T0)
    with pytest.raises(sv.HookError, match="not allowed"):
        engine.run_policy(sv.Policy(name="p", sources=[str(src)], pre_hooks=["true", "true "]), now=T0)
    assert len(local_repo.snapshots()) == 1


def test_callable_hooks_need_no_allowing(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "f", "x")
    ran: list[str] = []
    pol = sv.Policy(name="p", sources=[str(src)], pre_hooks=[lambda: ran.append("pre")])
    sv.Engine(local_repo).run_policy(pol, now=T0)
    assert ran == ["pre"]
