"""Restore planning: selecting tree entries, which files are written or hardlinked, grouping a
directory's files into pack spans and a file's blobs into ranged reads."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import IntegrityError
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import BlobLocation
from snapvault.pipeline.patterns import PathFilter
from snapvault.pipeline.restore_plan import (
    MAX_GAP,
    MAX_SPAN,
    FileRead,
    PlannedDir,
    ReadRun,
    SpanRead,
    Unlocated,
    plan_dir,
    plan_reads,
    plan_writes,
    select,
)
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


# -- plan_writes: each file written once, further names as hardlinks ------------------------------


def linked_file(name: str, inode: int, size: int = 3, links: int = 2, dev: int = 1) -> Node:
    return Node(name, "file", size=size, inode=inode, dev=dev, links=links)


def pdir(rel: str, files: list[Node], dirs: Sequence[PlannedDir] = ()) -> PlannedDir:
    node = Node(rel.rsplit("/", 1)[-1], "dir") if rel else None
    return PlannedDir(node, rel, [(n, f"{rel}/{n.name}" if rel else n.name) for n in files], list(dirs), [])


def walk(p: PlannedDir) -> list[tuple[Node, str]]:
    """The files of a plan in the order a restore reaches them: a directory's files, then each
    subdirectory the same way (written independently of plan_writes, recursively)."""
    out = list(p.files)
    for sub in p.dirs:
        out += walk(sub)
    return out


def test_a_hardlinked_file_is_written_once_under_the_name_reached_first() -> None:
    # b/x is reached before c/y (b comes first), but after a top-level file of the root.
    plan = pdir(
        "",
        [linked_file("top", inode=7, size=5)],
        [
            pdir("b", [linked_file("x", inode=9), Node("plain", "file", size=100)]),
            pdir("c", [linked_file("y", inode=9), linked_file("z", inode=7, size=5)]),
        ],
    )
    w = plan_writes(plan)
    assert (w.files, w.bytes) == (3, 5 + 3 + 100)
    assert w.links == (("b/x", "c/y"), ("top", "c/z"))
    assert w.linked == {"c/y", "c/z"}


def test_same_inode_on_another_device_or_without_an_inode_is_another_file() -> None:
    plan = pdir(
        "",
        [
            linked_file("a", inode=5, dev=1),
            linked_file("b", inode=5, dev=2),
            linked_file("c", inode=0),
            linked_file("d", inode=0),
            # One link only: not a hardlink even if the inode repeats (a changed file).
            linked_file("e", inode=6, links=1),
            linked_file("f", inode=6, links=1),
        ],
    )
    w = plan_writes(plan)
    assert (w.files, w.links, w.linked) == (6, (), frozenset())


def test_an_empty_plan_writes_nothing() -> None:
    assert plan_writes(PlannedDir(None, "", [], [], [])) == plan_writes(pdir("", []))
    w = plan_writes(pdir("", []))
    assert (w.files, w.bytes, w.links, w.linked) == (0, 0, (), frozenset())


@st.composite
def plans(draw: st.DrawFn, depth: int = 0, rel: str = "") -> PlannedDir:
    files: list[Node] = []
    for i in range(draw(st.integers(0, 4))):
        links = draw(st.sampled_from([1, 1, 2, 3]))
        files.append(
            Node(
                f"f{i}",
                "file",
                size=draw(st.integers(0, 1000)),
                # A small pool of inodes and devices, so names of one file recur across the tree.
                inode=draw(st.integers(0, 4)),
                dev=draw(st.integers(1, 2)),
                links=links,
            )
        )
    subs = []
    if depth < 3:
        for j in range(draw(st.integers(0, 3))):
            subs.append(draw(plans(depth + 1, f"{rel}/d{j}" if rel else f"d{j}")))
    return pdir(rel, files, subs)


@settings(max_examples=300)
@given(plan=plans())
def test_plan_writes_properties(plan: PlannedDir) -> None:
    w = plan_writes(plan)
    order = walk(plan)
    first: dict[tuple[int, int], str] = {}
    written: list[tuple[Node, str]] = []
    expected_links: list[tuple[str, str]] = []
    for node, rel in order:
        key = (node.dev, node.inode)
        if node.links > 1 and node.inode and key in first:
            expected_links.append((first[key], rel))
        else:
            if node.links > 1 and node.inode:
                first[key] = rel
            written.append((node, rel))
    # Every file of the plan is either written or a further name, exactly once.
    assert len(written) + len(w.links) == len(order)
    assert w.linked == {rel for _, rel in expected_links}
    assert not w.linked & {rel for _, rel in written}
    # The further names link to the first name of their (dev, inode) in walk order, and come in
    # walk order.
    assert list(w.links) == expected_links
    by_rel = {rel: node for node, rel in order}
    for src, dst in w.links:
        a, b = by_rel[src], by_rel[dst]
        assert (a.dev, a.inode) == (b.dev, b.inode)
        assert a.links > 1
        assert b.links > 1
        assert a.inode
        assert src not in w.linked
    # Totals are the sums over what is written: progress adds up to them.
    assert w.files == len(written)
    assert w.bytes == sum(node.size for node, _ in written)


# -- plan_dir: one directory's files grouped into pack spans -------------------------------------

PACK_OF = {p: bytes([p]) * 32 for p in range(4)}


def hexid(i: int) -> str:
    return bid(i).hex()


@st.composite
def directories(draw: st.DrawFn) -> tuple[list[tuple[Node, str]], dict[bytes, BlobLocation], frozenset[str]]:
    """A directory's files and where their chunks are: packs of blobs laid end to end with some
    gaps, a few chunks missing from the index, shared chunks, empty and multi-chunk files."""
    layout: dict[bytes, BlobLocation] = {}
    n = 0
    for pack in range(draw(st.integers(1, 3))):
        offset = 0
        for _ in range(draw(st.integers(1, 10))):
            offset += draw(st.sampled_from([0, 0, 0, 5, 100, 5000]))
            length = draw(st.sampled_from([1, 10, 50, 400, 3000]))
            layout[bid(n)] = BlobLocation(PACK_OF[pack], BlobType.DATA, offset, length, length)
            offset += length
            n += 1
    ids = list(layout)
    unindexed = [bid(1000 + i) for i in range(3)]
    files: list[tuple[Node, str]] = []
    for i in range(draw(st.integers(0, 20))):
        shape = draw(st.sampled_from(["one", "one", "one", "one", "empty", "many", "missing"]))
        if shape == "one":
            content: tuple[str, ...] = (draw(st.sampled_from(ids)).hex(),)
        elif shape == "missing":
            content = (draw(st.sampled_from(unindexed)).hex(),)
        elif shape == "many":
            content = tuple(b.hex() for b in draw(st.lists(st.sampled_from(ids), min_size=2, max_size=4)))
        else:
            content = ()
        links = draw(st.sampled_from([1, 1, 1, 2]))
        files.append((Node(f"f{i}", "file", content=content, links=links, inode=i + 1), f"dir/f{i}"))
    linked = frozenset(rel for node, rel in files if node.links > 1 and draw(st.booleans()))
    return files, layout, linked


def locator(layout: dict[bytes, BlobLocation], calls: list[bytes]) -> Callable[[bytes], BlobLocation]:
    def locate(b: bytes) -> BlobLocation:
        calls.append(b)
        loc = layout.get(b)
        if loc is None:
            raise IntegrityError(f"blob {b.hex()} is not in the index", blob_id=b.hex())
        return loc

    return locate


def test_small_files_of_one_pack_share_one_read_sorted_by_offset() -> None:
    layout = {
        bid(1): loc(1, 0, 10),
        bid(2): loc(1, 10, 20),
        bid(3): loc(2, 0, 5),
        bid(4): loc(1, 30, 5),
    }
    files = [
        (Node("c", "file", content=(hexid(4),)), "c"),
        (Node("big", "file", content=(hexid(1), hexid(2))), "big"),
        (Node("a", "file", content=(hexid(1),)), "a"),
        (Node("other", "file", content=(hexid(3),)), "other"),
        (Node("gone", "file", content=(hexid(9),)), "gone"),
        (Node("empty", "file"), "empty"),
        (Node("b", "file", content=(hexid(2),)), "b"),
    ]
    reads = plan_dir(files, locator(layout, []))
    assert [type(r).__name__ for r in reads] == ["FileRead", "Unlocated", "FileRead", "SpanRead", "SpanRead"]
    big, gone, empty, span1, span2 = reads
    assert big == FileRead(files[1][0], "big")
    assert isinstance(gone, Unlocated)
    assert gone.rel == "gone"
    assert gone.error.blob_id == hexid(9)
    assert empty == FileRead(files[5][0], "empty")
    # Pack 1 first (its first file, c, comes before pack 2's), then pack 2.
    assert isinstance(span1, SpanRead)
    assert isinstance(span2, SpanRead)
    assert (span1.pack_id, span1.offset, span1.length) == (bytes([1]) * 32, 0, 35)
    assert [rel for _, _, rel in span1.files] == ["a", "b", "c"]
    assert span1.files[0][0] == ReadRun(bytes([1]) * 32, 0, 10, ((bid(1), layout[bid(1)]),))
    assert (span2.pack_id, span2.offset, span2.length, [rel for _, _, rel in span2.files]) == (
        bytes([2]) * 32,
        0,
        5,
        ["other"],
    )


def test_spans_split_at_a_large_gap_and_at_the_span_limit() -> None:
    mib = 1 << 20
    layout = {
        bid(1): loc(1, 0, 100),
        bid(2): loc(1, 100 + MAX_GAP, 100),  # a gap of exactly MAX_GAP: same span
        bid(3): loc(1, 200 + 2 * MAX_GAP + 1, 100),  # one byte more: a new span
        bid(4): loc(1, 20 * mib, 10 * mib),
        bid(5): loc(1, 30 * mib, 7 * mib),  # would make the span 17 MiB: a new one
    }
    files = [(Node(f"f{i}", "file", content=(hexid(i),)), f"f{i}") for i in range(1, 6)]
    reads = plan_dir(files, layout.__getitem__)
    assert all(isinstance(r, SpanRead) for r in reads)
    assert [[rel for _, _, rel in r.files] for r in reads if isinstance(r, SpanRead)] == [
        ["f1", "f2"],
        ["f3"],
        ["f4"],
        ["f5"],
    ]
    assert 16 * mib == MAX_SPAN


@settings(max_examples=300)
@given(
    case=directories(),
    max_span=st.sampled_from([1, 100, 4000, MAX_SPAN]),
    max_gap=st.sampled_from([0, 10, 1000, MAX_GAP]),
)
def test_plan_dir_properties(
    case: tuple[list[tuple[Node, str]], dict[bytes, BlobLocation], frozenset[str]], max_span: int, max_gap: int
) -> None:
    files, layout, linked = case
    calls: list[bytes] = []
    reads = plan_dir(files, locator(layout, calls), linked=linked, max_span=max_span, max_gap=max_gap)
    wanted = [(n, rel) for n, rel in files if rel not in linked]
    singles = [(n, rel) for n, rel in wanted if len(n.content) == 1]
    # locate: once per single-chunk file, in order, never for the others.
    assert calls == [bytes.fromhex(n.content[0]) for n, _ in singles]

    alone: list[FileRead | Unlocated] = []
    spans: list[SpanRead] = []
    for r in reads:
        if isinstance(r, SpanRead):
            spans.append(r)
        else:
            assert not spans, "files read on their own come before the spans"
            alone.append(r)
    # Every selected file exactly once; a further name of a hardlinked file never.
    seen = [r.rel for r in alone] + [rel for s in spans for _, _, rel in s.files]
    assert sorted(seen) == sorted(rel for _, rel in wanted)
    # Files read on their own keep the directory's order, and are what their chunks say.
    assert [r.rel for r in alone] == [
        rel for n, rel in wanted if len(n.content) != 1 or bytes.fromhex(n.content[0]) not in layout
    ]
    for r in alone:
        if isinstance(r, FileRead):
            assert len(r.node.content) != 1
        else:
            assert isinstance(r, Unlocated)
            assert len(r.node.content) == 1
            assert bytes.fromhex(r.node.content[0]) not in layout
            assert r.error.blob_id == r.node.content[0]

    by_pack: dict[bytes, list[SpanRead]] = {}
    for s in spans:
        by_pack.setdefault(s.pack_id, []).append(s)
        # Each file's own read is its chunk's location, inside the span, in the span's pack.
        offsets = []
        for run, node, _ in s.files:
            chunk = bytes.fromhex(node.content[0])
            where = layout[chunk]
            assert run == ReadRun(s.pack_id, where.offset, where.length, ((chunk, where),))
            assert s.offset <= run.offset
            assert run.offset + run.length <= s.offset + s.length
            offsets.append(run.offset)
        assert offsets == sorted(offsets)
        assert s.offset == s.files[0][0].offset
        assert s.offset + s.length == max(run.offset + run.length for run, _, _ in s.files)
        assert len(s.files) == 1 or s.length <= max_span
        # No gap inside a span is larger than max_gap.
        end = s.files[0][0].offset + s.files[0][0].length
        for run, _, _ in s.files[1:]:
            assert run.offset - end <= max_gap
            end = max(end, run.offset + run.length)
    # Packs in the order their first file appears in the directory.
    located = [layout[bytes.fromhex(n.content[0])].pack_id for n, _ in singles if bytes.fromhex(n.content[0]) in layout]
    assert list(by_pack) == list(dict.fromkeys(located))
    assert [p for p, _ in itertools.groupby(s.pack_id for s in spans)] == list(by_pack)
    for pack_spans in by_pack.values():
        for s1, s2 in itertools.pairwise(pack_spans):
            # Sorted, and apart (blobs of a pack do not overlap), but for one chunk larger than
            # max_span shared by several files: each of them reads it alone.
            assert s1.offset <= s2.offset
            if s1.offset + s1.length > s2.offset:
                assert s2.files[0][0] == s1.files[-1][0]
                assert s2.files[0][0].length > max_span
            # Merged as far as the rules allow: s2's first file could not have joined s1.
            nxt = s2.files[0][0]
            assert nxt.offset - (s1.offset + s1.length) > max_gap or nxt.offset + nxt.length - s1.offset > max_span
