"""Key rotation: new data is sealed with the new key at once; after ``rewrite`` no object is
left that the old key opens, everything restores, and an interrupted rewrite is finished by
the next run."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.maintenance.rekey import RekeyResult
from snapvault.pipeline.crypto import AEADSealer
from snapvault.pipeline.pack import TRAILER_SIZE, header_length, read_header
from snapvault.storage import open_store
from tests.conftest import FAST_KDF, PASSWORD
from tests.crashing import Crash, CrashAt
from tests.treecompare import assert_same_tree

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ADS = [
    b"snapvault index",
    b"snapvault snapshot",
    b"snapvault policy",
    b"snapvault run",
    b"snapvault quarantine",
    b"snapvault deletion",
]


def _opened_by(key: bytes, repo_dir: Path) -> list[str]:
    """Every object of the repository (key files aside) that ``key`` opens."""
    sealer = AEADSealer(key)
    found = []
    for f in sorted(repo_dir.rglob("*")):
        if not f.is_file() or f.name == "config" or f.parent.name == "keys" or f.name.startswith(".tmp-"):
            continue
        data = f.read_bytes()
        if f.parent.parent.name == "data":
            size = len(data)
            hlen = header_length(data[-TRAILER_SIZE:], size)
            try:
                read_header(sealer, data[size - TRAILER_SIZE - hlen :], size)
                found.append(str(f.relative_to(repo_dir)))
            except sv.IntegrityError:
                pass
            continue
        for ad in ADS:
            try:
                sealer.open(data, ad)
                found.append(str(f.relative_to(repo_dir)))
            except sv.IntegrityError:
                continue
    return found


def _source(root: Path, seed: int) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(12):
        (root / f"f{i}").write_bytes(rng.randbytes(60_000))
    return root


def _repo(tmp_path: Path) -> tuple[sv.Repository, Path, list[str]]:
    src = _source(tmp_path / "src", 1)
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    engine = sv.Engine(repo)
    ids = [engine.backup([str(src)], now=NOW - timedelta(hours=2)).id]
    (src / "f0").write_bytes(b"changed")
    ids.append(engine.backup([str(src)], now=NOW - timedelta(hours=1)).id)
    repo.save_policy(sv.Policy(name="p", sources=[str(src)]), now=NOW)
    return repo, src, ids


def _restores(repo: sv.Repository, src: Path, out: Path) -> None:
    latest = repo.snapshots()[-1]
    sv.Restorer(repo).restore(latest.id, out)
    assert_same_tree(src, out / str(src).lstrip("/"))


def test_rotation_seals_new_data_with_the_new_key_and_still_reads_the_old(tmp_path: Path) -> None:
    repo, src, _ = _repo(tmp_path)
    old_key = repo.master_keys.encryption_key
    before = set(_opened_by(old_key, tmp_path / "repo"))
    info = repo.rotate_key(PASSWORD, now=NOW)
    assert isinstance(info, sv.KeyInfo)
    assert info.current
    assert repo.master_keys.encryption_key != old_key
    assert repo.master_keys.retired_keys == (old_key,)
    (src / "f1").write_bytes(b"new after the rotation")
    sv.Engine(repo).backup([str(src)], now=NOW)
    # Nothing new opens with the old key; everything old still opens through the new handle.
    assert set(_opened_by(old_key, tmp_path / "repo")) <= before
    fresh = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    assert fresh.check(read_data=True).ok
    _restores(fresh, src, tmp_path / "out")


def test_rotation_needs_force_to_drop_other_key_files_and_the_right_password(tmp_path: Path) -> None:
    repo, _, _ = _repo(tmp_path)
    repo.add_key("second", now=NOW)
    with pytest.raises(sv.KeyRemovalRefused, match="other key file"):
        repo.rotate_key(PASSWORD, now=NOW)
    with pytest.raises(sv.WrongPassword):
        repo.rotate_key("not it", force=True, now=NOW)
    assert len(list((tmp_path / "repo" / "keys").iterdir())) == 2
    repo.rotate_key(PASSWORD, force=True, now=NOW)
    assert len(list((tmp_path / "repo" / "keys").iterdir())) == 1
    with pytest.raises(sv.WrongPassword):
        sv.Repository.open(str(tmp_path / "repo"), "second")
    assert sv.Repository.open(str(tmp_path / "repo"), PASSWORD).check().ok


def test_after_the_rewrite_the_old_key_opens_nothing(tmp_path: Path) -> None:
    repo, src, ids = _repo(tmp_path)
    old_key = repo.master_keys.encryption_key
    repo.rotate_key(PASSWORD, now=NOW)
    result = sv.Repository.open(str(tmp_path / "repo"), PASSWORD).rotate_key(PASSWORD, rewrite=True, now=NOW)
    assert isinstance(result, RekeyResult)
    assert result.finished, result.notes
    assert result.packs_rekeyed > 0
    assert sorted(result.snapshots_renamed) == sorted(ids)
    assert _opened_by(old_key, tmp_path / "repo") == []
    fresh = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    assert fresh.master_keys.retired_keys == ()
    assert fresh.check(read_data=True).ok
    assert fresh.load_policy("p").name == "p"
    # The renamed snapshots keep their history: the second names the first as parent.
    by_old = result.snapshots_renamed
    assert fresh.load_manifest(by_old[ids[1]]).parent == by_old[ids[0]]
    _restores(fresh, src, tmp_path / "out")


def test_a_running_writer_holds_the_retired_key_until_it_ends(tmp_path: Path) -> None:
    repo, _, _ = _repo(tmp_path)
    repo.rotate_key(PASSWORD, now=NOW)
    other = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    with other.writer_session():
        waiting = repo.rotate_key(PASSWORD, rewrite=True, now=NOW)
        assert isinstance(waiting, RekeyResult)
        assert not waiting.finished
        assert repo.master_keys.retired_keys
    done = repo.rotate_key(PASSWORD, rewrite=True, now=NOW)
    assert isinstance(done, RekeyResult)
    assert done.finished, done.notes
    assert sv.Repository.open(str(tmp_path / "repo"), PASSWORD).check(read_data=True).ok


def test_an_interrupted_rewrite_is_finished_by_the_next_run(tmp_path: Path) -> None:
    repo, src, _ = _repo(tmp_path / "base")
    old_key = repo.master_keys.encryption_key
    repo.rotate_key(PASSWORD, now=NOW)
    base = tmp_path / "base" / "repo"
    count = CrashAt(open_store(str(base)), 10**9)
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    count = CrashAt(open_store(str(probe)), 10**9)
    sv.Repository.open(str(probe), PASSWORD, store=count).rotate_key(PASSWORD, rewrite=True, now=NOW)
    writes = 10**9 - count.left
    assert writes > 10
    for n in range(0, writes, max(1, writes // 12)):
        work = tmp_path / f"r{n}"
        shutil.copytree(base, work)
        crashing = sv.Repository.open(str(work), PASSWORD, store=CrashAt(open_store(str(work)), n))
        with pytest.raises(Crash):
            crashing.rotate_key(PASSWORD, rewrite=True, now=NOW)
        again = sv.Repository.open(str(work), PASSWORD)
        assert again.check().ok, n
        done = again.rotate_key(PASSWORD, rewrite=True, now=NOW)
        assert isinstance(done, RekeyResult)
        assert done.finished, (n, done.notes)
        assert _opened_by(old_key, work) == [], n
        final = sv.Repository.open(str(work), PASSWORD)
        assert final.check(read_data=True).ok, n
        _restores(final, src, tmp_path / f"o{n}")
        shutil.rmtree(work)
