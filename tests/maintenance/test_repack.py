"""Repack copies each chosen blob once, sealed bytes as they are, into bounded new packs that
an index file names only after all are stored; a damaged blob or a failed write stops it with
nothing indexed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.errors import IntegrityError
from snapvault.maintenance import repack as repack_module
from snapvault.maintenance.repack import repack_packs
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.pack import PackWriter
from snapvault.repository import layout
from snapvault.storage import open_store
from tests.conftest import FAST_KDF, PASSWORD
from tests.crashing import Crash, CrashAt


def _repo(path: Path, **kw: object) -> sv.Repository:
    return sv.Repository.init(str(path), PASSWORD, kdf=FAST_KDF, **kw)  # type: ignore[arg-type]


def _pack(repo: sv.Repository, blobs: list[bytes], btype: BlobType = BlobType.DATA) -> bytes:
    """Store one pack holding ``blobs`` and index it; return its ID."""
    packer = PackWriter()
    for data in blobs:
        bid = repo.blob_id(data)
        packer.add(btype, bid, repo.seal_blob(btype, bid, data), len(data))
    pid, data, entries = repo.finish_pack(packer)
    repo.write_pack(pid, data)
    repo.write_index([(pid, entries)])
    return pid


def _sizes(repo: sv.Repository, *pids: bytes) -> dict[bytes, int]:
    """``pids`` with their stored sizes, as a prune passes them."""
    stored = dict(repo.packs())
    return {pid: stored[pid.hex()] for pid in pids}


def _new_packs(repo: sv.Repository, before: set[str]) -> dict[str, list[bytes]]:
    """The packs stored since ``before``, each with the blob IDs its header lists."""
    out = {}
    for name, _ in repo.packs():
        if name not in before:
            out[name] = [e.id for e in repo.pack_header(repo.read_pack(name))]
    return out


@pytest.fixture(params=["whole", "ranges"])
def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each pack read whole (as at the default pack size), or by ranges of a few blobs (as a
    pack over WHOLE_PACK is)."""
    if request.param == "ranges":
        monkeypatch.setattr(repack_module, "WHOLE_PACK", 0)
        monkeypatch.setattr(repack_module, "SPAN", 12_000)
    return str(request.param)


def test_each_kept_blob_is_copied_once_and_reads_back(tmp_path: Path, reading: str) -> None:
    repo = _repo(tmp_path / "repo")
    rng = random.Random(1)
    x, y, z, w = (rng.randbytes(5000 + i) for i in range(4))
    a = _pack(repo, [x, y])
    b = _pack(repo, [y, z, w])  # y twice: copied from the first pack it is found in only
    before = {n for n, _ in repo.packs()}
    index_before = set(repo.index_files())
    seen: list[bytes] = []
    keep_ids = {repo.blob_id(v) for v in (x, y, z)}
    count, moved = repack_packs(repo, _sizes(repo, b, a), keep=lambda e: e.id in keep_ids, progress=seen.append)
    assert count == 3
    assert seen == sorted([a, b])
    new = _new_packs(repo, before)
    assert len(new) == 1
    (ids,) = new.values()
    assert sorted(ids) == sorted(keep_ids)
    # The new pack's bytes are the old sealed bytes; each blob opens to its plaintext.
    (name,) = new
    data = repo.read_pack(name)
    entries = repo.pack_header(data)
    assert moved == sum(e.length for e in entries)
    by_id = {repo.blob_id(v): v for v in (x, y, z)}
    for e in entries:
        assert repo.open_blob(e.type, e.id, data[e.offset : e.offset + e.length]) == by_id[e.id]
    # Exactly one index file was added, naming the new pack.
    (added,) = set(repo.index_files()) - index_before
    assert [pid.hex() for pid, _ in repo.read_index_file(added)] == [name]


def test_copies_are_split_into_packs_of_the_repository_size_and_by_type(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", pack_size=1 << 20)
    rng = random.Random(2)
    blobs = [rng.randbytes(300_000) for _ in range(10)]
    a = _pack(repo, blobs[:5])
    b = _pack(repo, blobs[5:])
    t = _pack(repo, [b"a tree blob" * 10], BlobType.TREE)
    before = {n for n, _ in repo.packs()}
    count, _ = repack_packs(repo, _sizes(repo, a, b, t), keep=lambda e: True)
    assert count == 11
    new = _new_packs(repo, before)
    sizes = {n: s for n, s in repo.packs() if n in new}
    # 3 MB of data in packs of 1 MiB, each closed once it reaches the size (4 + 4 + 2 blobs),
    # and the tree blob alone in a pack of its own type.
    assert len(new) == 4
    assert all(s < (1 << 20) + 400_000 for s in sizes.values())
    types = {n: {e.type for e in repo.pack_header(repo.read_pack(n))} for n in new}
    assert sorted(len(v) for v in types.values()) == [1, 1, 1, 1]
    assert sorted(len(ids) for ids in new.values()) == [1, 2, 4, 4]
    assert sum(1 for v in types.values() if v == {BlobType.TREE}) == 1


def test_a_damaged_blob_stops_the_repack_and_nothing_is_indexed(tmp_path: Path, reading: str) -> None:
    repo = _repo(tmp_path / "repo")
    rng = random.Random(3)
    good = [rng.randbytes(4000) for _ in range(3)]
    a = _pack(repo, good)
    b = _pack(repo, [rng.randbytes(4000)])
    entries = repo.pack_header(repo.read_pack(a))
    path = tmp_path / "repo" / layout.pack_key(a)
    raw = bytearray(path.read_bytes())
    raw[entries[1].offset + 40] ^= 0x01  # inside the second blob's ciphertext, not the header
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    index_before = set(repo.index_files())
    with pytest.raises(IntegrityError):
        repack_packs(repo, _sizes(repo, a, b), keep=lambda e: True)
    assert set(repo.index_files()) == index_before
    # A blob that is not kept is not looked at: the same repack without it goes through.
    bad = entries[1].id
    count, _ = repack_packs(repo, _sizes(repo, a, b), keep=lambda e: e.id != bad)
    assert count == 3


def test_a_failed_write_stops_the_repack_and_nothing_is_indexed(tmp_path: Path) -> None:
    _repo(tmp_path / "repo", pack_size=1 << 20)
    # Packs written through a store that lets one more write through: the first new pack
    # lands, the second fails in the writing thread and the error reaches the caller.
    writer = sv.Repository.open(str(tmp_path / "repo"), PASSWORD)
    rng = random.Random(4)
    a = _pack(writer, [rng.randbytes(400_000) for _ in range(3)])
    b = _pack(writer, [rng.randbytes(400_000) for _ in range(3)])
    failing = sv.Repository.open(str(tmp_path / "repo"), PASSWORD, store=CrashAt(open_store(str(tmp_path / "repo")), 1))
    index_before = set(failing.index_files())
    with pytest.raises(Crash):
        repack_packs(failing, _sizes(failing, a, b), keep=lambda e: True)
    assert set(failing.index_files()) == index_before
    assert len(list(failing.packs())) == 3  # the two packs and the one copy that landed


def test_nothing_to_repack_writes_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    a = _pack(repo, [b"x" * 100])
    index_before = set(repo.index_files())
    assert repack_packs(repo, {}, keep=lambda e: True) == (0, 0)
    assert repack_packs(repo, _sizes(repo, a), keep=lambda e: False) == (0, 0)
    assert set(repo.index_files()) == index_before
    assert len(list(repo.packs())) == 1


class _Reads:
    """A repository whose ranged pack reads are recorded (everything else is the real one's)."""

    def __init__(self, repo: sv.Repository) -> None:
        self._repo = repo
        self.reads: list[tuple[bytes, int, int]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._repo, name)

    def read_pack_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        self.reads.append((pack_id, offset, length))
        return self._repo.read_pack_range(pack_id, offset, length)


def test_a_pack_over_the_whole_read_size_is_read_by_bounded_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pack is ever held whole past WHOLE_PACK: a repository made with large packs, or a
    # hostile pack of any size, costs a span (or one blob) at a time.
    repo = _repo(tmp_path / "repo")
    rng = random.Random(5)
    blobs = [rng.randbytes(rng.randrange(1_000, 9_000)) for _ in range(40)]
    big = rng.randbytes(30_000)  # one blob larger than a span: read alone
    a = _pack(repo, [*blobs[:20], big, *blobs[20:]])
    sizes = _sizes(repo, a)
    monkeypatch.setattr(repack_module, "WHOLE_PACK", sizes[a] - 1)
    monkeypatch.setattr(repack_module, "SPAN", 20_000)
    skip = {repo.blob_id(b) for b in blobs[5:15]}  # a gap: not read at all
    recorder = _Reads(repo)
    before = {n for n, _ in repo.packs()}
    count, _ = repack_packs(recorder, sizes, keep=lambda e: e.id not in skip)  # type: ignore[arg-type]
    assert count == 31
    entries = {e.offset: e for e in repo.pack_header(repo.read_pack(a))}
    header_at = max(e.offset + e.length for e in entries.values())
    body = [(o, n) for _, o, n in recorder.reads if o < header_at]  # not the trailer's or header's
    assert body, recorder.reads
    # Every read of blobs covers at most a span, or exactly one blob larger than a span.
    for offset, length in body:
        if length > 20_000:
            assert entries[offset].length == length
    assert max(n for _, n in body) < sizes[a] // 2
    # The copies read back.
    (name,) = _new_packs(repo, before)
    data = repo.read_pack(name)
    by_id = {repo.blob_id(b): b for b in [*blobs, big]}
    for e in repo.pack_header(data):
        assert repo.open_blob(e.type, e.id, data[e.offset : e.offset + e.length]) == by_id[e.id]


def test_a_pack_shorter_than_its_header_says_stops_the_repack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path / "repo")
    rng = random.Random(6)
    a = _pack(repo, [rng.randbytes(5000) for _ in range(4)])
    sizes = _sizes(repo, a)
    monkeypatch.setattr(repack_module, "WHOLE_PACK", 0)
    short = _Reads(repo)
    short.read_pack_range = lambda pid, offset, length: repo.read_pack_range(pid, offset, length)[:-1]  # type: ignore[method-assign, assignment]
    # The header is read by the real repository's own method (not cut short): only the
    # blobs' span comes back short.
    index_before = set(repo.index_files())
    with pytest.raises(IntegrityError, match="shorter than its header"):
        repack_packs(short, sizes, keep=lambda e: True)  # type: ignore[arg-type]
    assert set(repo.index_files()) == index_before
