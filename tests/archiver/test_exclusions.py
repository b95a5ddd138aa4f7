"""Exclusion rules besides patterns, through the library: what a snapshot records with
``exclude_if_present``, ``exclude_caches``, ``exclude_larger_than``, exclude-file patterns and
``one_file_system``, that a Policy stores them and old stored policies still load.

The rules follow restic: a tagged directory keeps the tag file and nothing else, sizes are
1024-based, a mount point is recorded as an empty directory, and excluded entries are not
errors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.pipeline.patterns import CACHEDIR_SIGNATURE, parse_size, pattern_lines
from tests.conftest import write


def _listing(repo: sv.Repository, m: sv.Manifest, source: Path) -> dict[str, str]:
    """Every path the snapshot holds below ``source``, relative to it, with its node type."""
    tree = m.tree
    for part in source.parts[1:]:
        tree = next(n for n in repo.read_tree(tree) if n.name == part).subtree
        assert tree is not None
    out: dict[str, str] = {}
    stack = [("", tree)]
    while stack:
        prefix, t = stack.pop()
        for n in repo.read_tree(t):
            rel = f"{prefix}{n.name}"
            out[rel] = n.type
            if n.type == "dir":
                assert n.subtree is not None
                stack.append((rel + "/", n.subtree))
    return out


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A tree with a tagged directory, a cache, a big file and plain files."""
    root = tmp_path / "src"
    write(root / "keep.txt", "keep")
    write(root / "big.bin", b"x" * 2048)
    write(root / "edge.bin", b"y" * 1024)
    write(root / "tagged" / ".nobackup", "")
    write(root / "tagged" / "secret.txt", "secret")
    write(root / "tagged" / "deep" / "more.txt", "more")
    write(root / "cache" / "CACHEDIR.TAG", CACHEDIR_SIGNATURE + b"\n# a cache\n")
    write(root / "cache" / "blob", "cached")
    write(root / "fakecache" / "CACHEDIR.TAG", "not the signature")
    write(root / "fakecache" / "data", "data")
    return root


def test_no_rules_record_everything(memory_repo: sv.Repository, src: Path) -> None:
    m = sv.Engine(memory_repo).backup([src])
    got = _listing(memory_repo, m, src)
    assert {"tagged/secret.txt", "tagged/deep/more.txt", "cache/blob", "big.bin"} <= set(got)


def test_exclude_if_present_keeps_the_directory_and_its_tag_only(memory_repo: sv.Repository, src: Path) -> None:
    m = sv.Engine(memory_repo).backup([src], exclude_if_present=[".nobackup"])
    got = _listing(memory_repo, m, src)
    assert got["tagged"] == "dir"
    assert [p for p in got if p.startswith("tagged/")] == ["tagged/.nobackup"]
    assert "cache/blob" in got
    assert "keep.txt" in got
    assert m.errors == []
    # Other rules are not recorded in the manifest (as restic); patterns are.
    assert m.excludes == []


def test_exclude_if_present_with_a_header_needs_the_header(memory_repo: sv.Repository, src: Path) -> None:
    write(src / "tagged" / ".nobackup", "skip me please")
    engine = sv.Engine(memory_repo)
    kept = _listing(memory_repo, engine.backup([src], exclude_if_present=[".nobackup:keep"]), src)
    assert "tagged/secret.txt" in kept
    left = _listing(memory_repo, engine.backup([src], exclude_if_present=[".nobackup:skip me"]), src)
    assert "tagged/secret.txt" not in left
    assert "tagged/.nobackup" in left


def test_a_tagged_source_keeps_only_its_tag(memory_repo: sv.Repository, src: Path) -> None:
    m = sv.Engine(memory_repo).backup([src / "tagged"], exclude_if_present=[".nobackup"])
    assert _listing(memory_repo, m, src / "tagged") == {".nobackup": "file"}


def test_exclude_caches_needs_the_signature(memory_repo: sv.Repository, src: Path) -> None:
    m = sv.Engine(memory_repo).backup([src], exclude_caches=True)
    got = _listing(memory_repo, m, src)
    assert [p for p in got if p.startswith("cache/")] == ["cache/CACHEDIR.TAG"]
    assert "fakecache/data" in got
    assert "tagged/secret.txt" in got


def test_a_tag_added_later_drops_what_the_parent_held(memory_repo: sv.Repository, src: Path) -> None:
    engine = sv.Engine(memory_repo)
    engine.backup([src])
    write(src / "keep" / "CACHEDIR.TAG", CACHEDIR_SIGNATURE)
    write(src / "keep" / "x", "x")
    (src / "tagged" / ".nobackup").unlink()
    m = engine.backup([src], exclude_caches=True)
    got = _listing(memory_repo, m, src)
    assert "keep/x" not in got
    assert "cache/blob" not in got
    assert "tagged/secret.txt" in got
    assert m.stats.files_removed == 2  # cache/blob and the removed tag, both in the parent


def test_exclude_larger_than(memory_repo: sv.Repository, src: Path) -> None:
    m = sv.Engine(memory_repo).backup([src], exclude_larger_than="1K")
    got = _listing(memory_repo, m, src)
    assert "big.bin" not in got
    assert "edge.bin" in got  # exactly the limit: not larger
    assert m.errors == []
    # A source file over the limit is left out as well.
    only = sv.Engine(memory_repo).backup([src / "big.bin"], exclude_larger_than=100)
    assert _listing(memory_repo, only, src) == {}


@pytest.mark.parametrize("bad", ["1.5G", "10MB", "-1", "", -1, True])
def test_a_bad_size_writes_nothing(memory_repo: sv.Repository, src: Path, bad: object) -> None:
    with pytest.raises(sv.ConfigError):
        sv.Engine(memory_repo).backup([src], exclude_larger_than=bad)  # type: ignore[arg-type]
    assert memory_repo.snapshots() == []


@pytest.mark.parametrize("bad", ["", "a/b", "..", ":header"])
def test_a_bad_tag_name_writes_nothing(memory_repo: sv.Repository, src: Path, bad: str) -> None:
    with pytest.raises(sv.ConfigError):
        sv.Engine(memory_repo).backup([src], exclude_if_present=[bad])
    assert memory_repo.snapshots() == []


def test_sizes_are_1024_based_as_restic() -> None:
    assert [parse_size(s) for s in ("0", "7", "2k", "2K", "3m", "1g", "1T", " 5M ")] == [
        0,
        7,
        2048,
        2048,
        3 << 20,
        1 << 30,
        1 << 40,
        5 << 20,
    ]
    assert parse_size(10) == 10


def test_exclude_file_lines_become_patterns(memory_repo: sv.Repository, src: Path) -> None:
    text = "# build output\n\n*.bin\n  tagged/  \n#cache\n"
    patterns = pattern_lines(text)
    assert patterns == ["*.bin", "tagged/"]
    m = sv.Engine(memory_repo).backup([src], exclude=patterns)
    got = _listing(memory_repo, m, src)
    assert not any(p.endswith(".bin") or p.startswith("tagged") for p in got)
    assert m.excludes == ["*.bin", "tagged/"]


def _mount_point() -> Path | None:
    """A directory below /dev on another file system than /dev (devpts) that holds something
    other than regular files, if this machine has one."""
    try:
        dev = os.lstat("/dev").st_dev
        names = sorted(os.listdir("/dev"))
    except OSError:
        return None
    for name in names:
        p = Path("/dev", name)
        try:
            if p.is_symlink() or not p.is_dir() or p.lstat().st_dev == dev:
                continue
            if any(not e.is_file(follow_symlinks=False) for e in os.scandir(p)):
                return p
        except OSError:
            continue
    return None


def test_one_file_system_records_mount_points_empty(memory_repo: sv.Repository) -> None:
    mount = _mount_point()
    if mount is None:
        pytest.skip("no mount point below /dev on this machine")
    # exclude_larger_than=0 leaves out every non-empty regular file: nothing under /dev is read.
    engine = sv.Engine(memory_repo)
    m = engine.backup(["/dev"], one_file_system=True, exclude_larger_than=0)
    got = _listing(memory_repo, m, Path("/dev"))
    assert got[mount.name] == "dir"
    assert not any(p.startswith(f"{mount.name}/") for p in got)
    # Without the rule the walk enters it (so the assertion above can fail) ...
    whole = engine.backup(["/dev"], exclude_larger_than=0, exclude=["/*/", f"!/{mount.name}/"])
    assert any(p.startswith(f"{mount.name}/") for p in _listing(memory_repo, whole, Path("/dev")))
    # ... and a mount point given as the source is its own file system: it is read.
    inner = engine.backup([mount], one_file_system=True, exclude_larger_than=0)
    assert _listing(memory_repo, inner, mount)


def test_policy_stores_the_rules_and_old_records_still_load(local_repo: sv.Repository, src: Path) -> None:
    pol = sv.Policy(
        name="ex",
        sources=[str(src)],
        exclude_if_present=[".nobackup", "TAG:head"],
        exclude_caches=True,
        exclude_larger_than="1K",
        one_file_system=True,
    )
    assert pol.exclude_larger_than == 1024
    local_repo.save_policy(pol)
    assert local_repo.load_policy("ex") == pol
    assert sv.Policy.from_json(pol.to_json()) == pol
    # A policy that uses none of them is written as before, so older versions read it.
    plain = sv.Policy(name="plain", sources=[str(src)])
    assert not {"exclude_if_present", "exclude_caches", "exclude_larger_than", "one_file_system"} & set(
        json.loads(plain.to_json())
    )
    old = {"name": "old", "sources": [str(src)], "exclude": ["*.tmp"], "backup_type": "full"}
    loaded = sv.Policy.from_json(json.dumps(old))
    assert (loaded.exclude_if_present, loaded.exclude_caches, loaded.exclude_larger_than) == ([], False, None)
    assert loaded.one_file_system is False
    with pytest.raises(sv.ConfigError, match="exclude_larger_than"):
        sv.Policy(name="bad", sources=[str(src)], exclude_larger_than="lots")
    with pytest.raises(sv.ConfigError, match="exclude_if_present"):
        sv.Policy(name="bad", sources=[str(src)], exclude_if_present=["a/b"])


def test_run_policy_applies_the_rules(memory_repo: sv.Repository, src: Path) -> None:
    pol = sv.Policy(name="ex", sources=[str(src)], exclude_if_present=[".nobackup"], exclude_larger_than=1024)
    m = sv.Engine(memory_repo).run_policy(pol)
    got = _listing(memory_repo, m, src)
    assert "tagged/secret.txt" not in got
    assert "big.bin" not in got
