"""``check`` reads each blob reference with the type the index records (issue #17, item 3).

A file's content must name data blobs and a directory's subtree a tree blob; every blob here is
validly sealed, so only the index's types tell the confusion apart.
"""

from __future__ import annotations

import pytest

import snapvault as sv
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
