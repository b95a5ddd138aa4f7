"""Owners by name: a backup records user and group names, a restore maps them, as tar does.

As root (the only case in which a restore gives owners at all):

- a backup records, beside each entry's uid and gid, the names this machine gives them, and
  none for an ID without a name;
- a restore gives an entry the local ID of its stored name where that name exists here, its
  stored ID where it does not (or the node has no name), and with ``numeric_owner`` (CLI
  ``--numeric-owner``) the stored IDs always; files, directories, symlinks and FIFOs alike
  (each is given its owner by a different call);
- a parent snapshot written before names were recorded costs no file read: the next backup
  takes the names from the files' owners without reading their content again.

"A snapshot from another machine" is a tree written with the library's own encoder whose
nodes pair a user name that exists here with an ID that is not its ID here.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.archiver.sink import BlobSink
from snapvault.cli.exits import ExitCode
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.tree import Node, encode_tree
from tests.cli.test_key_cli import Cli
from tests.conftest import tree_at, write

pytestmark = pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0), reason="a restore gives owners only as root"
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NO_SUCH_NAME = "sv-no-such-owner"


def _named() -> tuple[str, int, str, int]:
    """A user and a group that exist here, and their IDs (nobody and its group)."""
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_name, pw.pw_uid, grp.getgrgid(pw.pw_gid).gr_name, pw.pw_gid
    except KeyError:
        pytest.skip("this machine has no user nobody")


def _unused(lookup: Callable[[int], object], start: int) -> int:
    """An ID this machine has no name for."""
    ident = start
    while True:
        try:
            lookup(ident)
        except KeyError:
            return ident
        ident += 1


def _owner(p: Path) -> tuple[int, int]:
    st = os.lstat(p)
    return st.st_uid, st.st_gid


def _node_at(repo: sv.Repository, m: sv.Manifest, path: Path) -> Node:
    """The node a snapshot holds for an absolute path."""
    tree: str | None = m.tree
    node = None
    for part in path.parts[1:]:
        assert tree is not None
        node = next(n for n in repo.read_tree(tree) if n.name == part)
        tree = node.subtree
    assert node is not None
    return node


# -- a backup records names ------------------------------------------------------------------


def test_a_backup_records_names_and_a_restore_gives_them_back(local_repo: sv.Repository, tmp_path: Path) -> None:
    user, uid, group, gid = _named()
    free_uid, free_gid = _unused(pwd.getpwuid, 54321), _unused(grp.getgrgid, 54321)
    src = tmp_path / "src"
    named = write(src / "named", "n")
    unnamed = write(src / "sub" / "unnamed", "u")
    os.symlink("named", src / "link")
    os.chown(named, uid, gid)
    os.chown(unnamed, free_uid, free_gid)
    os.chown(src / "sub", free_uid, gid)  # a known group with an unknown user
    os.lchown(src / "link", uid, free_gid)

    m = sv.Engine(local_repo).backup([str(src)], now=T0)

    def names(p: Path) -> tuple[int, str, int, str]:
        n = _node_at(local_repo, m, p)
        return n.uid, n.user, n.gid, n.group

    assert names(named) == (uid, user, gid, group)
    assert names(unnamed) == (free_uid, "", free_gid, "")
    assert names(src / "sub") == (free_uid, "", gid, group)
    assert names(src / "link") == (uid, user, free_gid, "")
    assert names(src) == (0, pwd.getpwuid(0).pw_name, 0, grp.getgrgid(0).gr_name)

    out = tmp_path / "out"
    result = sv.Restorer(local_repo, workers=2).restore(m.id, out)
    assert result.ok, result.errors
    back = out / src.relative_to("/")
    assert _owner(back / "named") == (uid, gid)
    assert _owner(back / "sub" / "unnamed") == (free_uid, free_gid)
    assert _owner(back / "sub") == (free_uid, gid)
    assert _owner(back / "link") == (uid, free_gid)


def test_names_cost_no_read_of_an_unchanged_file(local_repo: sv.Repository, tmp_path: Path) -> None:
    """A parent written before names existed: the next backup adds them without reading content."""
    user, uid, _, _ = _named()
    src = tmp_path / "src"
    for i in range(3):
        os.chown(write(src / f"f{i}", f"file {i}"), uid, 0)
    engine = sv.Engine(local_repo)
    first = engine.backup([str(src)], hostname="h", now=T0)
    # The same snapshot as a release without names wrote it: every tree re-encoded without them.
    sink = BlobSink(local_repo, workers=1)

    def strip(tree: str) -> str:
        nodes = [
            n._replace(user="", group="", subtree=strip(n.subtree) if n.subtree else None)
            for n in local_repo.read_tree(tree)
        ]
        return sink.add(BlobType.TREE, encode_tree(nodes))[0].hex()

    try:
        root = strip(first.tree)
        sink.flush()
    finally:
        sink.close()
    old = local_repo.save_manifest(sv.Manifest(time=T0, hostname="h", paths=first.paths, tree=root))
    assert _node_at(local_repo, old, src / "f0").user == ""

    again = engine.backup([str(src)], hostname="h", parent=old.id, now=T0)
    assert _node_at(local_repo, again, src / "f0").user == user
    assert again.stats.bytes_read == 0
    assert again.stats.files_unchanged == 3
    # Once named, an unchanged source gives the very same trees.
    third = engine.backup([str(src)], hostname="h", parent=again.id, now=T0)
    assert tree_at(local_repo, third, src) == tree_at(local_repo, again, src)


# -- a snapshot from another machine ---------------------------------------------------------


@pytest.fixture
def foreign(local_repo: sv.Repository) -> tuple[sv.Manifest, dict[str, tuple[int, int]]]:
    """A snapshot whose owner names map to other IDs here; and each entry's stored (uid, gid)."""
    user, _, group, _ = _named()
    there_uid, there_gid = _unused(pwd.getpwuid, 54321), _unused(grp.getgrgid, 54321)
    sink = BlobSink(local_repo, workers=1)
    try:
        data = sink.add(BlobType.DATA, b"data")[0].hex()
        empty = sink.add(BlobType.TREE, encode_tree([]))[0].hex()
        common: dict[str, Any] = {"uid": there_uid, "gid": there_gid, "mtime_ns": int(T0.timestamp()) * 10**9}
        both: dict[str, Any] = {"user": user, "group": group, **common}
        nodes = [
            Node(name="mapped", type="file", mode=0o644, size=4, content=(data,), **both),
            Node(name="dir", type="dir", mode=0o755, subtree=empty, **both),
            Node(name="link", type="symlink", mode=0o777, target="mapped", **both),
            Node(name="fifo", type="fifo", mode=0o600, **both),
            Node(
                name="unknown",
                type="file",
                mode=0o644,
                size=4,
                content=(data,),
                user=NO_SUCH_NAME,
                group=NO_SUCH_NAME,
                **common,
            ),
            Node(name="half", type="fifo", mode=0o600, user=user, group=NO_SUCH_NAME, **common),
            Node(name="plain", type="fifo", mode=0o600, **common),
        ]
        root = sink.add(BlobType.TREE, encode_tree(nodes))[0].hex()
        sink.flush()
    finally:
        sink.close()
    m = local_repo.save_manifest(sv.Manifest(time=T0, hostname="elsewhere", paths=["/x"], tree=root))
    return m, {n.name: (n.uid, n.gid) for n in nodes}


def _mapped(stored: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """What a restore by name gives each entry of :func:`foreign`."""
    _, uid, _, gid = _named()
    there_uid, there_gid = stored["plain"]
    by_name = (uid, gid)
    return {
        "mapped": by_name,
        "dir": by_name,
        "link": by_name,
        "fifo": by_name,
        "unknown": (there_uid, there_gid),
        "half": (uid, there_gid),
        "plain": (there_uid, there_gid),
    }


def _owners(target: Path) -> dict[str, tuple[int, int]]:
    return {p.name: _owner(p) for p in target.iterdir()}


def test_a_restore_maps_owners_by_name(
    local_repo: sv.Repository, foreign: tuple[sv.Manifest, dict[str, tuple[int, int]]], tmp_path: Path
) -> None:
    m, stored = foreign
    restorer = sv.Restorer(local_repo, workers=2)
    result = restorer.restore(m.id, tmp_path / "by-name")
    assert result.ok, result.errors
    assert _owners(tmp_path / "by-name") == _mapped(stored)
    # The names differ from the numbers here: the test would pass for no restore that kept numbers.
    assert _mapped(stored) != stored

    result = restorer.restore(m.id, tmp_path / "numeric", numeric_owner=True)
    assert result.ok, result.errors
    assert _owners(tmp_path / "numeric") == stored


def test_the_cli_maps_owners_by_name(
    local_repo: sv.Repository,
    foreign: tuple[sv.Manifest, dict[str, tuple[int, int]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    m, stored = foreign
    cli = Cli(local_repo.url, monkeypatch, capsys)
    code, _, err = cli("restore", m.id, "--target", str(tmp_path / "by-name"))
    assert code == ExitCode.OK, err
    assert _owners(tmp_path / "by-name") == _mapped(stored)


def test_the_cli_keeps_numbers_with_numeric_owner(
    local_repo: sv.Repository,
    foreign: tuple[sv.Manifest, dict[str, tuple[int, int]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    m, stored = foreign
    cli = Cli(local_repo.url, monkeypatch, capsys)
    code, _, err = cli("restore", m.id, "--target", str(tmp_path / "numeric"), "--numeric-owner")
    assert code == ExitCode.OK, err
    assert _owners(tmp_path / "numeric") == stored
