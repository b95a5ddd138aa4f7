"""check --read-data reads several packs at once: the report is the same as one reader's, in
pack order, the queue of packs stays bounded, and an error stops the readers."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.maintenance import check as check_module
from snapvault.maintenance.check import check_repository
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.pack import PackWriter
from tests.conftest import FAST_KDF, PASSWORD


def _repo_with_packs(path: Path, packs: int) -> tuple[sv.Repository, list[bytes]]:
    repo = sv.Repository.init(str(path), PASSWORD, kdf=FAST_KDF)
    rng = random.Random(packs)
    ids = []
    for _ in range(packs):
        packer = PackWriter()
        for _ in range(3):
            data = rng.randbytes(2000)
            bid = repo.blob_id(data)
            packer.add(BlobType.DATA, bid, repo.seal_blob(BlobType.DATA, bid, data), len(data))
        pid, data, entries = repo.finish_pack(packer)
        repo.write_pack(pid, data)
        repo.write_index([(pid, entries)])
        ids.append(pid)
    return repo, sorted(ids)


class _Watched:
    """The repository, with its ranged pack reads counted per pack (and one made to fail)."""

    def __init__(self, repo: sv.Repository, fail: bytes | None = None) -> None:
        self._repo = repo
        self._fail = fail
        self._lock = threading.Lock()
        self.started: set[bytes] = set()

    def __getattr__(self, name: str) -> object:
        return getattr(self._repo, name)

    def read_pack_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        with self._lock:
            self.started.add(pack_id)
        if pack_id == self._fail:
            raise RuntimeError("a bug while reading")
        return self._repo.read_pack_range(pack_id, offset, length)


def test_several_readers_give_one_readers_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, packs = _repo_with_packs(tmp_path / "repo", 12)
    # Damage three packs (a flipped byte inside a blob): each is named, in pack order.
    for pid in (packs[1], packs[5], packs[9]):
        f = tmp_path / "repo" / "data" / pid.hex()[:2] / pid.hex()
        raw = bytearray(f.read_bytes())
        raw[100] ^= 0x01
        f.chmod(0o600)
        f.write_bytes(bytes(raw))
    monkeypatch.setattr(check_module, "_READERS", 4)
    many = check_repository(repo, read_data=True)
    monkeypatch.setattr(check_module, "_READERS", 1)
    one = check_repository(repo, read_data=True)
    assert [str(p) for p in many.problems] == [str(p) for p in one.problems]
    assert {p.pack for p in many.problems} == {packs[1].hex(), packs[5].hex(), packs[9].hex()}
    assert [p.pack for p in many.problems] == sorted(p.pack or "" for p in many.problems)
    assert (many.packs_read, many.blobs_read) == (one.packs_read, one.blobs_read) == (12, 36)


def test_an_error_in_one_reader_stops_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, packs = _repo_with_packs(tmp_path / "repo", 40)
    monkeypatch.setattr(check_module, "_READERS", 2)
    watched = _Watched(repo, fail=packs[2])
    with pytest.raises(RuntimeError, match="a bug while reading"):
        check_repository(watched, read_data=True)  # type: ignore[arg-type]
    # At most two packs a reader are queued past the one that failed; none of the rest starts.
    assert packs[2] in watched.started
    assert len(watched.started) <= 3 + 2 * 2
