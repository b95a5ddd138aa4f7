"""Repair on real local repositories: ``repair_index`` rebuilds the index from the pack headers
(``index/`` deleted, half-written, garbage and unauthentic packs left out and listed, index
files written meanwhile kept, quarantined and marked packs respected), and ``repair_snapshots``
writes snapshots that restore every file not hit by a lost pack bit-exact, truncating or
removing the others and listing each in the manifest."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.errors import AppendOnlyError
from snapvault.maintenance.repair import (
    REPAIRED_TAG,
    RepairIndexRepository,
    RepairSnapshotsRepository,
    repair_index,
    repair_snapshots,
)
from snapvault.pipeline.ids import BlobType, object_hash
from snapvault.pipeline.tree import Node
from snapvault.repository import manifest as manifest_module
from snapvault.repository.lifecycle import DELETION_AD, DELETIONS, encode_mark
from snapvault.storage import Store, open_store
from snapvault.storage.base import Capabilities, StoreEntry
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.narrow import narrow
from tests.treecompare import snapshot_tree

NOW = datetime(2026, 12, 1, tzinfo=UTC)
# Small chunks and the smallest packs, so a few MiB spread over several packs.
SMALL_CHUNKS = sv.ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)


def _init(path: Path) -> sv.Repository:
    return sv.Repository.init(str(path), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20, chunker=SMALL_CHUNKS)


def _open(path: Path, store: Store | None = None) -> sv.Repository:
    return sv.Repository.open(str(path), PASSWORD, store=store)


def _backup(repo: sv.Repository, src: Path, tags: tuple[str, ...] = ("t",)) -> sv.Manifest:
    # One encoder: blobs reach packs in the order the walk meets them, so which files share
    # a pack does not depend on thread timing.
    return sv.Engine(repo, workers=1).backup([str(src)], hostname="host", tags=list(tags))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Files whose data fills three packs: ``a0`` starts in the first and ends in the second,
    ``a1`` and ``a2`` lie in the second, ``a3`` starts in the second, and the rest follow
    in the third."""
    rng = random.Random(7)
    src = tmp_path / "src"
    write(src / "a0.bin", rng.randbytes(1_200_000))
    write(src / "a1.txt", "small file in the middle pack\n")
    write(src / "a2.bin", rng.randbytes(300_000))
    write(src / "a3.bin", rng.randbytes(700_000))
    write(src / "b.txt", "beta\n")
    write(src / "sub" / "c.bin", rng.randbytes(50_000))
    write(src / "sub" / "deeper" / "d.txt", "delta\n", mode=0o600)
    os.symlink("b.txt", src / "link")
    return src


def _restore(repo: sv.Repository, snapshot: str, target: Path, src: Path) -> dict[str, tuple[object, ...]]:
    result = sv.Restorer(repo).restore(snapshot, target=str(target))
    assert result.ok, result.errors
    return snapshot_tree(target / os.path.relpath(src, "/"))


def _tree_files(repo: sv.Repository, tree: str, prefix: str = "") -> Iterator[tuple[str, Node]]:
    for n in repo.read_tree(tree):
        path = f"{prefix}/{n.name}"
        yield path, n
        if n.subtree is not None:
            yield from _tree_files(repo, n.subtree, path)


def _pack_file(repo_path: Path, pack: bytes) -> Path:
    h = pack.hex()
    return repo_path / "data" / h[:2] / h


def _keys(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# -- repair index ------------------------------------------------------------------------------


def test_index_folder_deleted_repair_restores_bit_exact_and_is_idempotent(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    repo = _init(path)
    m = _backup(repo, source)
    before = dict(repo.refresh_index().items())
    packs = {name for name, _ in repo.packs()}
    shutil.rmtree(path / "index")

    fresh = _open(path)
    assert len(fresh.index) == 0
    result = repair_index(narrow(fresh, RepairIndexRepository))
    assert result.unreadable == ()
    assert result.packs_indexed == len(packs)
    assert result.blobs_indexed == len(before)
    assert len(result.index_files_written) == 1
    assert result.index_files_removed == ()
    assert dict(fresh.index.items()) == before  # the handle serves at once

    reopened = _open(path)
    assert dict(reopened.index.items()) == before
    assert reopened.check(read_data=True).ok
    assert _restore(reopened, m.id, tmp_path / "out", source) == snapshot_tree(source)

    # Again on a healthy repository: the same index, in a new file replacing the first.
    again = reopened.repair_index()
    assert again.index_files_removed == result.index_files_written
    assert set(reopened.index_files()) == set(again.index_files_written)
    assert dict(_open(path).index.items()) == before


def test_half_written_garbage_and_unauthentic_packs_are_listed_and_left_out(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    repo = _init(path)
    m = _backup(repo, source)
    real = sorted(name for name, _ in repo.packs())
    data = _pack_file(path, bytes.fromhex(real[0])).read_bytes()

    def plant(content: bytes) -> str:
        name = object_hash(content).hex()  # a name a writer could have given it
        write(path / "data" / name[:2] / name, content)
        return name

    half = plant(data[: len(data) // 2])  # a pack whose upload stopped halfway
    garbage = plant(os.urandom(5000))
    flipped = bytearray(data)
    flipped[-20] ^= 0x01  # inside the sealed header
    unauthentic = plant(bytes(flipped))
    write(path / "data" / "zz" / "stray", b"not a pack")

    result = repo.repair_index()
    reasons = dict(result.unreadable)
    assert set(reasons) == {half, garbage, unauthentic, "stray"}
    assert "header" in reasons[half]
    assert "header" in reasons[unauthentic]
    assert "not a pack" in reasons["stray"]
    assert result.packs_indexed == len(real)

    listed = {pid.hex() for key in repo.index_files() for pid, _ in repo.read_index_file(key)}
    assert listed == set(real)
    # check raises on an object under data/ whose name is not hex (see the xfail below).
    (path / "data" / "zz" / "stray").unlink()
    report = _open(path).check()
    assert report.ok, report.problems
    assert any(half in w for w in report.warnings)  # stored, in no index: a prune's to remove
    assert _restore(_open(path), m.id, tmp_path / "out", source) == snapshot_tree(source)


def test_check_names_a_stray_object_under_data_instead_of_raising(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    _backup(_init(path), source)
    write(path / "data" / "zz" / "stray", b"not a pack")
    report = _open(path).check()
    assert any("stray" in w for w in report.warnings) or any("stray" in str(p) for p in report.problems)


def test_quarantined_packs_stay_out_and_marked_packs_stay_listed_until_pruned(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    repo = _init(path)
    m = _backup(repo, source)
    (index_file,) = repo.index_files()
    packs = sorted(bytes.fromhex(name) for name, _ in repo.packs())
    # A spare copy of a real pack, quarantined: a damaged pack a read-back caught.
    spare = _pack_file(path, packs[0]).read_bytes() + b"!"
    bad = object_hash(spare)
    write(_pack_file(path, bad), spare)
    repo.quarantine_packs([bad], "failed a read-back")
    # A prune's pending mark: its pack stays readable (and listed) until the prune deletes it
    # and replaces every index file that lists it.
    mark = encode_mark(NOW, [packs[1]], [index_file], {"repack": 1})
    repo.write_sealed(DELETIONS, mark, DELETION_AD)

    result = repo.repair_index()
    assert result.packs_quarantined == 1
    assert result.unreadable == ()
    assert result.packs_indexed == len(packs)
    assert result.index_files_removed == (index_file,)
    (new,) = result.index_files_written
    assert {pid for pid, _ in repo.read_index_file(new)} == set(packs)
    reopened = _open(path)
    assert reopened.index.avoid == {packs[1]}  # writers still stay off the marked pack
    assert _restore(reopened, m.id, tmp_path / "out", source) == snapshot_tree(source)


class _BackupWhileListing:
    """A store through which the first listing of ``data/`` first lets another machine back up."""

    def __init__(self, inner: Store, during: Callable[[], None]) -> None:
        self.inner = inner
        self.during: Callable[[], None] | None = during

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        return self.inner.put_if_absent(key, data)

    def put_file_if_absent(self, key: str, path: str) -> bool:
        return self.inner.put_file_if_absent(key, path)

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        if prefix.strip("/") == "data" and self.during is not None:
            during, self.during = self.during, None
            during()
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_index_files_written_while_repairing_are_kept(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    first = _backup(_init(path), source)
    initial = set(_open(path).index_files())
    other_src = write(tmp_path / "other" / "e.txt", "epsilon\n").parent
    concurrent: list[sv.Manifest] = []

    def other_machine_backs_up() -> None:
        concurrent.append(_backup(_open(path), other_src))

    repairing = _open(path, store=_BackupWhileListing(open_store(str(path)), other_machine_backs_up))
    result = repairing.repair_index()
    assert concurrent, "the backup ran between the two listings"
    assert set(result.index_files_removed) == initial
    theirs = set(_open(path).index_files()) - set(result.index_files_written)
    assert len(theirs) == 1
    assert not theirs & initial
    reopened = _open(path)
    assert reopened.check().ok
    assert _restore(reopened, first.id, tmp_path / "out1", source) == snapshot_tree(source)
    assert _restore(reopened, concurrent[0].id, tmp_path / "out2", other_src) == snapshot_tree(other_src)


def test_an_append_only_handle_deletes_nothing(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    m = _backup(_init(path), source)
    _pack_file(path, _middle_pack(_open(path), m)).unlink()
    before = _keys(path)
    handle = sv.Repository.open(str(path), PASSWORD, append_only=True)
    with pytest.raises(AppendOnlyError):
        handle.repair_index()
    with pytest.raises(AppendOnlyError):
        handle.repair_snapshots(forget_broken=True, now=NOW)
    assert _keys(path) == before
    # Repairing without forgetting only adds objects: allowed.
    (repair,) = handle.repair_snapshots(now=NOW).snapshots
    assert set(_open(path).snapshot_ids()) == {m.id, repair.new_id}


# -- repair snapshots --------------------------------------------------------------------------


def _middle_pack(repo: sv.Repository, m: sv.Manifest) -> bytes:
    """The data pack holding ``a1.txt``: ``a0`` starts before it, ``a3`` ends after it."""
    nodes = {p.rsplit("/", 1)[1]: n for p, n in _tree_files(repo, m.tree)}
    loc = repo.index.get(bytes.fromhex(nodes["a1.txt"].content[0]))
    assert loc is not None
    return loc.pack_id


def _expected_damage(repo: sv.Repository, m: sv.Manifest, lost: bytes) -> dict[str, tuple[str, int]]:
    """Path -> (action, bytes kept) for every file with a chunk in pack ``lost``."""
    out = {}
    for path, n in _tree_files(repo, m.tree):
        locs = [repo.index.get(bytes.fromhex(c)) for c in n.content]
        hit = [i for i, loc in enumerate(locs) if loc is not None and loc.pack_id == lost]
        if hit:
            kept = sum(loc.raw_length for loc in locs[: hit[0]] if loc is not None)
            out[path] = ("truncated", kept) if hit[0] else ("removed", 0)
    return out


@pytest.fixture
def one_pack_lost(tmp_path: Path, source: Path) -> tuple[Path, sv.Manifest, dict[str, tuple[str, int]]]:
    path = tmp_path / "repo"
    repo = _init(path)
    m = _backup(repo, source)
    lost = _middle_pack(repo, m)
    expected = _expected_damage(repo, m, lost)
    _pack_file(path, lost).unlink()
    return path, m, expected


def test_one_pack_deleted_repaired_snapshot_restores_every_other_file(
    one_pack_lost: tuple[Path, sv.Manifest, dict[str, tuple[str, int]]], source: Path, tmp_path: Path
) -> None:
    path, original, expected = one_pack_lost
    names = {p.rsplit("/", 1)[1]: v for p, v in expected.items()}
    assert names["a0.bin"][0] == "truncated"
    assert 0 < names["a0.bin"][1] < 1_200_000
    assert names["a1.txt"] == ("removed", 0)
    assert "b.txt" not in names  # the walk met it after the lost pack was full

    repo = _open(path)
    result = repair_snapshots(narrow(repo, RepairSnapshotsRepository), now=NOW)
    (repair,) = result.snapshots
    assert repair.original_id == original.id
    assert repair.new_id is not None
    assert {p.path: (p.action, p.size) for p in repair.paths} == expected
    assert result.trees_written >= 1
    assert result.packs_written == 1
    assert result.unreadable == ()
    assert result.snapshots_checked == 1

    new = repo.load_manifest(repair.new_id)
    changed = {"tree", "tags", "parent", "errors"}
    assert new.model_dump(exclude=changed) == original.model_dump(exclude=changed)  # time, host, paths, stats...
    assert new.tags == sorted(["t", REPAIRED_TAG])
    assert new.parent == original.id
    errors = {e.path: e.error for e in new.errors}
    assert set(errors) == set(expected)
    a0 = next(p for p in expected if p.endswith("/a0.bin"))
    assert errors[a0].startswith(f"repaired: truncated at byte {expected[a0][1]}, chunk ")
    assert all(e.startswith("repaired: removed, chunk ") for p, e in errors.items() if expected[p][0] == "removed")
    assert original.id in repo.snapshot_ids()  # kept unless asked

    restored = _restore(_open(path), repair.new_id, tmp_path / "out", source)
    want = snapshot_tree(source)
    for rel, entry in want.items():
        action, size = expected.get(f"{source}/{rel}", ("", 0))
        if action == "removed":
            assert rel not in restored
        elif action == "truncated":
            assert restored[rel] == (*entry[:3], entry[3][:size], *entry[4:])
        else:
            assert restored[rel] == entry, rel  # bit-exact, with its mode and times
    assert set(restored) <= set(want)

    # The kept original still names the lost data: once the index no longer lists the gone
    # pack, check reports exactly the original's missing blobs, and nothing of the repair.
    repo.repair_index()
    report = _open(path).check()
    assert report.problems
    assert {p.snapshot for p in report.problems} == {original.id}


def test_forget_broken_removes_the_original_and_check_passes(
    one_pack_lost: tuple[Path, sv.Manifest, dict[str, tuple[str, int]]],
) -> None:
    path, _, _ = one_pack_lost
    repo = _open(path)
    result = repo.repair_snapshots(forget_broken=True, now=NOW)
    (repair,) = result.snapshots
    assert repair.forgotten
    assert repo.snapshot_ids() == [repair.new_id]
    repo.repair_index()
    report = _open(path).check(read_data=True)
    assert report.ok, report.problems


def test_dry_run_reports_the_same_and_writes_nothing(
    one_pack_lost: tuple[Path, sv.Manifest, dict[str, tuple[str, int]]],
) -> None:
    path, _, _ = one_pack_lost
    before = _keys(path)
    dry = _open(path).repair_snapshots(dry_run=True, forget_broken=True, now=NOW)
    assert _keys(path) == before
    (plan,) = dry.snapshots
    assert plan.new_id is None
    assert not plan.forgotten
    assert dry.dry_run
    assert (dry.trees_written, dry.packs_written) == (0, 0)
    real = _open(path).repair_snapshots(now=NOW)
    assert [p for s in real.snapshots for p in s.paths] == list(plan.paths)


def test_a_second_run_writes_no_second_copy_and_intact_snapshots_are_left_alone(
    one_pack_lost: tuple[Path, sv.Manifest, dict[str, tuple[str, int]]],
) -> None:
    path, original, _ = one_pack_lost
    first = _open(path).repair_snapshots(now=NOW)
    keys = _keys(path)
    second = _open(path).repair_snapshots(now=NOW)
    (again,) = second.snapshots
    assert again.original_id == original.id
    assert again.already_repaired
    assert again.new_id == first.snapshots[0].new_id
    assert again.paths == first.snapshots[0].paths
    assert second.snapshots_checked == 2  # the repaired copy is walked too, and is intact
    assert _keys(path) == keys
    # With --forget-broken on that second run, the original goes; the copy stays.
    third = _open(path).repair_snapshots(forget_broken=True, now=NOW)
    assert third.snapshots[0].forgotten
    assert _open(path).snapshot_ids() == [first.snapshots[0].new_id]


def test_a_backup_tagged_repaired_is_not_taken_for_a_repaired_copy(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    repo = _init(path)
    first = _backup(repo, source)
    second = _backup(repo, source, tags=(REPAIRED_TAG,))  # a user's tag; its parent is the first
    assert second.parent == first.id
    _pack_file(path, _middle_pack(repo, first)).unlink()
    result = _open(path).repair_snapshots(now=NOW)
    assert [(s.original_id, s.already_repaired) for s in result.snapshots] == [(first.id, False), (second.id, False)]
    assert all(s.new_id is not None for s in result.snapshots)


def test_healthy_repository_is_untouched(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    _backup(_init(path), source)
    keys = _keys(path)
    result = _open(path).repair_snapshots(forget_broken=True, now=NOW)
    assert result.snapshots == ()
    assert result.snapshots_checked == 1
    assert _keys(path) == keys


def test_a_lost_directory_tree_is_removed_and_a_lost_root_tree_leaves_nothing(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "repo"
    repo = _init(path)
    first = _backup(repo, source)
    trees_of_first = {loc.pack_id for _, loc in repo.refresh_index().items() if loc.type is BlobType.TREE}
    write(source / "new.txt", "added later\n")
    second = _backup(repo, source)  # "sub" is unchanged: its trees are the first backup's
    (tree_pack,) = trees_of_first
    _pack_file(path, tree_pack).unlink()

    result = _open(path).repair_snapshots(forget_broken=True, now=NOW)
    by_id = {r.original_id: r for r in result.snapshots}
    lost_root = by_id[first.id]
    assert lost_root.root_lost
    assert lost_root.new_id is None
    assert lost_root.forgotten
    assert [p.path for p in lost_root.paths] == ["/"]
    repaired = by_id[second.id]
    assert [(p.path, p.action) for p in repaired.paths] == [(f"{source}/sub", "removed")]
    assert "tree" in repaired.paths[0].error
    assert "missing" in repaired.paths[0].error
    assert _open(path).snapshot_ids() == [repaired.new_id]

    restored = _restore(_open(path), str(repaired.new_id), tmp_path / "out", source)
    want = {rel: v for rel, v in snapshot_tree(source).items() if rel != "sub" and not rel.startswith("sub/")}
    # The root directory's own listing changed (sub is gone), its recorded mtime did not.
    assert restored == want


@pytest.mark.parametrize("cap", [3])
def test_repaired_paths_respect_the_manifest_errors_cap(
    one_pack_lost: tuple[Path, sv.Manifest, dict[str, tuple[str, int]]], monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    path, _, expected = one_pack_lost
    assert len(expected) > cap
    monkeypatch.setattr(manifest_module, "MAX_LISTED", cap)
    result = _open(path).repair_snapshots(now=NOW)
    (repair,) = result.snapshots
    assert len(repair.paths) == len(expected)  # the result lists every one
    assert repair.new_id is not None
    errors = _open(path).load_manifest(repair.new_id).errors
    assert len(errors) == cap
    assert errors[-1].path == ""
    assert f"{len(expected) - cap + 1} more errors" in errors[-1].error
