"""Restore planning: selecting tree entries, and grouping a file's blobs into ranged reads."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import BlobLocation
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.restore_plan import PlannedDir, ReadRun, plan_reads, select
from snapvault.pipeline.tree import Node

MAX_RUN = 32 << 20


def d(name: str, tree: str) -> Node:
    return Node(name, "dir", mode=0o755, subtree=tree)


def f(name: str) -> Node:
    return Node(name, "file", mode=0o644, size=len(name))


# A small snapshot:
#   README.md  docs/{guide.md, img/logo.png, empty/}  src/{main.py, main.pyc, link, fifo}
#   build/out.o  empty/
TREES: dict[str, list[Node]] = {
    "t-root": [f("README.md"), d("docs", "t-docs"), d("src", "t-src"), d("build", "t-build"), d("empty", "t-e1")],
    "t-docs": [f("guide.md"), d("img", "t-img"), d("empty", "t-e2")],
    "t-img": [f("logo.png")],
    "t-e1": [],
    "t-e2": [],
    "t-src": [
        f("main.py"),
        f("main.pyc"),
        Node("link", "symlink", target="main.py"),
        Node("fifo", "fifo"),
    ],
    "t-build": [f("out.o")],
}


class Reader:
    """read_tree over TREES that records which trees were read."""

    def __init__(self, forbidden: frozenset[str] = frozenset()) -> None:
        self.read: list[str] = []
        self.forbidden = forbidden

    def __call__(self, tree_id: str) -> list[Node]:
        assert tree_id not in self.forbidden, f"tree {tree_id} should not have been read"
        self.read.append(tree_id)
        return TREES[tree_id]


def plan(
    include: list[str] | None = None, exclude: list[str] | None = None, reader: Reader | None = None
) -> PlannedDir:
    return select(TREES["t-root"], reader or Reader(), PathFilter(include or (), exclude or ()))


def flatten(p: PlannedDir) -> dict[str, str]:
    """rel path -> kind, for everything in the plan (the root itself excluded)."""
    out: dict[str, str] = {}
    for node, rel in p.files:
        assert node.type == "file"
        out[rel] = "file"
    for node, rel in p.others:
        assert node.type not in ("file", "dir")
        out[rel] = node.type
    for sub in p.dirs:
        assert sub.node is not None
        assert sub.node.type == "dir"
        out[sub.rel] = "dir"
        out.update(flatten(sub))
    return out


ALL = {
    "README.md": "file",
    "docs": "dir",
    "docs/guide.md": "file",
    "docs/img": "dir",
    "docs/img/logo.png": "file",
    "docs/empty": "dir",
    "src": "dir",
    "src/main.py": "file",
    "src/main.pyc": "file",
    "src/link": "symlink",
    "src/fifo": "fifo",
    "build": "dir",
    "build/out.o": "file",
    "empty": "dir",
}


def test_no_filter_selects_everything_including_empty_dirs() -> None:
    p = plan()
    assert p.node is None
    assert p.rel == ""
    assert flatten(p) == ALL


def test_plan_keeps_tree_order_and_nodes() -> None:
    p = plan()
    assert [rel for _, rel in p.files] == ["README.md"]
    assert [sub.rel for sub in p.dirs] == ["docs", "src", "build", "empty"]
    src = p.dirs[1]
    assert src.node == TREES["t-root"][2]
    assert [(n, rel) for n, rel in src.files] == [
        (TREES["t-src"][0], "src/main.py"),
        (TREES["t-src"][1], "src/main.pyc"),
    ]
    assert [rel for _, rel in src.others] == ["src/link", "src/fifo"]


def test_exclude_patterns_drop_entries_and_never_read_excluded_trees() -> None:
    reader = Reader(forbidden=frozenset({"t-build"}))
    p = plan(exclude=["*.pyc", "build/"], reader=reader)
    expected = {k: v for k, v in ALL.items() if k not in ("src/main.pyc", "build", "build/out.o")}
    assert flatten(p) == expected
    assert "t-build" not in reader.read


def test_exclude_without_slash_also_drops_a_directory() -> None:
    assert "docs" not in flatten(plan(exclude=["docs"]))
    assert not any(k.startswith("docs") for k in flatten(plan(exclude=["docs"])))


def test_include_a_directory_restores_it_whole() -> None:
    got = flatten(plan(include=["docs/"]))
    assert got == {k: v for k, v in ALL.items() if k == "docs" or k.startswith("docs/")}
    # Its empty subdirectory comes too, because the directory was selected as a whole.
    assert got["docs/empty"] == "dir"


def test_include_files_keeps_only_their_parent_directories() -> None:
    got = flatten(plan(include=["*.md"]))
    assert got == {"README.md": "file", "docs": "dir", "docs/guide.md": "file"}


def test_include_one_nested_file() -> None:
    assert flatten(plan(include=["src/main.py"])) == {"src": "dir", "src/main.py": "file"}


def test_include_non_file_entries() -> None:
    assert flatten(plan(include=["link", "fifo"])) == {"src": "dir", "src/link": "symlink", "src/fifo": "fifo"}


def test_exclude_beats_include_inside_a_selected_directory() -> None:
    got = flatten(plan(include=["docs/"], exclude=["*.png"]))
    assert "docs/img/logo.png" not in got
    # img was selected as part of docs, so it is restored, now empty.
    assert got["docs/img"] == "dir"
    assert got["docs/guide.md"] == "file"


def test_excluded_directory_inside_included_one() -> None:
    got = flatten(plan(include=["docs/"], exclude=["img/"]))
    assert got == {"docs": "dir", "docs/guide.md": "file", "docs/empty": "dir"}


def test_include_matching_nothing_gives_an_empty_plan() -> None:
    # select() is typed to return a PlannedDir (the restorer calls plan.files on it).
    p = plan(include=["no-such-file"])
    assert isinstance(p, PlannedDir)
    assert p.node is None
    assert flatten(p) == {}


# -- plan_reads ------------------------------------------------------------------------------


def loc(pack: int, offset: int, length: int) -> BlobLocation:
    return BlobLocation(bytes([pack]) * 32, BlobType.DATA, offset, length, length)


def bid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def reads(layout: dict[bytes, BlobLocation], content: list[bytes]) -> list[ReadRun]:
    return list(plan_reads(content, layout.__getitem__))


def test_adjacent_blobs_in_one_pack_are_one_read() -> None:
    layout = {bid(1): loc(1, 0, 10), bid(2): loc(1, 10, 20), bid(3): loc(1, 30, 5)}
    (run,) = reads(layout, [bid(1), bid(2), bid(3)])
    assert run == ReadRun(
        bytes([1]) * 32, 0, 35, ((bid(1), layout[bid(1)]), (bid(2), layout[bid(2)]), (bid(3), layout[bid(3)]))
    )


def test_runs_split_across_packs() -> None:
    layout = {bid(1): loc(1, 0, 10), bid(2): loc(2, 10, 10), bid(3): loc(2, 20, 10)}
    runs = reads(layout, [bid(1), bid(2), bid(3)])
    assert [(r.pack_id[0], r.offset, r.length, len(r.blobs)) for r in runs] == [(1, 0, 10, 1), (2, 10, 20, 2)]


def test_runs_split_at_gaps() -> None:
    layout = {bid(1): loc(1, 0, 10), bid(2): loc(1, 11, 10), bid(3): loc(1, 21, 4)}
    runs = reads(layout, [bid(1), bid(2), bid(3)])
    assert [(r.offset, r.length) for r in runs] == [(0, 10), (11, 14)]


def test_out_of_order_and_repeated_blobs_keep_file_order() -> None:
    layout = {bid(1): loc(1, 0, 10), bid(2): loc(1, 10, 10)}
    content = [bid(2), bid(1), bid(1), bid(2)]
    runs = reads(layout, content)
    assert [b for r in runs for b, _ in r.blobs] == content
    # 2 then 1 is backwards, 1 then 1 repeats, 1 then 2 is adjacent.
    assert [(r.offset, r.length) for r in runs] == [(10, 10), (0, 10), (0, 20)]


def test_empty_file_has_no_reads() -> None:
    assert reads({}, []) == []


def test_runs_are_capped_at_32_mib() -> None:
    mib = 1 << 20
    layout = {bid(i): loc(1, i * 12 * mib, 12 * mib) for i in range(4)}
    runs = reads(layout, [bid(i) for i in range(4)])
    assert [(r.offset, r.length) for r in runs] == [(0, 24 * mib), (24 * mib, 24 * mib)]
    # Exactly 32 MiB is still one read; one byte more is not.
    exact = {bid(1): loc(1, 0, 16 * mib), bid(2): loc(1, 16 * mib, 16 * mib)}
    assert len(reads(exact, [bid(1), bid(2)])) == 1
    over = {bid(1): loc(1, 0, 16 * mib), bid(2): loc(1, 16 * mib, 16 * mib + 1)}
    assert len(reads(over, [bid(1), bid(2)])) == 2
    # A single blob larger than the cap is read on its own.
    huge = {bid(1): loc(1, 0, 40 * mib)}
    assert [(r.offset, r.length) for r in reads(huge, [bid(1)])] == [(0, 40 * mib)]


@st.composite
def layouts(draw: st.DrawFn) -> tuple[dict[bytes, BlobLocation], list[bytes]]:
    layout: dict[bytes, BlobLocation] = {}
    n = 0
    for pack in range(draw(st.integers(1, 4))):
        offset = 0
        for _ in range(draw(st.integers(1, 8))):
            offset += draw(st.sampled_from([0, 0, 0, 1, 100]))  # mostly adjacent, some gaps
            length = draw(st.sampled_from([1, 50, 1000, 10 << 20, 20 << 20]))
            layout[bid(n)] = loc(pack, offset, length)
            offset += length
            n += 1
    keys = list(layout)
    # Files mostly read blobs in storage order, with some jumps and repeats.
    content: list[bytes] = []
    i = draw(st.integers(0, len(keys) - 1))
    for _ in range(draw(st.integers(0, 25))):
        content.append(keys[i])
        step = draw(st.sampled_from([1, 1, 1, 1, 0, -1, 3]))
        i = (i + step) % len(keys)
    return layout, content


@settings(max_examples=200)
@given(case=layouts())
def test_plan_reads_properties(case: tuple[dict[bytes, BlobLocation], list[bytes]]) -> None:
    layout, content = case
    runs = reads(layout, content)
    # Every blob exactly once, in file order, with its own location.
    assert [(b, loc) for r in runs for b, loc in r.blobs] == [(b, layout[b]) for b in content]
    for r in runs:
        first, last = r.blobs[0][1], r.blobs[-1][1]
        assert r.pack_id == first.pack_id
        assert r.offset == first.offset
        assert r.length == last.offset + last.length - first.offset
        assert all(loc.pack_id == r.pack_id for _, loc in r.blobs)
        # Contiguous: each blob starts where the previous one ended.
        for (_, a), (_, b) in itertools.pairwise(r.blobs):
            assert b.offset == a.offset + a.length
        assert r.length == sum(loc.length for _, loc in r.blobs)
        assert len(r.blobs) == 1 or r.length <= MAX_RUN
    # Maximal: no two neighbouring runs could have been one read.
    for r1, r2 in itertools.pairwise(runs):
        prev, nxt = r1.blobs[-1][1], r2.blobs[0][1]
        mergeable = (
            nxt.pack_id == prev.pack_id
            and nxt.offset == prev.offset + prev.length
            and nxt.offset + nxt.length - r1.offset <= MAX_RUN
        )
        assert not mergeable


@pytest.mark.parametrize("n", [1, 2, 50])
def test_plan_reads_is_lazy_and_calls_locate_once_per_blob(n: int) -> None:
    calls: list[bytes] = []
    layout = {bid(i): loc(1, i * 10, 10) for i in range(n)}

    def locate(b: bytes) -> BlobLocation:
        calls.append(b)
        return layout[b]

    it = plan_reads([bid(i) for i in range(n)], locate)
    assert calls == []
    (run,) = list(it)
    assert calls == [bid(i) for i in range(n)]
    assert run.length == 10 * n
