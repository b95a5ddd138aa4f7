"""``Repository.diff`` on real backups: every kind of change (added, removed, modified,
metadata, type) down nested directories, in path order, with totals that add up; a subtree
whose tree ID did not change is never read; references resolve as elsewhere and bad ones
raise typed errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.maintenance.browse import walk_snapshot
from snapvault.maintenance.diff import DiffStats, SnapshotDiff, diff_snapshots
from snapvault.pipeline.tree import Node
from tests.conftest import tree_at, write

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
# Fixed mtimes, so a change never hides in one tick of the file system's clock.
OLD_MTIME = 1_700_000_000
NEW_MTIME = 1_700_100_000


class CountingReader:
    """The repository's trees, recording the ID of each tree read."""

    def __init__(self, repo: sv.Repository) -> None:
        self.repo = repo
        self.read: list[str] = []

    def iter_tree(self, tree_id: str) -> Iterator[Node]:
        self.read.append(tree_id)
        return self.repo.iter_tree(tree_id)


def _set_times(root: Path, seconds: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (seconds, seconds), follow_symlinks=False)
    os.utime(root, (seconds, seconds))


@pytest.fixture
def two(local_repo: sv.Repository, tmp_path: Path) -> tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]:
    """A source backed up, changed in every way a diff tells apart, and backed up again."""
    src = tmp_path / "src"
    write(src / "keep" / "deep" / "a" / "b" / "c.txt", "unchanged")
    write(src / "keep" / "deep" / "x.bin", b"\0" * 64)
    write(src / "work" / "mod.txt", "one")
    write(src / "work" / "meta.txt", "same bytes", mode=0o600)
    write(src / "work" / "touched.txt", "same bytes too")
    write(src / "work" / "gone.txt", "g" * 100)
    write(src / "work" / "gone_dir" / "g1.txt", "g" * 200)
    write(src / "work" / "gone_dir" / "inner" / "g2.txt", "g" * 300)
    write(src / "work" / "swap", "s" * 500)
    write(src / "work" / "swap2" / "was.txt", "w" * 400)
    os.symlink("target-one", src / "link")
    _set_times(src, OLD_MTIME)
    engine = sv.Engine(local_repo)
    first = engine.backup([str(src)], hostname="h", now=T0)

    work = src / "work"
    write(work / "mod.txt", "one" + "m" * 50)
    os.chmod(work / "meta.txt", 0o640)
    os.utime(work / "touched.txt", (NEW_MTIME, NEW_MTIME))
    (work / "gone.txt").unlink()
    for p in (work / "gone_dir" / "inner" / "g2.txt", work / "gone_dir" / "g1.txt"):
        p.unlink()
    (work / "gone_dir" / "inner").rmdir()
    (work / "gone_dir").rmdir()
    write(work / "new.txt", "n" * 10)
    write(work / "new_dir" / "sub" / "n.txt", "n" * 20)
    (work / "swap").unlink()
    write(work / "swap" / "inside.txt", "i" * 30)
    (work / "swap2" / "was.txt").unlink()
    (work / "swap2").rmdir()
    write(work / "swap2", "f" * 40)
    os.unlink(src / "link")
    os.symlink("target-two", src / "link")
    for p in (work / "mod.txt", work / "new.txt", work / "swap2", work / "swap", work / "new_dir"):
        os.utime(p, (NEW_MTIME, NEW_MTIME))
    os.utime(work, (NEW_MTIME, NEW_MTIME))
    # Read every file again: a change whose ctime fell in the first backup's clock tick must
    # not be taken for an unchanged file (that shortcut is the archiver's, not the diff's).
    second = engine.backup([str(src)], hostname="h", now=T0 + timedelta(hours=1), full=True)
    return local_repo, src, first, second


def _below(d: SnapshotDiff, src: Path) -> list[tuple[str, str, str]]:
    """The changes below ``src`` (its parents' times move as other tests use the folder)."""
    top = f"{src}/"
    return [(c.path[len(top) :], c.kind, c.type) for c in d.changes if c.path.startswith(top)]


def test_every_kind_of_change_in_path_order(two: tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    repo, src, first, second = two
    d = repo.diff(first, second)
    assert (d.before, d.after) == (first.id, second.id)
    assert _below(d, src) == [
        ("link", "modified", "symlink"),
        ("work", "metadata", "dir"),
        ("work/gone.txt", "removed", "file"),
        ("work/gone_dir", "removed", "dir"),
        ("work/gone_dir/g1.txt", "removed", "file"),
        ("work/gone_dir/inner", "removed", "dir"),
        ("work/gone_dir/inner/g2.txt", "removed", "file"),
        ("work/meta.txt", "metadata", "file"),
        ("work/mod.txt", "modified", "file"),
        ("work/new.txt", "added", "file"),
        ("work/new_dir", "added", "dir"),
        ("work/new_dir/sub", "added", "dir"),
        ("work/new_dir/sub/n.txt", "added", "file"),
        ("work/swap", "type", "dir"),
        ("work/swap/inside.txt", "added", "file"),
        ("work/swap2", "type", "file"),
        ("work/swap2/was.txt", "removed", "file"),
        ("work/touched.txt", "metadata", "file"),
    ]
    # Sorted component by component (a directory right before what lies below it).
    assert [c.path for c in d.changes] == sorted((c.path for c in d.changes), key=lambda p: p.split("/"))
    # Outside the source only its parents' own times can differ.
    assert {c.kind for c in d.changes if not c.path.startswith(f"{src}/")} <= {"metadata"}


def test_totals_add_up(two: tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    repo, _, first, second = two
    s = repo.diff(first, second).stats
    assert s == DiffStats(
        files_added=4,  # new.txt, n.txt, swap/inside.txt, swap2 (now a file)
        files_removed=5,  # gone.txt, g1.txt, g2.txt, swap2/was.txt, swap (was a file)
        dirs_added=3,  # new_dir, new_dir/sub, swap
        dirs_removed=3,  # gone_dir, gone_dir/inner, swap2
        others_added=0,
        others_removed=0,
        modified=2,  # mod.txt, link
        metadata_changed=s.metadata_changed,  # below: the source's parents may add theirs
        type_changed=2,
        bytes_added=10 + 20 + 30 + 40 + 50,  # the added files and mod.txt's growth
        bytes_removed=100 + 200 + 300 + 400 + 500,
    )
    assert s.metadata_changed == sum(c.kind == "metadata" for c in repo.diff(first, second).changes)

    def totals(m: sv.Manifest) -> tuple[int, int, int]:
        nodes = [n for _, n in walk_snapshot(repo, m)]
        files = [n for n in nodes if n.type == "file"]
        return len(files), sum(n.type == "dir" for n in nodes), sum(n.size for n in files)

    (f1, d1, b1), (f2, d2, b2) = totals(first), totals(second)
    assert s.files_added - s.files_removed == f2 - f1
    assert s.dirs_added - s.dirs_removed == d2 - d1
    assert s.bytes_added - s.bytes_removed == b2 - b1


def test_the_reverse_diff_mirrors_it(two: tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    repo, src, first, second = two
    forward, backward = repo.diff(first, second), repo.diff(second, first)
    swap = {"added": "removed", "removed": "added"}
    assert {(p, swap.get(k, k)) for p, k, _ in _below(forward, src)} == {(p, k) for p, k, _ in _below(backward, src)}
    assert (backward.stats.bytes_added, backward.stats.bytes_removed) == (
        forward.stats.bytes_removed,
        forward.stats.bytes_added,
    )


def test_an_unchanged_subtree_is_not_read(two: tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    repo, src, first, second = two
    keep = tree_at(repo, first, src / "keep")
    assert tree_at(repo, second, src / "keep") == keep
    below_keep = {keep} | {n.subtree for _, n in walk_snapshot(repo, first, str(src / "keep")) if n.subtree is not None}
    assert len(below_keep) == 4  # keep, deep, a, b
    reader = CountingReader(repo)
    d = diff_snapshots(reader, first, second)
    assert _below(d, src) == _below(repo.diff(first, second), src)
    assert not below_keep & set(reader.read)
    # The changed directory was read, once on each side.
    assert reader.read.count(tree_at(repo, first, src / "work")) == 1
    assert reader.read.count(tree_at(repo, second, src / "work")) == 1
    # Nothing is read twice.
    assert len(reader.read) == len(set(reader.read))


def test_a_snapshot_against_itself_reads_nothing(two: tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    repo, _, first, _ = two
    reader = CountingReader(repo)
    d = diff_snapshots(reader, first, first)
    assert (d.changes, d.stats, reader.read) == ((), DiffStats(), [])


def test_references_resolve_like_elsewhere(two: tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    repo, src, first, second = two
    by_manifest = _below(repo.diff(first, second), src)
    assert _below(repo.diff(first.id[:6], "latest"), src) == by_manifest
    assert _below(repo.diff(first.id, second.id.upper()), src) == by_manifest
    with pytest.raises(sv.SnapshotNotFound, match="no snapshot matches"):
        repo.diff("ffff" if not first.id.startswith("ffff") else "eeee", second)
    with pytest.raises(sv.SnapshotNotFound, match="not a snapshot ID"):
        repo.diff(first, "yesterday")
    with pytest.raises(sv.ConfigError, match="not 42"):
        repo.diff(first, 42)  # type: ignore[arg-type]


def test_json_form(two: tuple[sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    repo, src, first, second = two
    doc = repo.diff(first, second).to_json()
    assert set(doc) == {"changes", "summary"}
    assert {"path": f"{src}/work/swap", "kind": "type", "type": "dir"} in doc["changes"]
    assert doc["summary"]["bytes_removed"] == 1500
