"""gitignore-style include/exclude patterns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapvault.errors import ConfigError
from snapvault.pipeline.patterns import PathFilter

rel_paths = st.lists(st.text(alphabet="abcxyz._-", min_size=1, max_size=6), min_size=1, max_size=4).map("/".join)


def test_no_patterns_selects_everything() -> None:
    f = PathFilter()
    assert f.selects_all
    assert not f.has_include
    for rel, is_dir in [("a", False), ("a", True), ("x/y/z.tmp", False), (".git", True)]:
        assert not f.excluded(rel, is_dir)
        assert f.included(rel, is_dir)


def test_blank_patterns_are_ignored() -> None:
    f = PathFilter(include=["", "   "], exclude=["\t", ""])
    assert f.selects_all
    assert not f.has_include


def test_any_pattern_turns_off_selects_all() -> None:
    assert not PathFilter(exclude=["*.tmp"]).selects_all
    assert not PathFilter(include=["docs/"]).selects_all
    assert PathFilter(include=["docs/"]).has_include
    assert not PathFilter(exclude=["docs/"]).has_include


@given(rel=rel_paths, is_dir=st.booleans())
def test_without_patterns_nothing_is_excluded(rel: str, is_dir: bool) -> None:
    f = PathFilter(include=iter(()), exclude=iter(()))
    assert not f.excluded(rel, is_dir)
    assert f.included(rel, is_dir)


@pytest.mark.parametrize(
    ("rel", "is_dir", "expected"),
    [
        ("a.tmp", False, True),
        ("x/a.tmp", False, True),
        ("x/y/z/a.tmp", False, True),
        ("dir.tmp", True, True),
        (".tmp", False, True),
        ("a.tmpx", False, False),
        ("a.tmp.bak", False, False),
        ("tmp", False, False),
        ("x/tmp/a", False, False),
    ],
)
def test_star_suffix_matches_at_any_depth(rel: str, is_dir: bool, expected: bool) -> None:
    assert PathFilter(exclude=["*.tmp"]).excluded(rel, is_dir) is expected


@pytest.mark.parametrize(
    ("rel", "is_dir", "expected"),
    [
        ("build", True, True),
        ("build/out.o", False, True),
        ("build/sub/deep/x", False, True),
        ("build/sub", True, True),
        ("src/build", True, True),  # unanchored: at any depth
        ("src/build/x.o", False, True),
        ("build", False, False),  # a file called build is not the directory
        ("builder", True, False),
        ("rebuild", True, False),
        ("src/builds/x", False, False),
    ],
)
def test_directory_pattern_excludes_the_directory_and_its_contents(rel: str, is_dir: bool, expected: bool) -> None:
    assert PathFilter(exclude=["build/"]).excluded(rel, is_dir) is expected


@pytest.mark.parametrize(
    ("rel", "is_dir", "expected"),
    [
        ("top", False, True),
        ("top", True, True),
        ("top/inner.txt", False, True),
        ("a/top", False, False),
        ("a/top", True, False),
        ("a/b/top/c", False, False),
        ("topper", False, False),
    ],
)
def test_leading_slash_anchors_to_the_root(rel: str, is_dir: bool, expected: bool) -> None:
    assert PathFilter(exclude=["/top"]).excluded(rel, is_dir) is expected


@pytest.mark.parametrize(
    ("rel", "expected"),
    [("keep.tmp", False), ("a/keep.tmp", False), ("other.tmp", True), ("a/other.tmp", True), ("keep.txt", False)],
)
def test_negation_re_includes(rel: str, expected: bool) -> None:
    assert PathFilter(exclude=["*.tmp", "!keep.tmp"]).excluded(rel, False) is expected


def test_later_patterns_win() -> None:
    # Negation first, then the broad pattern: the broad pattern has the last word.
    f = PathFilter(exclude=["!keep.tmp", "*.tmp"])
    assert f.excluded("keep.tmp", False)


@pytest.mark.parametrize(
    ("pattern", "rel", "expected"),
    [
        ("docs/*.md", "docs/a.md", True),
        ("docs/*.md", "docs/sub/a.md", False),  # * stops at /
        ("docs/*.md", "x/docs/a.md", False),  # a slash in the middle anchors
        ("docs/**/*.md", "docs/sub/deep/a.md", True),  # ** crosses /
        ("docs/**/*.md", "docs/a.md", True),
        ("**/cache", "a/b/cache", True),
        ("**/cache", "cache", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "c/a/x/b", False),
        ("?.c", "x.c", True),
        ("?.c", "xy.c", False),
        ("[ab].c", "a.c", True),
        ("[ab].c", "c.c", False),
        ("# comment", "# comment", False),
        ("\\#literal", "#literal", True),
    ],
)
def test_glob_semantics(pattern: str, rel: str, expected: bool) -> None:
    assert PathFilter(exclude=[pattern]).excluded(rel, False) is expected


@pytest.mark.parametrize(
    ("rel", "is_dir", "expected"),
    [
        ("docs", True, True),
        ("docs/a.md", False, True),
        ("docs/sub/b.png", False, True),
        ("docs", False, False),
        ("src/a.py", False, False),
        ("README.md", False, False),
        ("sub/docs", True, True),
    ],
)
def test_include_filters(rel: str, is_dir: bool, expected: bool) -> None:
    f = PathFilter(include=["docs/"])
    assert f.included(rel, is_dir) is expected
    # Include patterns never exclude anything by themselves.
    assert not f.excluded(rel, is_dir)


def test_include_and_exclude_together() -> None:
    f = PathFilter(include=["*.py", "docs/"], exclude=["test_*", "docs/drafts/"])
    assert f.included("src/main.py", False)
    assert f.included("tests/test_main.py", False)
    assert f.excluded("tests/test_main.py", False)
    assert f.included("docs/drafts/x.md", False)
    assert f.excluded("docs/drafts/x.md", False)
    assert not f.included("setup.cfg", False)
    assert not f.excluded("setup.cfg", False)


@pytest.mark.parametrize("pattern", ["!", "\\"])
@pytest.mark.parametrize("kind", ["include", "exclude"])
def test_invalid_patterns_raise_config_error(pattern: str, kind: str) -> None:
    with pytest.raises(ConfigError):
        PathFilter(**{kind: [pattern]})


@pytest.mark.parametrize("kind", ["include", "exclude"])
def test_invalid_character_range_raises_config_error(kind: str) -> None:
    # "[z-a]" compiles to a bad regex; the re.error must surface as ConfigError too.
    with pytest.raises(ConfigError):
        PathFilter(**{kind: ["[z-a]"]})
