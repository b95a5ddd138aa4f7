"""A damaged repository still gives back every file it can.

A restore goes on past damage: each file whose data is missing or fails verification (a pack
gone, cut short or altered, a blob missing from the index) and each directory whose tree cannot
be read is listed in ``RestoreResult.errors`` with its reason; every other file is restored
byte for byte, and no damaged file ever appears under its final name. ``stop_on_error=True``
stops at the first damage with :class:`IntegrityError`.

The repositories have small packs (1 MiB), so one damaged pack holds some files and not others;
the memory repository is an object store to the restorer (pack windows, read-ahead), the local
one is not.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest

import snapvault as sv
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import BlobLocation
from snapvault.pipeline.restore_plan import ReadRun
from snapvault.repository.layout import pack_key
from snapvault.restore.fetch import read_ahead
from snapvault.restore.restorer import RestoreFileError
from snapvault.storage import ReadOnlyStore, Store
from tests.conftest import FAST_KDF, PASSWORD, write

SMALL_CHUNKS = sv.ChunkerParams(min_size=64 << 10, avg_size=256 << 10, max_size=1 << 20)
TMP_PREFIX = ".sv-restore-"


def make_source(root: Path) -> Path:
    """Four folders of small files and one large file: about six packs of data."""
    rng = random.Random(7)
    src = root / "src"
    for d in range(4):
        for i in range(8):
            write(src / f"d{d}" / f"f{i}.bin", rng.randbytes(90_000 + i))
    write(src / "d0" / "note.txt", "a small text file\n")
    write(src / "big.bin", rng.randbytes(3 << 20))
    return src


@dataclass
class Backup:
    """A repository holding one snapshot of ``make_source``, and where everything is stored."""

    url: str
    snapshot: str
    files: dict[str, bytes]  # snapshot-relative path -> content
    blobs: dict[str, list[bytes]]  # file -> its data blob IDs
    dirs: dict[str, str]  # directory -> its tree blob ID
    root_tree: str

    def open(self, store: Store | None = None) -> sv.Repository:
        return sv.Repository.open(self.url, PASSWORD, store=store)

    def loc(self, bid: bytes) -> BlobLocation:
        loc = self.open().index.get(bid)
        assert loc is not None
        return loc

    def files_using(self, lost: Callable[[bytes], bool]) -> set[str]:
        return {rel for rel, ids in self.blobs.items() if any(lost(b) for b in ids)}


def _backup(url: str, src: Path) -> Backup:
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20, chunker=SMALL_CHUNKS)
    m = sv.Engine(repo, workers=2).backup([src])
    files = {str(p.relative_to("/")): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    blobs: dict[str, list[bytes]] = {}
    dirs: dict[str, str] = {}
    stack = [(m.tree, "")]
    while stack:
        tid, rel = stack.pop()
        for n in repo.read_tree(tid):
            nrel = f"{rel}/{n.name}" if rel else n.name
            if n.type == "dir":
                assert n.subtree is not None
                dirs[nrel] = n.subtree
                stack.append((n.subtree, nrel))
            elif n.type == "file":
                blobs[nrel] = [bytes.fromhex(c) for c in n.content]
    return Backup(url, m.id, files, blobs, dirs, m.tree)


@pytest.fixture(params=["local", "object-store"])
def backup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backup]:
    src = make_source(tmp_path)
    if request.param == "local":
        yield _backup(str(tmp_path / "repo"), src)
        return
    url = f"memory://damage-{uuid.uuid4().hex}"
    yield _backup(url, src)
    fsspec.filesystem("memory").rm(url, recursive=True)


# -- damaging a stored object through the store, as a disk or a bucket would -------------------


def rewrite(repo: sv.Repository, key: str, data: bytes | None) -> None:
    """Replace an object's bytes (None: delete it)."""
    if repo.store.capabilities.spool_dir is not None:
        path = Path(repo.store.url.removeprefix("file://")) / key
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)
        return
    repo.store.delete(key)
    if data is not None:
        assert repo.store.put_if_absent(key, data)


def data_pack_of(b: Backup, rel: str) -> bytes:
    """The pack holding the first blob of ``rel``."""
    loc = b.loc(b.blobs[rel][0])
    assert loc.type == BlobType.DATA
    return loc.pack_id


def damage_pack(b: Backup, pack_id: bytes, how: str) -> Callable[[bytes], bool]:
    """Damage a pack; return which blobs are lost."""
    repo = b.open()
    key = pack_key(pack_id)
    data = repo.store.get(key)
    in_pack = {bid for bid, loc in repo.index.items() if loc.pack_id == pack_id}
    if how == "garbage":
        rewrite(repo, key, random.Random(1).randbytes(len(data)))
        return lambda bid: bid in in_pack
    if how == "missing":
        rewrite(repo, key, None)
        return lambda bid: bid in in_pack
    if how == "truncated":
        cut = len(data) // 2
        rewrite(repo, key, data[:cut])
        index = repo.index
        return lambda bid: bid in in_pack and _end(index.get(bid)) > cut
    assert how == "flipped"
    victim = sorted(in_pack, key=lambda bid: _end(repo.index.get(bid)))[len(in_pack) // 2]
    loc = repo.index.get(victim)
    assert loc is not None
    changed = bytearray(data)
    changed[loc.offset + loc.length // 2] ^= 0x10
    rewrite(repo, key, bytes(changed))
    return lambda bid: bid == victim


def _end(loc: BlobLocation | None) -> int:
    assert loc is not None
    return loc.offset + loc.length


# -- what the target holds -------------------------------------------------------------------


def restored(target: Path) -> dict[str, bytes]:
    out = {}
    for p in target.rglob("*"):
        assert not p.name.startswith(TMP_PREFIX), f"temporary file left behind: {p}"
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(target))] = p.read_bytes()
    return out


def assert_everything_but(b: Backup, target: Path, lost: set[str]) -> None:
    """Every file not in ``lost`` is restored exactly; no file in it exists under its name."""
    got = restored(target)
    assert set(got) == set(b.files) - lost
    for rel, data in got.items():
        assert data == b.files[rel], f"{rel} restored with wrong content"


def damaged_paths(result: sv.RestoreResult) -> set[str]:
    return {e.path for e in result.errors if e.kind == "damaged"}


# -- one damaged pack -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["garbage", "missing", "truncated", "flipped"])
def test_a_damaged_pack_costs_only_the_files_that_use_it(backup: Backup, tmp_path: Path, how: str) -> None:
    pack = data_pack_of(backup, next(rel for rel in sorted(backup.blobs) if rel.endswith("d1/f3.bin")))
    lost = backup.files_using(damage_pack(backup, pack, how))
    assert lost
    assert len(lost) < len(backup.files) - 5
    target = tmp_path / "out"
    result = sv.Restorer(backup.open(), workers=2).restore(backup.snapshot, target)
    assert_everything_but(backup, target, lost)
    assert damaged_paths(result) == lost
    assert {e.kind for e in result.errors} == {"damaged"}
    assert not result.ok
    for e in result.errors:
        assert isinstance(e, RestoreFileError)
        assert e.type == "file"
        assert e.pack_id == pack.hex()
        assert e.error
    assert result.files == len(backup.files) - len(lost)
    assert result.bytes_written == sum(len(backup.files[r]) for r in backup.files if r not in lost)


def test_stop_on_error_raises_at_the_first_damage(backup: Backup, tmp_path: Path) -> None:
    pack = data_pack_of(backup, next(rel for rel in sorted(backup.blobs) if rel.endswith("d2/f0.bin")))
    lost = backup.files_using(damage_pack(backup, pack, "garbage"))
    target = tmp_path / "out"
    with pytest.raises(sv.IntegrityError) as info:
        sv.Restorer(backup.open(), workers=2).restore(backup.snapshot, target, stop_on_error=True)
    assert info.value.path in lost
    assert info.value.pack_id == pack.hex()
    got = restored(target)
    assert not set(got) & lost
    assert all(data == backup.files[rel] for rel, data in got.items())


def test_a_blob_missing_from_the_index(backup: Backup, tmp_path: Path) -> None:
    repo = backup.open()
    victim_file = next(rel for rel in sorted(backup.blobs) if rel.endswith("d3/f1.bin"))
    victim = backup.blobs[victim_file][0]
    (key,) = repo.index_files()
    kept = [(pid, [e for e in entries if e.id != victim]) for pid, entries in repo.read_index_file(key)]
    repo.write_index(kept)
    repo.store.delete(key)
    target = tmp_path / "out"
    result = sv.Restorer(backup.open(), workers=2).restore(backup.snapshot, target)
    lost = backup.files_using(lambda bid: bid == victim)
    assert lost == {victim_file}
    assert_everything_but(backup, target, lost)
    (err,) = result.errors
    assert (err.path, err.kind, err.blob_id) == (victim_file, "damaged", victim.hex())
    assert "not in the index" in err.error


def test_an_unreadable_directory_is_listed_and_the_rest_restored(backup: Backup, tmp_path: Path) -> None:
    repo = backup.open()
    d2 = next(rel for rel in backup.dirs if rel.endswith("src/d2"))
    loc = repo.index.get(bytes.fromhex(backup.dirs[d2]))
    assert loc is not None
    assert loc.type == BlobType.TREE
    key = pack_key(loc.pack_id)
    data = bytearray(repo.store.get(key))
    data[loc.offset + loc.length // 2] ^= 0x01
    rewrite(repo, key, bytes(data))
    target = tmp_path / "out"
    result = sv.Restorer(backup.open(), workers=2).restore(backup.snapshot, target)
    lost = {rel for rel in backup.files if rel.startswith(d2 + "/")}
    assert len(lost) == 8
    assert_everything_but(backup, target, lost)
    (err,) = result.errors
    assert (err.path, err.type, err.kind) == (d2, "dir", "damaged")
    assert err.blob_id == backup.dirs[d2]
    assert not (target / d2).exists()
    with pytest.raises(sv.IntegrityError) as info:
        sv.Restorer(backup.open(), workers=2).restore(backup.snapshot, tmp_path / "stop", stop_on_error=True)
    assert info.value.path == d2


def test_an_unreadable_root_tree_raises(backup: Backup, tmp_path: Path) -> None:
    """With the snapshot's root tree gone there is nothing to restore: that is an error."""
    repo = backup.open()
    loc = repo.index.get(bytes.fromhex(backup.root_tree))
    assert loc is not None
    data = bytearray(repo.store.get(pack_key(loc.pack_id)))
    data[loc.offset] ^= 0x01
    rewrite(repo, pack_key(loc.pack_id), bytes(data))
    target = tmp_path / "out"
    with pytest.raises(sv.IntegrityError):
        sv.Restorer(backup.open()).restore(backup.snapshot, target)
    assert not target.exists()


def test_a_hardlink_to_a_damaged_file_is_listed_too(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a", os.urandom(5000))
    os.link(src / "a", src / "b")
    write(src / "c", "intact")
    m = sv.Engine(local_repo).backup([src])
    rel = os.path.relpath(src, "/")
    node = next(n for n in local_repo.read_tree(_tree_of(local_repo, m, rel)) if n.name == "a")
    loc = local_repo.locate(bytes.fromhex(node.content[0]))
    key = pack_key(loc.pack_id)
    data = bytearray(local_repo.store.get(key))
    data[loc.offset + 3] ^= 0x04
    rewrite(local_repo, key, bytes(data))
    target = tmp_path / "out"
    result = sv.Restorer(local_repo).restore(m.id, target)
    assert damaged_paths(result) == {f"{rel}/a", f"{rel}/b"}
    assert f"{rel}/a" in next(e.error for e in result.errors if e.path == f"{rel}/b")
    assert restored(target) == {f"{rel}/c": b"intact"}


def _tree_of(repo: sv.Repository, m: sv.Manifest, rel: str) -> str:
    tree = m.tree
    for part in rel.split("/"):
        node = next(n for n in repo.read_tree(tree) if n.name == part)
        assert node.subtree is not None
        tree = node.subtree
    return tree


def test_a_job_over_damage_completes_with_progress_equal_to_its_totals(backup: Backup, tmp_path: Path) -> None:
    pack = data_pack_of(backup, next(rel for rel in sorted(backup.blobs) if rel.endswith("big.bin")))
    lost = backup.files_using(damage_pack(backup, pack, "truncated"))
    job = sv.Restorer(backup.open(), workers=2).submit(backup.snapshot, tmp_path / "out")
    result = job.result(60)
    assert job.status is sv.JobStatus.COMPLETED
    assert damaged_paths(result) == lost
    p = job.progress
    assert (p.files_done, p.bytes_done) == (p.files_total, p.bytes_total)
    assert p.files_total == len(backup.files)


# -- object stores: a missing pack costs few requests ------------------------------------------


class _CountingStore(ReadOnlyStore):
    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.reads: dict[str, int] = {}
        self._lock = threading.Lock()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        with self._lock:
            self.reads[key] = self.reads.get(key, 0) + 1
        return super().get_range(key, offset, length)


def test_a_missing_pack_is_asked_for_a_few_times_not_once_per_file(
    small_pack_memory_repo: sv.Repository, tmp_path: Path
) -> None:
    repo = small_pack_memory_repo
    src = tmp_path / "src"
    for i in range(60):
        write(src / f"f{i:02d}", os.urandom(30_000))
    m = sv.Engine(repo).backup([src])
    index = repo.index
    packs = sorted({loc.pack_id for _, loc in index.items() if loc.type == BlobType.DATA})
    assert len(packs) >= 2
    gone = packs[0]
    files_in_gone = sum(1 for _, loc in index.items() if loc.pack_id == gone)
    assert files_in_gone > 10
    repo.store.delete(pack_key(gone))
    store = _CountingStore(repo.store)
    result = sv.Restorer(sv.Repository.open(repo.url, PASSWORD, store=store), workers=4).restore(m.id, tmp_path / "out")
    assert len(damaged_paths(result)) == files_in_gone
    assert store.reads[pack_key(gone)] <= 4 + 1


def test_read_ahead_cancels_the_fetches_nobody_will_read() -> None:
    """A file found damaged halfway stops being read: its queued read-ahead must not run."""
    runs = [ReadRun(bytes([i]) * 32, 0, 10, ()) for i in range(5)]
    gate = threading.Event()
    calls: list[int] = []

    def fetch(pack_id: bytes, offset: int, length: int) -> bytes:
        calls.append(pack_id[0])
        if pack_id[0] == 1:
            gate.wait(5)
        return b"x" * length

    with ThreadPoolExecutor(1) as pool:
        gen = read_ahead(iter(runs), fetch, pool, 3)
        first, _ = next(gen)
        assert first is runs[0]
        gen.close()
        gate.set()
    # The run after the first may already be under way; the two queued behind it never start.
    assert calls in ([0], [0, 1])
