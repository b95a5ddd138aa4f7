"""Objects over their kind's size limit are refused unread, naming the object (docs/format.md, "Limits")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.pipeline.ids import object_hash
from snapvault.repository import layout
from snapvault.repository.config import KDF_MEMORY_LIMIT_KIB
from snapvault.repository.repo import get_limited
from tests.conftest import FAST_KDF, PASSWORD, write

pytestmark = pytest.mark.commits_damage


def _plant(root: Path, folder: str, data: bytes) -> str:
    name = object_hash(data).hex()
    write(root / folder / name, data)
    return name


def test_a_manifest_over_the_limit_is_unreadable_by_name_and_hides_no_other(tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "f", b"kept")
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    good = sv.Engine(repo).backup([str(src.parent)])
    limit = layout.max_size("snapshots/x")
    assert limit == 16 << 20
    # Zeros cost nothing on disk to make but would cost a reader the whole object in memory.
    huge = _plant(tmp_path / "repo", layout.SNAPSHOTS, bytes(limit + 1))
    fresh = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    assert [m.id for m in fresh.snapshots()] == [good.id]
    [(sid, error)] = fresh.unreadable_snapshots()
    assert sid == huge
    assert "over the format's limit" in str(error)
    assert any(p.snapshot == huge or huge in str(p) for p in fresh.check().problems)


@pytest.mark.parametrize(("key", "limit"), [("config", 64 << 10), ("keys/x", 64 << 10), ("index/x", 33 << 20)])
def test_the_limit_of_each_kind_is_enforced_by_a_read_one_byte_past_it(tmp_path: Path, key: str, limit: int) -> None:
    from snapvault.storage import open_store

    store = open_store(str(tmp_path))
    os.makedirs(tmp_path / os.path.dirname(key) if "/" in key else tmp_path, exist_ok=True)
    store.put_if_absent(key, bytes(limit))
    assert len(get_limited(store, key)) == limit
    store.delete(key)
    store.put_if_absent(key, bytes(limit + 1))
    with pytest.raises(sv.IntegrityError, match="over the format's limit") as exc:
        get_limited(store, key)
    assert exc.value.key == key


def test_a_config_over_the_limit_is_refused_at_open(tmp_path: Path) -> None:
    sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    config = tmp_path / "repo" / "config"
    config.write_bytes(config.read_bytes() + b" " * (64 << 10))
    with pytest.raises(sv.IntegrityError, match="over the format's limit"):
        sv.Repository.open(str(tmp_path / "repo"), PASSWORD)


def test_the_cheapest_key_file_is_tried_first(tmp_path: Path) -> None:
    # A planted key file asking for the most memory the format allows is never derived while
    # the repository's own (cheaper) key file opens.
    import json

    sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    [own] = (tmp_path / "repo" / "keys").iterdir()
    doc = json.loads(own.read_bytes())
    doc["kdf"]["memory_kib"] = 4 << 20
    doc["kdf"]["iterations"] = 64
    # Padded until its name sorts before the real one's: trying key files by name would derive
    # the planted one first.
    planted = json.dumps(doc).encode()
    while object_hash(planted).hex() > own.name:
        planted += b" "
    _plant(tmp_path / "repo", "keys", planted)
    assert sv.Repository.open(str(tmp_path / "repo"), PASSWORD).encrypted


def _costly_copy(tmp_path: Path, memory_kib: int) -> str:
    """Plant a copy of the repository's key file that asks for ``memory_kib`` of Argon2."""
    import json

    own = min((tmp_path / "repo" / "keys").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    doc = json.loads(own.read_bytes())
    doc["kdf"]["memory_kib"] = memory_kib
    return _plant(tmp_path / "repo", "keys", json.dumps(doc).encode())


def test_a_wrong_password_skips_key_files_over_the_memory_limit(tmp_path: Path) -> None:
    sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    _costly_copy(tmp_path, KDF_MEMORY_LIMIT_KIB + 1)
    _costly_copy(tmp_path, 4 << 20)
    with pytest.raises(sv.WrongPassword, match=r"2 key file\(s\) over the Argon2 memory limit of 128 MiB"):
        sv.Repository.open(str(tmp_path / "repo"), "not the password")
    # The limit is the caller's: at 64 KiB the repository's own 64 KiB key is still tried.
    with pytest.raises(sv.WrongPassword, match=r"2 key file\(s\) over the Argon2 memory limit of 0.0625 MiB"):
        sv.Repository.open(str(tmp_path / "repo"), "not the password", max_kdf_memory_kib=FAST_KDF.memory_kib)
    assert sv.Repository.open(str(tmp_path / "repo"), PASSWORD).encrypted


def test_a_key_over_the_limit_opens_only_when_the_caller_raises_it(tmp_path: Path) -> None:
    sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    [own] = (tmp_path / "repo" / "keys").iterdir()
    with pytest.raises(sv.UnsupportedFormat, match=f"{own.name}: key file asks for 0.0625 MiB") as exc:
        sv.Repository.open(str(tmp_path / "repo"), PASSWORD, max_kdf_memory_kib=FAST_KDF.memory_kib - 1)
    assert "max_kdf_memory_kib" in str(exc.value)
    assert sv.Repository.open(str(tmp_path / "repo"), PASSWORD, max_kdf_memory_kib=FAST_KDF.memory_kib).encrypted
