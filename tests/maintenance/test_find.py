"""``Repository.find`` on real backups: globs on names and on paths (anchored, trailing
components, ``**``, directories only), case-insensitive matching, the snapshot filters the
other commands take, modification-time bounds, a root-anchored pattern that reads no directory
below which nothing can match, and typed errors for bad arguments."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.maintenance.find import FindMatch, FindPattern, find_in_snapshots
from snapvault.pipeline.tree import Node
from tests.conftest import tree_at, write

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
OLD = datetime(2024, 1, 1, tzinfo=UTC)
NEW = datetime(2025, 1, 1, tzinfo=UTC)


class CountingReader:
    """The repository's trees, recording the ID of each tree read."""

    def __init__(self, repo: sv.Repository) -> None:
        self.repo = repo
        self.read: list[str] = []

    def iter_tree(self, tree_id: str) -> Iterator[Node]:
        self.read.append(tree_id)
        return self.repo.iter_tree(tree_id)


@pytest.fixture
def made(local_repo: sv.Repository, tmp_path: Path) -> tuple[sv.Repository, Path, dict[str, sv.Manifest]]:
    """Three snapshots: ``web1`` (host web, tag a), ``db`` (host db, tag b), then ``web2``
    (host web, tags a and b) after ``new.md`` was added. Every entry has mtime OLD but
    ``docs/a.md`` and ``new.md``, which have NEW."""
    src = tmp_path / "src"
    for rel in ("docs/a.md", "docs/B.MD", "docs/sub/c.md", "Docs2/readme.md", "code/x.py", "notes.txt"):
        write(src / rel, rel)
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (OLD.timestamp(),) * 2)
    os.utime(src / "docs" / "a.md", (NEW.timestamp(),) * 2)
    engine = sv.Engine(local_repo)
    out = {
        "web1": engine.backup([str(src)], hostname="web", tags=["a"], now=T0),
        "db": engine.backup([str(src)], hostname="db", tags=["b"], now=T0 + timedelta(hours=1)),
    }
    write(src / "new.md", "new")
    os.utime(src / "new.md", (NEW.timestamp(),) * 2)
    out["web2"] = engine.backup([str(src)], hostname="web", tags=["a", "b"], now=T0 + timedelta(hours=2))
    return local_repo, src, out


def _found(matches: Iterable[FindMatch], src: Path) -> list[tuple[str, str]]:
    """(short snapshot ID, path below ``src``) of each match."""
    top = f"{src}/"
    return [(m.short_id, m.path.removeprefix(top)) for m in matches]


def test_a_name_glob_searches_every_snapshot_oldest_first(
    made: tuple[sv.Repository, Path, dict[str, sv.Manifest]],
) -> None:
    repo, src, s = made
    w1, db, w2 = (s[k].short_id for k in ("web1", "db", "web2"))
    mds = ["Docs2/readme.md", "docs/a.md", "docs/sub/c.md"]
    assert _found(repo.find("*.md"), src) == [(w1, p) for p in mds] + [(db, p) for p in mds] + [
        (w2, p) for p in [*mds, "new.md"]
    ]
    # The node comes along: a file's size and type, a directory's subtree.
    [match] = repo.find("a.md", snapshots=[s["web1"].id])
    assert (match.path, match.node.type, match.node.size) == (f"{src}/docs/a.md", "file", len("docs/a.md"))
    assert match.snapshot_id == s["web1"].id
    [docs] = repo.find("docs", snapshots=["latest"])
    assert docs.node.type == "dir"
    assert docs.node.subtree == tree_at(repo, s["web2"], src / "docs")


def test_case_insensitive(made: tuple[sv.Repository, Path, dict[str, sv.Manifest]]) -> None:
    repo, src, s = made
    only = [s["web1"].id]
    assert [p for _, p in _found(repo.find("*.MD", snapshots=only), src)] == ["docs/B.MD"]
    assert [p for _, p in _found(repo.find("*.MD", ignore_case=True, snapshots=only), src)] == [
        "Docs2/readme.md",
        "docs/B.MD",
        "docs/a.md",
        "docs/sub/c.md",
    ]
    assert [p for _, p in _found(repo.find("DOCS/*.md", ignore_case=True, snapshots=only), src)] == [
        "docs/B.MD",
        "docs/a.md",
    ]
    assert [p for _, p in _found(repo.find(f"{src}/DOCS/a.*".upper(), ignore_case=True, snapshots=only), src)] == [
        "docs/a.md"
    ]


def test_path_globs(made: tuple[sv.Repository, Path, dict[str, sv.Manifest]]) -> None:
    repo, src, s = made

    def paths(pattern: str) -> list[str]:
        return [p for _, p in _found(repo.find(pattern, snapshots=[s["web1"].id]), src)]

    # With '/', the pattern matches the path's last components; '*' does not cross '/'.
    assert paths("docs/*.md") == ["docs/a.md"]
    assert paths("docs/*") == ["docs/B.MD", "docs/a.md", "docs/sub"]
    assert paths("docs/**/*.md") == ["docs/a.md", "docs/sub/c.md"]
    assert paths("src/*/x.py") == ["code/x.py"]
    # A leading '/' anchors it at the root of the snapshot (whose paths are absolute).
    assert paths(f"{src}/docs/*.md") == ["docs/a.md"]
    assert paths("/docs/*.md") == []
    assert paths(f"{src}/**/c.md") == ["docs/sub/c.md"]
    # A trailing '/' matches directories only.
    assert paths("docs*/") == ["docs"]
    assert paths("sub/") == ["docs/sub"]
    assert paths("x.py/") == []


def test_an_anchored_pattern_reads_only_where_a_match_can_lie(
    made: tuple[sv.Repository, Path, dict[str, sv.Manifest]],
) -> None:
    repo, src, s = made
    m = s["web1"]
    reader = CountingReader(repo)
    found = list(find_in_snapshots(reader, [m], f"{src}/docs/*.md"))
    assert [f.path for f in found] == [f"{src}/docs/a.md"]
    assert tree_at(repo, m, src / "docs") in reader.read
    unread = [tree_at(repo, m, src / d) for d in ("code", "Docs2", "docs/sub")]
    assert not set(unread) & set(reader.read)
    # Case-insensitive, the same holds (Docs2 is no match for DOCS).
    reader.read.clear()
    assert len(list(find_in_snapshots(reader, [m], f"{src}/DOCS/*".upper(), ignore_case=True))) == 3
    assert not {unread[0], unread[1]} & set(reader.read)
    # An unanchored pattern reads everything.
    reader.read.clear()
    assert len(list(find_in_snapshots(reader, [m], "docs/*.md"))) == 1
    assert set(unread) <= set(reader.read)
    # A start the snapshot does not have matches nothing, and is no error.
    assert list(find_in_snapshots(reader, [m], f"{src}/nowhere/*.md")) == []
    assert list(find_in_snapshots(reader, [m], f"{src}/notes.txt/x")) == []


def test_snapshot_filters(made: tuple[sv.Repository, Path, dict[str, sv.Manifest]]) -> None:
    repo, src, s = made

    def snaps(**kw: object) -> list[str]:
        return list(dict.fromkeys(m.snapshot_id for m in repo.find("notes.txt", **kw)))  # type: ignore[arg-type]

    ids = {k: m.id for k, m in s.items()}
    assert snaps() == [ids["web1"], ids["db"], ids["web2"]]
    assert snaps(hosts=["db"]) == [ids["db"]]
    assert snaps(tags=["a,b"]) == [ids["web2"]]
    assert snaps(tags=["b"]) == [ids["db"], ids["web2"]]
    assert snaps(paths=[str(src)], hosts=["web"]) == [ids["web1"], ids["web2"]]
    assert snaps(paths=["/no/such/dir"]) == []
    assert snaps(latest=1) == [ids["db"], ids["web2"]]  # the newest of each host
    assert snaps(hosts=["web"], latest=1) == [ids["web2"]]
    # Named snapshots: prefixes, manifests and 'latest' (the newest the filters select), each
    # once, oldest first.
    assert snaps(snapshots=[ids["web2"][:6], s["web1"], ids["web1"]]) == [ids["web1"], ids["web2"]]
    assert snaps(snapshots=["latest"], hosts=["db"]) == [ids["db"]]
    assert snaps(policy="nightly") == []


def test_modification_time_bounds(made: tuple[sv.Repository, Path, dict[str, sv.Manifest]]) -> None:
    repo, src, s = made
    only = [s["web2"].id]
    assert [p for _, p in _found(repo.find("*.md", newer=NEW, snapshots=only), src)] == ["docs/a.md", "new.md"]
    assert [p for _, p in _found(repo.find("*.md", older=NEW, snapshots=only), src)] == [
        "Docs2/readme.md",
        "docs/sub/c.md",
    ]
    # At or after newer, before older: the two bounds split the entries between them.
    after = NEW + timedelta(microseconds=1)
    assert list(repo.find("*.md", newer=NEW, older=after, snapshots=only)) == list(
        repo.find("*.md", newer=NEW, snapshots=only)
    )
    assert list(repo.find("*.md", newer=after, snapshots=only)) == []


def test_bad_arguments_raise_typed_errors_before_any_walk(
    made: tuple[sv.Repository, Path, dict[str, sv.Manifest]],
) -> None:
    repo, _, s = made
    with pytest.raises(sv.SnapshotNotFound, match="no snapshot matches"):
        repo.find("*", snapshots=["0000" if not s["web1"].id.startswith("0000") else "1111"])
    with pytest.raises(sv.SnapshotNotFound, match="no snapshot matches the filters"):
        repo.find("*", snapshots=["latest"], hosts=["nobody"])
    with pytest.raises(sv.ConfigError, match="must name something"):
        repo.find("/")
    with pytest.raises(sv.ConfigError, match="timezone-aware"):
        repo.find("*", newer=datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(sv.ConfigError, match="latest"):
        repo.find("*", snapshots=["latest"], latest=2)
    with pytest.raises(sv.ConfigError, match="list"):
        repo.find("*", snapshots="latest")
    with pytest.raises(sv.ConfigError, match="absolute"):
        repo.find("*", paths=["relative/dir"])


@pytest.mark.parametrize(
    ("pattern", "path", "matched"),
    [
        ("*.txt", "a/b/c.txt", True),
        ("*.txt", "a/b.txt/c", False),  # the name, not a directory above it
        ("b/*.txt", "a/b/c.txt", True),
        ("a/*.txt", "a/b/c.txt", False),  # '*' stops at '/'
        ("a/**/c.txt", "a/c.txt", True),  # '**' is zero or more components
        ("a/**/c.txt", "x/a/b/b/c.txt", True),
        ("/a/**", "a/b/c.txt", True),
        ("/a/**/b/**/c.txt", "a/b/x/b/y/c.txt", True),
        ("/b/**", "a/b/c.txt", False),
        ("/a/b", "a/b/c.txt", False),
        ("c.tx?", "c.txt", True),
        ("[ab].txt", "x/b.txt", True),
        ("[!ab].txt", "x/b.txt", False),
    ],
)
def test_pattern_rules(pattern: str, path: str, matched: bool) -> None:
    assert FindPattern(pattern).matches(path, Node(name=path.rsplit("/", 1)[-1], type="file")) is matched
