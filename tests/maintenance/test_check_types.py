"""``check`` reads each blob reference with the type the index records (issue #17, item 3).

A file's content must name data blobs and a directory's subtree a tree blob; every blob here is
validly sealed, so only the index's types tell the confusion apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.test_hostile import Hostile, dir_node, file_node

pytestmark = pytest.mark.commits_damage


@pytest.mark.parametrize("read_data", [False, True])
def test_file_content_naming_a_tree_blob(local_repo: sv.Repository, read_data: bool) -> None:
    h = Hostile(local_repo)
    inner = h.tree([])
    m = h.commit(h.tree([file_node("f", [inner], size=10)]))
    problems = [(p.kind, p.path, p.blob, p.snapshot) for p in local_repo.check(read_data=read_data).problems]
    assert problems == [("data", "f", inner, m.id)]


@pytest.mark.parametrize("read_data", [False, True])
def test_subtree_naming_a_data_blob(local_repo: sv.Repository, read_data: bool) -> None:
    h = Hostile(local_repo)
    data = h.data()
    m = h.commit(h.tree([dir_node("d", data)]))
    report = local_repo.check(read_data=read_data)
    assert [(p.kind, p.path, p.blob, p.snapshot) for p in report.problems] == [("tree", "d", data, m.id)]
    assert "data blob" in report.problems[0].message


def test_a_blob_used_rightly_elsewhere_is_still_reported(local_repo: sv.Repository) -> None:
    # The same data blob as a file's content (right) and as a directory's subtree (wrong).
    h = Hostile(local_repo)
    data = h.data()
    h.commit(h.tree([dir_node("d", data), file_node("f", [data])]))
    assert [(p.kind, p.path) for p in local_repo.check(read_data=True).problems] == [("tree", "d")]


@pytest.mark.commits_damage
@pytest.mark.parametrize("window", [997, 64 << 10])
def test_read_data_reads_packs_in_windows_and_still_finds_every_damaged_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    # Windows far smaller than the blobs (each blob straddles many) and about a blob's size:
    # every blob is opened once from the bytes read, and a flipped byte is named precisely.
    import random

    from snapvault.maintenance import check as check_module

    monkeypatch.setattr(check_module, "_WINDOW", window)
    rng = random.Random(7)
    src = tmp_path / "src"
    for i in range(12):
        write(src / f"f{i}", rng.randbytes(20_000 + 3_000 * i))
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    sv.Engine(repo).backup([str(src)])
    clean = repo.check(read_data=True)
    assert clean.ok, clean.problems
    assert clean.blobs_read == len(list(repo.index.items()))
    data_pack = max((p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(data_pack.read_bytes())
    raw[len(raw) // 3] ^= 1
    data_pack.chmod(0o644)
    data_pack.write_bytes(bytes(raw))
    report = sv.Repository.open(str(tmp_path / "repo"), PASSWORD).check(read_data=True)
    kinds = sorted({p.kind for p in report.problems})
    assert kinds == ["blob", "pack"], report.problems
    assert sum(p.kind == "blob" for p in report.problems) == 1
