"""A directory's parent nodes read as a stream alongside the walk (archiver/dirstate.py)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snapvault as sv
import snapvault.repository.repo as repo_module
from snapvault.archiver.dirstate import OpenDir, ParentNodes
from snapvault.errors import IntegrityError
from snapvault.pipeline.tree import Node, TreeNodes, encode_tree

# -- the cursor and the unchanged run ---------------------------------------------------------


def _nodes(*names: str) -> list[Node]:
    return [Node(name=n, type="file", size=i + 1, mode=0o644) for i, n in enumerate(names)]


class _Counting:
    """A re-iterable parent that counts how often it is read from its start."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.readings = 0

    def __iter__(self) -> Iterator[Node]:
        self.readings += 1
        return iter(self.nodes)


def test_an_unchanged_directory_keeps_a_count_not_its_nodes() -> None:
    parent = _Counting(_nodes("a", "b", "c"))
    d = OpenDir("/x", "x", None, 1, "t" * 64, ParentNodes(parent), ["a", "b", "c"])
    for name, node in zip("abc", parent.nodes, strict=True):
        pnode = d.take(name)
        assert pnode is node
        d.emit(pnode, pnode)
    assert d.nodes is None
    assert d.same == 3
    assert d.finish()
    assert d.gone == []
    assert parent.readings == 1


def test_a_change_after_an_unchanged_run_parses_the_run_again_once() -> None:
    parent = _Counting(_nodes("a", "b", "c", "d"))
    d = OpenDir("/x", "x", None, 1, "t" * 64, ParentNodes(parent), [])
    for name in "ab":
        p = d.take(name)
        assert p is not None
        d.emit(p, p)
    changed = parent.nodes[2]._replace(size=99)
    d.emit(changed, d.take("c"))
    p = d.take("d")
    assert p is not None
    d.emit(p, p)
    assert not d.finish()
    assert d.diverge() == [parent.nodes[0], parent.nodes[1], changed, parent.nodes[3]]
    assert parent.readings == 2


def test_entries_passed_over_left_over_or_dropped_are_gone() -> None:
    parent = _Counting(_nodes("a", "b", "c", "d", "e"))
    d = OpenDir("/x", "x", None, 1, "t" * 64, ParentNodes(parent), [])
    a = d.take("a")
    assert a is not None
    d.emit(a, a)
    # "b" is not in the walk (deleted or excluded): passed over on the way to "c".
    c = d.take("c")
    assert c is not None
    d.drop(c)  # "c" is there but could not be read
    new = Node(name="cc", type="file", size=5)
    assert d.take("cc") is None
    d.emit(new, None)
    assert not d.finish()  # "d" and "e" never reached
    assert [n.name for n in d.gone] == ["b", "c", "d", "e"]
    assert [n.name for n in d.diverge()] == ["a", "cc"]


def test_a_damaged_parent_ends_the_cursor_and_the_shortcut() -> None:
    good = _nodes("a", "b")

    def damaged() -> Iterator[Node]:
        yield from good
        raise IntegrityError("tree blob is malformed")

    with pytest.raises(IntegrityError):
        ParentNodes(damaged())  # a one-shot iterator is listed first (the walker then has no parent)
    with pytest.raises(IntegrityError):
        TreeNodes(encode_tree(good)[:-3] + b"x}]")  # framing refused before the first node


def test_a_damaged_node_after_an_unchanged_run_still_gives_the_run() -> None:
    good = _nodes("a", "b")
    text = encode_tree([*good, Node(name="c", type="file", size=1)]).replace(b'"name":"c"', b'"name":"/c"')
    parent = TreeNodes(text)
    d = OpenDir("/x", "x", None, 1, "t" * 64, ParentNodes(parent), [])
    for n in good:
        p = d.take(n.name)
        assert p == n
        d.emit(n, p)
    assert d.take("c") is None
    assert d.parent is not None
    assert d.parent.broken
    assert not d.finish()  # never the parent's tree when part of it could not be read
    assert d.diverge() == good


# -- whole backups ------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> sv.Repository:
    return sv.Repository.init(str(tmp_path / "repo"), "pw")


def _root_of(repo: sv.Repository, m: sv.Manifest, src: Path) -> str:
    """The tree ID of the source directory inside a snapshot's root."""
    tree = m.tree
    for part in src.parts[1:]:
        (node,) = (n for n in repo.tree_nodes(tree) if n.name == part)
        assert node.subtree is not None
        tree = node.subtree
    return tree


@pytest.mark.parametrize("streamed_above", [None, 1000])
def test_an_unchanged_wide_directory_is_read_once_and_keeps_its_tree(
    repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed_above: int | None
) -> None:
    # Held as text (small trees), or compressed and decompressed as the walk goes (large ones,
    # the threshold lowered here so a test-sized directory is one).
    if streamed_above is not None:
        monkeypatch.setattr(repo_module, "_STREAMED_TREE", streamed_above)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3000):
        (src / f"f{i:05d}").write_bytes(b"x%d" % i)
    first = sv.Engine(repo).backup([str(src)])
    readings: list[str] = []
    kinds: list[bool] = []
    original = repo.tree_nodes

    class Counted:
        def __init__(self, tree_id: str) -> None:
            self.tree_id, self.nodes = tree_id, original(tree_id)
            kinds.append(self.nodes._text is None)  # type: ignore[attr-defined]

        def __iter__(self) -> Iterator[Node]:
            readings.append(self.tree_id)
            return iter(self.nodes)

    repo.tree_nodes = Counted  # type: ignore[assignment,method-assign]
    (src / "f01500").touch()  # one change in the middle: the run before it is parsed again
    second = sv.Engine(repo).backup([str(src)])
    wide = _root_of(repo, first, src)
    assert second.tree != first.tree  # the touched file's new mtime
    assert readings.count(wide) == 2
    third = sv.Engine(repo).backup([str(src)])
    assert third.tree == second.tree
    assert third.stats.files_unchanged == 3000
    # Unchanged: the wide directory's parent tree was parsed once, alongside the walk.
    assert readings.count(_root_of(repo, second, src)) == 1
    assert any(kinds) is (streamed_above is not None)
    # And every snapshot reads back whole.
    assert repo.check(read_data=True).ok


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40))
def test_a_backup_with_a_parent_gives_the_tree_a_backup_without_one_gives(
    tmp_path_factory: pytest.TempPathFactory, seed: int, n: int
) -> None:
    # Random changes anywhere in a directory and a subdirectory (deleted, added, rewritten,
    # chmodded, a file turned into a directory): the tree built from the parent's stream must
    # be the one a backup that reads everything builds, and the removed files counted.
    base = tmp_path_factory.mktemp("prop")
    repo = sv.Repository.init(str(base / "repo"), "pw")
    rng = random.Random(seed)
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    names = [f"n{i:03d}" for i in range(n)]
    for name in names:
        (src / name).write_bytes(rng.randbytes(rng.randint(0, 64)))
        (src / "sub" / name).write_text(name)
    engine = sv.Engine(repo)
    engine.backup([str(src)])
    removed = 0
    for name in names:
        roll = rng.random()
        p = src / name
        if roll < 0.1:
            p.unlink()
            removed += 1
        elif roll < 0.2:
            p.write_bytes(rng.randbytes(rng.randint(65, 99)))
        elif roll < 0.25:
            os.chmod(p, 0o600)
        elif roll < 0.3:
            # A file turned into a directory: the name stays, so nothing counts as removed.
            p.unlink()
            (src / name).mkdir()
        if rng.random() < 0.1:
            (src / f"{name}-new").write_text("new")
        if rng.random() < 0.05:
            (src / "sub" / name).unlink()
            removed += 1
    with_parent = engine.backup([str(src)])
    full = engine.backup([str(src)], full=True)
    assert _root_of(repo, with_parent, src) == _root_of(repo, full, src)
    assert with_parent.stats.files_removed == removed
