"""The re-backup shortcut: an unchanged inode reuses the parent's node; any change is seen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.pipeline.tree import Node
from tests.conftest import tree_at, write


def _node(repo: sv.Repository, m: sv.Manifest, path: Path) -> Node:
    tree = m.tree
    parts = Path(os.path.relpath(path, "/")).parts
    for i, part in enumerate(parts):
        node = next(n for n in repo.read_tree(tree) if n.name == part)
        if i == len(parts) - 1:
            return node
        assert node.subtree is not None
        tree = node.subtree
    raise AssertionError("unreachable")


def _again(repo: sv.Repository, src: Path) -> sv.Manifest:
    return sv.Engine(repo).backup([src])


def test_an_untouched_file_keeps_its_node_and_is_not_read(local_repo: sv.Repository, tmp_path: Path) -> None:
    f = write(tmp_path / "src" / "f.txt", "content\n")
    first = _again(local_repo, f.parent)
    second = _again(local_repo, f.parent)
    assert second.stats.files_unchanged == 1
    assert second.stats.bytes_read == 0
    assert _node(local_repo, second, f) == _node(local_repo, first, f)
    assert tree_at(local_repo, second, f.parent) == tree_at(local_repo, first, f.parent)


def test_a_mode_change_alone_is_recorded(local_repo: sv.Repository, tmp_path: Path) -> None:
    f = write(tmp_path / "src" / "f.txt", "content\n")
    os.chmod(f, 0o644)
    first = _again(local_repo, f.parent)
    os.chmod(f, 0o600)
    second = _again(local_repo, f.parent)
    assert _node(local_repo, second, f).mode == 0o600
    assert _node(local_repo, second, f).content == _node(local_repo, first, f).content
    assert tree_at(local_repo, second, f.parent) != tree_at(local_repo, first, f.parent)


def test_an_xattr_change_alone_is_recorded(local_repo: sv.Repository, tmp_path: Path) -> None:
    f = write(tmp_path / "src" / "f.txt", "content\n")
    try:
        os.setxattr(f, "user.colour", b"red")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    first = _again(local_repo, f.parent)
    # Same size and mtime; setxattr moves only the ctime.
    st = f.stat()
    os.setxattr(f, "user.colour", b"blue")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = _again(local_repo, f.parent)
    assert dict(_node(local_repo, first, f).xattrs) != dict(_node(local_repo, second, f).xattrs)
    out = tmp_path / "out"
    sv.Restorer(local_repo).restore(second.id, out)
    assert os.getxattr(out / os.path.relpath(f, "/"), "user.colour") == b"blue"


def test_a_new_hardlink_changes_the_link_count(local_repo: sv.Repository, tmp_path: Path) -> None:
    f = write(tmp_path / "src" / "f.txt", "content\n")
    _again(local_repo, f.parent)
    os.link(f, tmp_path / "elsewhere")
    second = _again(local_repo, f.parent)
    assert _node(local_repo, second, f).links == 2


def test_content_rewritten_with_the_same_size_and_mtime_is_read_again(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    f = write(tmp_path / "src" / "f.txt", "aaaa\n")
    first = _again(local_repo, f.parent)
    st = f.stat()
    f.write_text("bbbb\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # the ctime still moves
    second = _again(local_repo, f.parent)
    assert second.stats.bytes_read == 5
    assert _node(local_repo, second, f).content != _node(local_repo, first, f).content


def test_xattrs_an_earlier_run_could_not_read_are_picked_up(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands in for a run refused the xattrs (trusted.* without root, say): the inode has not
    # changed since, but the next run that can read them records them.
    from snapvault.archiver import walker

    f = write(tmp_path / "src" / "f.txt", "content\n")
    try:
        os.setxattr(f, "user.colour", b"red")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    with monkeypatch.context() as m:
        m.setattr(walker, "_xattrs", lambda path: ())
        first = _again(local_repo, f.parent)
    assert _node(local_repo, first, f).xattrs == ()
    second = _again(local_repo, f.parent)
    assert dict(_node(local_repo, second, f).xattrs) == {"user.colour": "cmVk"}


def test_an_error_raised_by_on_file_stops_the_backup(local_repo: sv.Repository, tmp_path: Path) -> None:
    # A failing callback is the caller's error, not a file that could not be read: it must not
    # quietly leave the file out of the snapshot.
    f = write(tmp_path / "src" / "f.txt", "content\n")
    _again(local_repo, f.parent)

    def on_file(path: str, size: int, unchanged: bool) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    before = local_repo.snapshots()
    with pytest.raises(BrokenPipeError):
        sv.Engine(local_repo).backup([f.parent], on_file=on_file)
    assert len(local_repo.snapshots()) == len(before)
