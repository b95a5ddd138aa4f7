"""Prune frees what forgotten snapshots held, and never a blob a snapshot uses: not with a
writer running across it, not when interrupted at any write, not in append-only use."""

from __future__ import annotations

import random
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.repository import layout
from snapvault.repository.lifecycle import WRITER_AD, encode_writer
from snapvault.storage import open_store
from tests.conftest import FAST_KDF, PASSWORD
from tests.crashing import Crash, CrashAt
from tests.treecompare import assert_same_tree

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _files(root: Path, rng: random.Random, names: range, size: int = 150_000) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in names:
        (root / f"f{i:03d}").write_bytes(rng.randbytes(size))


def _data_size(repo_dir: Path) -> int:
    return sum(p.stat().st_size for p in (repo_dir / "data").rglob("*") if p.is_file())


def _history(tmp_path: Path, days: int = 5) -> tuple[sv.Repository, Path, list[str]]:
    """A repository with ``days`` snapshots of a folder where a third of the files change a day."""
    rng = random.Random(7)
    src = tmp_path / "src"
    _files(src, rng, range(30))
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    engine = sv.Engine(repo)
    ids = []
    for _ in range(days):
        _files(src, rng, range(0, 30, 3))
        ids.append(engine.backup([str(src)], now=NOW).id)
    return repo, src, ids


def _restored(repo: sv.Repository, sid: str, tmp_path: Path, src: Path) -> None:
    out = tmp_path / f"out-{sid[:8]}"
    sv.Restorer(repo).restore(sid, out)
    assert_same_tree(src, out / str(src).lstrip("/"))


def test_prune_frees_what_forgotten_snapshots_held(tmp_path: Path) -> None:
    repo, src, ids = _history(tmp_path)
    before = _data_size(tmp_path / "repo")
    for sid in ids[:-1]:
        repo.delete_snapshot(sid)
    result = repo.prune(now=NOW, max_repack=1.0)
    after = _data_size(tmp_path / "repo")
    assert after == result.size_after < before
    assert result.deleted.packs > 0
    assert result.marks_carried_out == 1
    # Within 5% of a fresh repository holding the same snapshot.
    fresh = sv.Repository.init(str(tmp_path / "fresh"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    sv.Engine(fresh).backup([str(src)], now=NOW)
    assert after <= 1.05 * _data_size(tmp_path / "fresh")
    assert repo.check(read_data=True).ok
    _restored(sv.Repository.open(str(tmp_path / "repo"), PASSWORD), ids[-1], tmp_path, src)
    # Nothing is left for a second run, and no mark stays behind.
    again = repo.prune(now=NOW)
    assert again.deleted.packs == 0
    assert not again.marked
    assert not list((tmp_path / "repo").glob("deletions/*"))


def test_max_repack_bounds_what_one_run_copies(tmp_path: Path) -> None:
    repo, _, ids = _history(tmp_path)
    for sid in ids[:-1]:
        repo.delete_snapshot(sid)
    total = _data_size(tmp_path / "repo")
    result = repo.prune(now=NOW, max_repack=0.05)
    assert result.repacked_bytes <= 0.05 * total
    assert repo.check(read_data=True).ok


def test_a_dry_run_changes_nothing_and_says_what_would_go(tmp_path: Path) -> None:
    repo, _, ids = _history(tmp_path)
    for sid in ids[:-1]:
        repo.delete_snapshot(sid)
    listing = sorted(p.relative_to(tmp_path) for p in (tmp_path / "repo").rglob("*"))
    result = repo.prune(now=NOW, dry_run=True, max_repack=1.0)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "repo").rglob("*")) == listing
    assert result.dry_run
    assert result.marked["unused"].packs > 0
    assert result.marked["repack"].packs > 0
    real = repo.prune(now=NOW, max_repack=1.0)
    assert real.marked == result.marked
    assert real.size_after == pytest.approx(result.size_after, rel=0.05)


def test_a_running_writer_defers_deletion_until_it_ends(tmp_path: Path) -> None:
    repo, src, ids = _history(tmp_path, days=2)
    repo.delete_snapshot(ids[0])
    other = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    with other.writer_session():
        first = repo.prune(now=NOW)
        assert first.marks_written == 1
        assert first.deleted.packs == 0
        assert first.live_writers == 1
        assert list((tmp_path / "repo").glob("deletions/*"))
        # A second prune while it still runs deletes nothing either.
        assert repo.prune(now=NOW).deleted.packs == 0
    done = repo.prune(now=NOW)
    assert done.marks_carried_out >= 1
    assert done.deleted.packs > 0
    assert done.deferred.packs == 0
    assert repo.check(read_data=True).ok
    _restored(repo, ids[1], tmp_path, src)


def test_a_writer_that_loaded_the_index_before_the_mark_keeps_its_blobs(tmp_path: Path) -> None:
    """The hard case: a backup reuses a blob that only forgotten snapshots held, after a prune
    marked its pack. Its snapshot commits; the next prune rescues the pack instead of deleting it."""
    rng = random.Random(3)
    src = tmp_path / "src"
    _files(src, rng, range(6))
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    old = sv.Engine(repo).backup([str(src)], now=NOW)
    repo.delete_snapshot(old.id)  # every pack is now unused
    started, release = threading.Event(), threading.Event()

    def pause_after_first(path: str, size: int, unchanged: bool) -> None:
        started.set()
        assert release.wait(30)

    writer = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    result: list[sv.Manifest] = []
    t = threading.Thread(
        target=lambda: result.append(sv.Engine(writer).backup([str(src)], now=NOW, on_file=pause_after_first))
    )
    t.start()
    assert started.wait(30)
    marked = repo.prune(now=NOW)
    assert marked.marked["unused"].packs > 0
    assert marked.deleted.packs == 0
    release.set()
    t.join(30)
    [snap] = result
    # The backup found every chunk in the index it loaded before the mark: it stored none.
    assert snap.stats.data_blobs_added == 0
    after = repo.prune(now=NOW)
    assert after.rescued > 0
    assert repo.check(read_data=True).ok
    _restored(sv.Repository.open(str(tmp_path / "repo"), PASSWORD), snap.id, tmp_path, src)


def test_a_backup_after_the_mark_stores_blobs_again_rather_than_reuse_marked_packs(tmp_path: Path) -> None:
    repo, src, ids = _history(tmp_path, days=1)
    repo.delete_snapshot(ids[0])
    with sv.Repository.open(str(tmp_path / "repo"), PASSWORD).writer_session():
        repo.prune(now=NOW)  # marked, deferred by the open session
    again = sv.Engine(sv.Repository.open(str(tmp_path / "repo"), PASSWORD)).backup([str(src)], now=NOW)
    assert again.stats.data_blobs_added > 0
    repo.prune(now=NOW)
    assert repo.check(read_data=True).ok
    _restored(repo, again.id, tmp_path, src)


def test_a_writer_record_older_than_the_timeout_does_not_block(tmp_path: Path) -> None:
    repo, _, ids = _history(tmp_path, days=2)
    repo.delete_snapshot(ids[0])
    stale = encode_writer("crashed", NOW - timedelta(hours=2), [], "elsewhere")
    repo.write_sealed(layout.WRITERS, stale, WRITER_AD)
    result = repo.prune(now=NOW)
    assert result.deleted.packs > 0
    assert result.writer_records_removed == 1
    assert not list((tmp_path / "repo").glob("writers/*"))
    with pytest.raises(sv.ConfigError, match="writer_timeout"):
        repo.prune(now=NOW, writer_timeout=timedelta(minutes=5))


def test_an_unreadable_snapshot_stops_prune_before_anything_is_deleted(tmp_path: Path) -> None:
    repo, _, ids = _history(tmp_path, days=2)
    repo.delete_snapshot(ids[0])
    (tmp_path / "repo" / "snapshots" / ("ab" * 32)).write_bytes(b"not a manifest")
    listing = sorted((tmp_path / "repo").rglob("*"))
    with pytest.raises(sv.PruneError, match="cannot be read"):
        repo.prune(now=NOW)
    assert sorted((tmp_path / "repo").rglob("*")) == listing


def test_append_only_refuses_prune_and_forget_but_allows_a_dry_run(tmp_path: Path) -> None:
    _, _, ids = _history(tmp_path, days=1)
    repo = sv.Repository.open(str(tmp_path / "repo"), PASSWORD, append_only=True)
    with pytest.raises(sv.AppendOnlyError):
        repo.prune(now=NOW)
    with pytest.raises(sv.AppendOnlyError):
        repo.delete_snapshot(ids[0])
    assert repo.prune(now=NOW, dry_run=True).dry_run
    # Backups still work, and leave their writer records for a prune elsewhere to remove.
    sv.Engine(repo).backup([str(tmp_path / "src")], now=NOW)
    assert list((tmp_path / "repo").glob("writers/*"))


def test_superseded_policy_records_go(tmp_path: Path) -> None:
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    for i in range(3):
        repo.save_policy(sv.Policy(name="p", sources=[str(tmp_path)], tags=[str(i)]), now=NOW + timedelta(seconds=i))
    assert len(list((tmp_path / "repo" / "policies").iterdir())) == 3
    assert repo.prune(now=NOW).policy_records_removed == 2
    assert repo.load_policy("p").tags == ["2"]


def _writes_of_one_prune(base: Path, tmp: Path) -> int:
    """How many writes and deletes a prune of a copy of ``base`` makes, uninterrupted."""
    shutil.copytree(base, tmp)
    counter = CrashAt(open_store(str(tmp)), 10**9)
    sv.Repository.open(str(tmp), PASSWORD, store=counter).prune(now=NOW, max_repack=1.0)
    shutil.rmtree(tmp)
    return 10**9 - counter.left


@pytest.fixture(scope="module")
def crash_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path, int]:
    tmp = tmp_path_factory.mktemp("crash")
    repo, src, ids = _history(tmp, days=3)
    for sid in ids[:-1]:
        repo.delete_snapshot(sid)
    return tmp / "repo", ids, src, _writes_of_one_prune(tmp / "repo", tmp / "count")


def test_a_prune_interrupted_at_any_write_leaves_a_usable_repository(
    crash_base: tuple[Path, list[str], Path, int], tmp_path: Path
) -> None:
    base, ids, src, writes = crash_base
    assert writes > 5
    for n in range(writes):
        repo_dir = tmp_path / f"r{n}"
        shutil.copytree(base, repo_dir)
        crashing = sv.Repository.open(str(repo_dir), PASSWORD, store=CrashAt(open_store(str(repo_dir)), n))
        with pytest.raises(Crash):
            crashing.prune(now=NOW, max_repack=1.0)
        repo = sv.Repository.open(str(repo_dir), PASSWORD)
        report = repo.check()
        assert report.ok, (n, report.problems)
        finished = repo.prune(now=NOW, max_repack=1.0)
        assert not list(repo_dir.glob("deletions/*")), (n, finished)
        assert repo.check(read_data=True).ok, n
        _restored(repo, ids[-1], tmp_path / f"o{n}", src)
        shutil.rmtree(repo_dir)


def test_prune_removes_temporaries_a_day_old_and_keeps_younger_ones(tmp_path: Path) -> None:
    import os

    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    old = tmp_path / "repo" / "data" / "ab" / ".tmp-0123456789abcdef"
    young = tmp_path / "repo" / "index" / ".tmp-fedcba9876543210"
    for f in (old, young):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"half a pack")
    day_ago = NOW.timestamp() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    os.utime(young, (NOW.timestamp() - 3600, NOW.timestamp() - 3600))
    assert repo.prune(now=NOW, dry_run=True).temporaries_removed == 1
    assert old.exists()
    assert repo.prune(now=NOW).temporaries_removed == 1
    assert not old.exists()
    assert young.exists()


def test_temporaries_are_listed_on_an_fsspec_store_too() -> None:
    import uuid

    import fsspec

    url = f"memory://tmp-{uuid.uuid4().hex}"
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    fs = fsspec.filesystem("memory")
    fs.pipe(url.removeprefix("memory://") + "/index/.tmp-0011", b"x")
    [(key, mtime)] = repo.temporaries()
    assert key.endswith("index/.tmp-0011")
    assert abs(mtime - datetime.now(UTC).timestamp()) < 3600
    assert repo.prune(now=datetime.now(UTC) + timedelta(days=2)).temporaries_removed == 1
    assert repo.temporaries() == []


def test_an_unreadable_deletion_mark_is_reported_and_stops_nothing(tmp_path: Path) -> None:
    _, src, ids = _history(tmp_path, days=2)
    junk = tmp_path / "repo" / "deletions" / ("ab" * 32)
    junk.parent.mkdir(exist_ok=True)
    junk.write_bytes(b"not a mark")
    fresh = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    _restored(fresh, ids[-1], tmp_path, src)
    report = fresh.check()
    assert [p.key for p in report.problems] == [f"deletions/{'ab' * 32}"]
    fresh.delete_snapshot(ids[0])
    assert fresh.prune(now=NOW).deleted.packs > 0
    assert junk.exists()


def test_unused_space_counts_the_dead_blobs_share_of_a_pack_header(tmp_path: Path) -> None:
    # Pack B's dead blobs are 500 bytes, under 5% of the 13,500 live bytes (675), but its
    # header is half the pack and a tenth of its entries' bytes are dead: 1,000 bytes serve
    # nothing, over 675, so B is repacked. Counting blob bytes alone left a repository 5.01%
    # over a fresh one while it looked 4.99% over.
    from snapvault.archiver.progress import Meter
    from snapvault.maintenance.prune import _Packs, _Run, _unused_bytes

    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    a, b = b"A" * 32, b"B" * 32
    packs = _Packs(
        size={a: 10_000, b: 10_000},
        indexed={a, b},
        blob_bytes={a: 9_000, b: 5_000},
        live_bytes={a: 9_000, b: 4_500},
        live_count={a: 9, b: 9},
    )
    assert _unused_bytes(packs, b, 10_000) == pytest.approx(1_000)
    assert _unused_bytes(packs, a, 10_000) == 0
    run = _Run(repo, datetime.now(UTC), False, timedelta(hours=1), Meter(None))
    marked, repack = run._choose(packs, frozenset(), max_repack=1.0, max_unused=0.05)
    assert repack == {b}
    assert marked == {"repack": {b}}
    # With the header share under the bound, nothing is copied.
    packs.blob_bytes[b] = packs.live_bytes[b] = 5_000
    packs.size[b] = 5_100
    assert run._choose(packs, frozenset(), max_repack=1.0, max_unused=0.05) == ({}, frozenset())
