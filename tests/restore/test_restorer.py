"""End-to-end: backup then restore reproduces a tree exactly, on local and memory storage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.repository.layout import pack_key
from snapvault.storage import ReadOnlyStore, Store, open_store
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.treecompare import assert_same_tree, snapshot_tree


def make_tricky_tree(root: Path) -> Path:
    """The acceptance tree: every kind of entry a restore must reproduce."""
    src = root / "src"
    write(src / "empty", b"")
    write(src / "one", b"x")
    write(src / "big.bin", os.urandom(3 * 1024 * 1024 + 17))
    write(src / "text.txt", "line of text\n" * 50_000)
    write(src / "ünïcødé ✓ 名前.txt", "unicode name")
    write(src / "secret", b"private", mode=0o600)
    write(src / "script.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
    deep = src.joinpath(*[f"d{i:02d}" for i in range(30)])
    write(deep / "leaf.txt", "thirty deep")
    (src / "empty_dir").mkdir()
    (src / "nested_empty" / "inner").mkdir(parents=True)
    os.symlink("text.txt", src / "rel_link")
    os.symlink(str(src / "one"), src / "abs_link")
    os.symlink("does/not/exist", src / "dangling")
    os.link(src / "one", src / "hard_one")
    write(src / "sub" / "hard_target", b"shared inode")
    os.link(src / "sub" / "hard_target", src / "hard_elsewhere")
    os.mkfifo(src / "fifo")
    # Distinct, non-round mtimes with microseconds, set last (children first).
    for i, p in enumerate(sorted(src.rglob("*"), key=lambda p: -len(p.parts))):
        t = 1_700_000_000_000_000_000 + i * 1_234_567_891
        os.utime(p, ns=(t, t), follow_symlinks=False)
    return src


def test_backup_restore_reproduces_tree_exactly(any_repo: sv.Repository, tmp_path: Path) -> None:
    src = make_tricky_tree(tmp_path)
    before = snapshot_tree(src)
    m = sv.Engine(any_repo).backup([src])
    assert m.errors == []
    target = tmp_path / "out"
    result = sv.Restorer(any_repo).restore(m.id, target)
    assert result.errors == []
    restored = target / os.path.relpath(src, "/")
    assert_same_tree(src, restored)
    assert snapshot_tree(src) == before  # the backup did not touch the source
    assert (restored / "fifo").is_fifo()
    assert os.stat(restored / "hard_one").st_ino == os.stat(restored / "one").st_ino
    assert os.readlink(restored / "abs_link") == str(src / "one")


def test_restore_by_prefix_and_latest(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.txt", "first")
    sv.Engine(local_repo).backup([src])
    write(src / "a.txt", "second version")
    m2 = sv.Engine(local_repo).backup([src])
    rel = os.path.relpath(src, "/")
    sv.Restorer(local_repo).restore("latest", tmp_path / "latest")
    assert (tmp_path / "latest" / rel / "a.txt").read_text() == "second version"
    sv.Restorer(local_repo).restore(m2.id[:6], tmp_path / "prefix")
    assert (tmp_path / "prefix" / rel / "a.txt").read_text() == "second version"


def test_selective_restore_include_exclude(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.md", "a")
    write(src / "docs" / "b.md", "b")
    write(src / "docs" / "c.txt", "c")
    write(src / "skip" / "d.md", "d")
    m = sv.Engine(local_repo).backup([src])
    rel = Path(os.path.relpath(src, "/"))
    sv.Restorer(local_repo).restore(m.id, tmp_path / "out", include=["*.md"], exclude=["skip/"])
    out = tmp_path / "out" / rel
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["a.md", "docs/b.md"]


def test_restore_overwrites_existing_files_atomically(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "f", "snapshot content")
    m = sv.Engine(local_repo).backup([src])
    target = tmp_path / "out"
    existing = write(target / os.path.relpath(src, "/") / "f", "old local content that is longer")
    sv.Restorer(local_repo).restore(m.id, target)
    assert existing.read_text() == "snapshot content"
    leftovers = [p for p in target.rglob("*") if p.name.startswith(".sv-restore-")]
    assert leftovers == []


def test_restore_unknown_snapshot_raises(local_repo: sv.Repository, tmp_path: Path) -> None:
    with pytest.raises(sv.SnapshotNotFound):
        sv.Restorer(local_repo).restore("deadbeef", tmp_path / "out")


def test_a_large_file_spread_over_many_packs_restores_exactly_from_an_object_store(
    small_pack_memory_repo: sv.Repository, tmp_path: Path
) -> None:
    # Many read runs, fetched several at a time: they must still be written in order.
    repo = small_pack_memory_repo
    big = write(tmp_path / "src" / "big.bin", os.urandom(24 << 20))
    write(tmp_path / "src" / "small.txt", "small\n")
    m = sv.Engine(repo).backup([big.parent])
    assert m.stats.packs_written > 10
    sv.Restorer(repo).restore(m.id, tmp_path / "out")
    assert_same_tree(big.parent, tmp_path / "out" / os.path.relpath(big.parent, "/"))


def test_a_missing_pack_in_the_middle_of_a_prefetched_file_names_the_file(
    small_pack_memory_repo: sv.Repository, tmp_path: Path
) -> None:
    repo = small_pack_memory_repo
    big = write(tmp_path / "src" / "big.bin", os.urandom(24 << 20))
    m = sv.Engine(repo).backup([big.parent])
    middle = repo.index.get(bytes.fromhex(_content(repo, m, big)[len(_content(repo, m, big)) // 2]))
    assert middle is not None
    repo.store.delete(pack_key(middle.pack_id))
    out = tmp_path / "out"
    result = sv.Restorer(repo).restore(m.id, out)
    (err,) = result.errors
    assert err.path == os.path.relpath(big, "/")
    assert (err.kind, err.pack_id) == ("damaged", middle.pack_id.hex())
    assert "is missing" in err.error
    with pytest.raises(sv.IntegrityError, match="is missing") as info:
        sv.Restorer(repo).restore(m.id, tmp_path / "stop", stop_on_error=True)
    assert info.value.path == err.path
    # Nothing half-written under the final name, nor under a temporary one.
    for root in (out, tmp_path / "stop"):
        assert [p.name for p in root.rglob("*") if p.is_file()] == []


def _content(repo: sv.Repository, m: sv.Manifest, path: Path) -> tuple[str, ...]:
    tree = m.tree
    for part in Path(os.path.relpath(path, "/")).parts:
        node = next(n for n in repo.read_tree(tree) if n.name == part)
        if node.subtree is not None:
            tree = node.subtree
    return node.content


class _CountingStore(ReadOnlyStore):
    """Counts the pack bytes a restore asks for (a wrapper: restores see an object store)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.lengths: list[int] = []
        self.bytes = 0

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        data = super().get_range(key, offset, length)
        if key.startswith("data/"):
            self.lengths.append(length)
            self.bytes += len(data)
        return data


def _spread_tree(root: Path) -> Path:
    src = root / "src"
    for d in range(30):
        for i in range(10):
            write(src / f"d{d:02d}" / f"f{i}", os.urandom(40_000))
    write(src / "needle", "hello\n")
    return src


def test_an_object_store_restore_reads_each_stretch_of_a_pack_once(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    src = _spread_tree(tmp_path)
    # One worker each way: this counts reads, and both which blobs share a pack (backup
    # threads pack in the order they finish) and which window a restore thread evicts depend
    # on how the machine schedules threads; the windows' sharing between threads is pinned by
    # the PackWindows tests.
    m = sv.Engine(sv.Repository.open(url, PASSWORD), workers=1).backup([src])
    store = _CountingStore(open_store(url))
    restorer = sv.Restorer(sv.Repository.open(url, PASSWORD, store=store), workers=1)
    restorer.restore(m.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out" / os.path.relpath(src, "/"))
    # 30 directories of ten 40 kB files in 12 data packs: a window per pack, plus a direct read
    # for a directory's files that straddle a window's end; not one read per directory and
    # pack (65 here without windows). Tree blobs, under 1 KiB each, are read one by one.
    data_packs = sum(1 for e in store.inner.list("data") if e.size > 256 << 10)
    large_reads = [n for n in store.lengths if n >= 64 << 10]
    # At most a window per pack and, per window end, one direct read of the directory whose
    # files straddle it; the last pack's tail adds one (23 reads for 11 packs here).
    assert len(large_reads) <= 2 * data_packs + 2, (len(large_reads), data_packs)


def test_restoring_one_small_file_from_an_object_store_reads_little(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    src = _spread_tree(tmp_path)
    m = sv.Engine(sv.Repository.open(url, PASSWORD)).backup([src])
    store = _CountingStore(open_store(url))
    needle = os.path.relpath(src / "needle", "/")
    sv.Restorer(sv.Repository.open(url, PASSWORD, store=store)).restore(m.id, tmp_path / "out", include=[needle])
    assert (tmp_path / "out" / needle).read_text() == "hello\n"
    # The snapshot's trees (31 of them, under 1 KiB each) and the file's own blob, not a 16 MiB
    # window of the pack.
    assert store.bytes < 64 << 10, store.bytes


# -- targets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["file://otherhost/x", "FILE://otherhost/x"])
def test_a_file_url_of_another_host_is_refused_and_nothing_is_written(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    src = write(tmp_path / "src" / "a.txt", "a").parent
    m = sv.Engine(local_repo).backup([src])
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(sv.ConfigError, match="URL") as info:
        sv.Restorer(local_repo).restore(m.id, target)
    assert isinstance(info.value, ValueError)
    job = sv.Restorer(local_repo).submit(m.id, target)
    assert job.wait(30) is sv.JobStatus.FAILED
    assert isinstance(job.error, sv.ConfigError)
    assert list(work.iterdir()) == []


def test_a_file_url_or_a_path_object_is_a_local_directory(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write(tmp_path / "src" / "a.txt", "a").parent
    m = sv.Engine(local_repo).backup([src])
    monkeypatch.chdir(tmp_path)  # a URL misread as a relative path lands here, not in the checkout
    rel = os.path.relpath(src / "a.txt", "/")
    sv.Restorer(local_repo).restore(m.id, f"file://{tmp_path}/out")
    assert (tmp_path / "out" / rel).read_text() == "a"
    sv.Restorer(local_repo).restore(m.id, f"file://localhost{tmp_path}/out2")
    assert (tmp_path / "out2" / rel).read_text() == "a"
    # A path object is never a URL: ``Path("x://y")`` is the folder ``x:/y``.
    sv.Restorer(local_repo).restore(m.id, tmp_path / "odd://name")
    assert (tmp_path / "odd:" / "name" / rel).read_text() == "a"
