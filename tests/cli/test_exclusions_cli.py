"""``backup`` and ``policy add`` with --exclude-if-present, --exclude-caches,
--exclude-larger-than, --exclude-file and --one-file-system: what the snapshot holds, what the
stored policy says, and the one-line error of a bad value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from snapvault.pipeline.patterns import CACHEDIR_SIGNATURE
from tests.archiver.test_exclusions import _listing, _mount_point
from tests.cli.conftest import Cli
from tests.conftest import PASSWORD, write


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write(root / "keep.txt", "keep")
    write(root / "big.bin", b"x" * 3000)
    write(root / "tagged" / ".nobackup", "")
    write(root / "tagged" / "secret.txt", "secret")
    write(root / "cache" / "CACHEDIR.TAG", CACHEDIR_SIGNATURE)
    write(root / "cache" / "blob", "cached")
    write(root / "notes.tmp", "tmp")
    return root


def test_exclude_if_present(cli: Cli, src: Path) -> None:
    repo, m = cli.backup(str(src), "--exclude-if-present", ".nobackup", "--exclude-if-present", "OTHER:x")
    got = _listing(repo, m, src)
    assert [p for p in got if p.startswith("tagged")] == ["tagged", "tagged/.nobackup"]
    assert "cache/blob" in got


def test_exclude_caches(cli: Cli, src: Path) -> None:
    repo, m = cli.backup(str(src), "--exclude-caches")
    got = _listing(repo, m, src)
    assert [p for p in got if p.startswith("cache")] == ["cache", "cache/CACHEDIR.TAG"]
    assert "tagged/secret.txt" in got


def test_exclude_larger_than(cli: Cli, src: Path) -> None:
    repo, m = cli.backup(str(src), "--exclude-larger-than", "2k")
    got = _listing(repo, m, src)
    assert "big.bin" not in got
    assert "keep.txt" in got
    assert m.errors == []


def test_exclude_file(cli: Cli, src: Path, tmp_path: Path) -> None:
    one = write(tmp_path / "one.txt", "# temporary files\n*.tmp\n\n")
    two = write(tmp_path / "two.txt", "big.bin\n")
    repo, m = cli.backup(str(src), "-e", "cache/", "--exclude-file", str(one), "--exclude-file", str(two))
    got = _listing(repo, m, src)
    assert not {"notes.tmp", "big.bin", "cache"} & set(got)
    assert "keep.txt" in got
    assert m.excludes == ["cache/", "*.tmp", "big.bin"]


def test_one_file_system(cli: Cli) -> None:
    mount = _mount_point()
    if mount is None:
        pytest.skip("no mount point below /dev on this machine")
    # --exclude-larger-than 0: no regular file under /dev is read.
    repo, m = cli.backup("/dev", "-x", "--exclude-larger-than", "0")
    got = _listing(repo, m, Path("/dev"))
    assert got[mount.name] == "dir"
    assert not any(p.startswith(f"{mount.name}/") for p in got)


def test_bad_values_are_one_line_errors_and_write_nothing(cli: Cli, src: Path, tmp_path: Path) -> None:
    for args in (
        ("--exclude-larger-than", "lots"),
        ("--exclude-if-present", "a/b"),
        ("--exclude-file", str(tmp_path / "missing.txt")),
    ):
        code, _, err = cli("backup", str(src), *args)
        assert code == ExitCode.ERROR, (args, err)
        assert err.startswith("snapvault: error: ")
        assert len(err.strip().splitlines()) == 1
    assert sv.Repository.open(cli.url, PASSWORD).snapshots() == []


def test_policy_add_stores_the_rules(cli: Cli, src: Path, tmp_path: Path) -> None:
    patterns = write(tmp_path / "ex.txt", "# build\n*.tmp\nbig.bin\n")
    code, _, err = cli(
        "policy", "add", "p", "--source", str(src), "-e", "cache/", "--exclude-file", str(patterns),
        "--exclude-if-present", ".nobackup", "--exclude-caches", "--exclude-larger-than", "10M", "-x",
    )  # fmt: skip
    assert code == ExitCode.OK, err
    code, out, err = cli("policy", "show", "p")
    assert code == ExitCode.OK, err
    shown = json.loads(out)
    # The exclude file's lines are stored, not its path: the policy must not depend on it.
    assert shown["exclude"] == ["cache/", "*.tmp", "big.bin"]
    assert shown["exclude_if_present"] == [".nobackup"]
    assert shown["exclude_caches"] is True
    assert shown["exclude_larger_than"] == 10 << 20
    assert shown["one_file_system"] is True
    code, _, err = cli("policy", "add", "q", "--source", str(src), "--exclude-larger-than", "big")
    assert code == ExitCode.ERROR
    assert "exclude_larger_than" in err
