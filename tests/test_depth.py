"""Depth is data: backup, restore, ls and check agree on trees of any depth (issue #17, item 5).

Up to ``MAX_DEPTH`` levels every one of them works, without recursion on the depth; a deeper
tree (only a hostile or damaged repository holds one) is reported by ``check`` and refused by
``ls`` and restore with one error that names the directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.archiver import walker
from snapvault.maintenance.browse import walk_snapshot
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.restore_plan import select
from snapvault.pipeline.tree import MAX_DEPTH, depth_error
from tests.conftest import write
from tests.test_hostile import Hostile, dir_node, file_node


def _chain(repo: sv.Repository, levels: int) -> sv.Manifest:
    """A snapshot of ``levels`` nested directories ``d/d/...`` with a file ``f`` at the bottom."""
    h = Hostile(repo)
    tid = h.tree([file_node("f", [h.data()])])
    for _ in range(levels):
        tid = h.tree([dir_node("d", tid)])
    return h.commit(tid)


def _deep_dir(root: Path, levels: int) -> Path:
    deep = root.joinpath(*["d"] * levels)
    deep.mkdir(parents=True)
    write(deep / "f", b"at the bottom")
    return deep


def test_backup_of_a_deep_source_tree(local_repo: sv.Repository, tmp_path: Path) -> None:
    # 700 levels crashed the walk's recursion with a traceback (450 worked, 500 did not).
    src = tmp_path / "src"
    _deep_dir(src, 700)
    m = sv.Engine(local_repo).backup([str(src)])
    assert not m.errors
    assert m.stats.dirs == 701
    listed = [rel for rel, _ in walk_snapshot(local_repo, m, str(src))]
    assert listed[-1] == str(src).strip("/") + "/d" * 700 + "/f"
    assert local_repo.check().ok
    # A second backup reads the first as its parent, and finds everything unchanged.
    again = sv.Engine(local_repo).backup([str(src)])
    assert (again.stats.files_unchanged, again.stats.files_new, again.stats.dirs) == (1, 0, 701)


def test_a_deep_source_path(local_repo: sv.Repository, tmp_path: Path) -> None:
    # The directories above a source are built from its path: deep, too.
    deep = _deep_dir(tmp_path / "src", 600)
    m = sv.Engine(local_repo).backup([str(deep)])
    listed = [rel for rel, _ in walk_snapshot(local_repo, m)]
    assert listed[-1] == str(deep / "f").strip("/")


@pytest.mark.commits_damage
def test_a_tree_deeper_than_the_limit_is_refused_by_all_alike(local_repo: sv.Repository, tmp_path: Path) -> None:
    # 5,000 levels: restore and ls failed with "tree blob is malformed: RecursionError" while
    # check passed it. Now all three name the first directory past the limit.
    m = _chain(local_repo, 5000)
    too_deep = "/".join(["d"] * MAX_DEPTH)
    expected = str(depth_error(too_deep))

    report = local_repo.check()
    assert [(p.kind, p.path, p.message) for p in report.problems] == [("tree", too_deep, expected)]

    with pytest.raises(sv.IntegrityError) as ls_error:
        for _ in walk_snapshot(local_repo, m):
            pass
    assert str(ls_error.value) == expected
    assert ls_error.value.path == too_deep

    with pytest.raises(sv.IntegrityError) as planned:
        select(local_repo.read_tree(m.tree), local_repo.read_tree, PathFilter())
    assert str(planned.value) == expected

    # Refused while planning, before anything is written.
    with pytest.raises(sv.IntegrityError) as restored:
        sv.Restorer(local_repo, workers=1).restore(m.id, tmp_path / "target", stop_on_error=True)
    assert expected in str(restored.value)
    assert restored.value.path == too_deep
    assert not (tmp_path / "target").exists()


@pytest.mark.commits_damage
def test_a_tree_at_the_limit_reads_everywhere(local_repo: sv.Repository) -> None:
    # MAX_DEPTH - 1 directories: the file at the bottom has MAX_DEPTH components.
    m = _chain(local_repo, MAX_DEPTH - 1)
    assert local_repo.check().ok
    *_, (rel, node) = walk_snapshot(local_repo, m)
    assert rel.count("/") + 1 == MAX_DEPTH
    assert node.name == "f"
    plan = select(local_repo.read_tree(m.tree), local_repo.read_tree, PathFilter())
    depth = 0
    while plan.dirs:
        (plan,) = plan.dirs
        depth += 1
    assert depth == MAX_DEPTH - 1
    assert [rel for _, rel in plan.files] == [rel]


@pytest.mark.commits_damage
@pytest.mark.parametrize("levels", [1500, 5000])
def test_restore_of_a_deep_tree(local_repo: sv.Repository, tmp_path: Path, levels: int) -> None:
    # Below the limit everything is restored; past it, the rest is, and the cut is reported.
    m = _chain(local_repo, levels)
    try:
        result = sv.Restorer(local_repo, workers=1).restore(m.id, tmp_path / "target")
        if levels < MAX_DEPTH:
            assert not result.errors
            assert (tmp_path / "target").joinpath(*["d"] * levels, "f").exists()
        else:
            too_deep = "/".join(["d"] * MAX_DEPTH)
            assert [(e.path, str(depth_error(too_deep)) in e.error) for e in result.errors] == [(too_deep, True)]
    finally:
        _remove_chain(tmp_path / "target")


def _remove_chain(root: Path) -> None:
    """Remove a deep chain of ``d`` directories a level at a time from the top (the test
    runner's own clean-up recurses once per level and its paths outgrow PATH_MAX)."""
    while (root / "d" / "d").is_dir():
        os.rename(root / "d" / "d", root / "next")
        shutil.rmtree(root / "d")
        os.rename(root / "next", root / "d")
    shutil.rmtree(root, ignore_errors=True)


def test_backup_records_a_directory_past_the_limit_as_an_error(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit, lowered so a test can reach it (4096 levels pass the OS's path length first).
    src = tmp_path / "src"
    _deep_dir(src, 30)
    write(src / "top", b"kept")
    limit = len(src.parts) - 1 + 10  # src's tree at level len(parts); 10 levels below it
    monkeypatch.setattr(walker, "MAX_DEPTH", limit)
    m = sv.Engine(local_repo).backup([str(src)])
    cut = str(src.joinpath(*["d"] * 10))
    assert [(e.path, e.error) for e in m.errors] == [(cut, str(depth_error(cut)))]
    listed = [rel for rel, _ in walk_snapshot(local_repo, m)]
    assert max(rel.count("/") + 1 for rel in listed) == limit - 1
    assert str(src / "top").strip("/") in listed
    assert os.path.isdir(cut)


def test_a_directory_whose_tree_is_over_the_size_limit_is_an_error_and_left_out(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tree limit (32 MiB, some 200,000 entries) lowered so a test reaches it: the big
    # directory is listed in the errors and left out; its siblings and parent are kept, and the
    # snapshot reads back (a snapshot its reader would refuse is never committed).
    src = tmp_path / "src"
    for i in range(40):
        write(src / "big" / f"entry-{i:04d}", b"x")
    write(src / "small" / "kept", b"kept")
    monkeypatch.setattr(walker, "MAX_TREE_BLOB", 2000)
    m = sv.Engine(local_repo).backup([str(src)])
    assert [e.path for e in m.errors] == [str(src / "big")]
    assert "over the format's limit" in m.errors[0].error
    listed = {rel for rel, _ in walk_snapshot(local_repo, m)}
    assert str(src / "small" / "kept").strip("/") in listed
    assert not any("/big" in rel for rel in listed)


def test_a_tree_blob_over_the_size_limit_is_refused_by_every_reader(local_repo: sv.Repository) -> None:
    from snapvault.pipeline.blob import MAX_TREE_BLOB
    from snapvault.pipeline.tree import decode_tree

    with pytest.raises(sv.IntegrityError, match="over the format's limit"):
        decode_tree(b" " * (MAX_TREE_BLOB + 1))
