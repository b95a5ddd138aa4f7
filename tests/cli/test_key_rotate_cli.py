"""``snapvault key rotate [--rewrite] [--force]``: what it prints, what it refuses, and that the
repository still opens, checks and restores with the same password afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from tests.cli.test_key_cli import SECOND, Cli, one_line_error
from tests.conftest import FAST_KDF, PASSWORD


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"kept across the rotation" * 1000)
    sv.Engine(repo).backup([str(tmp_path / "src")])
    return Cli(str(tmp_path / "repo"), monkeypatch, capsys)


def test_rotate_then_rewrite(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("key", "rotate")
    assert code == ExitCode.OK
    assert "key rotated" in out
    code, out, err = cli("key", "rotate", "--rewrite")
    assert code == ExitCode.OK, err
    assert "snapshot(s) renamed" in out
    assert "is now" in out
    assert "opens nothing" in out
    repo = sv.Repository.open(cli.url, PASSWORD)
    assert repo.master_keys.retired_keys == ()
    assert repo.check(read_data=True).ok
    code, _, _ = cli("restore", "latest", "--target", str(tmp_path / "out"))
    assert code == ExitCode.OK


def test_rotate_refuses_to_drop_other_key_files_without_force(cli: Cli) -> None:
    sv.Repository.open(cli.url, PASSWORD).add_key(SECOND)
    assert "--force" in one_line_error(cli("key", "rotate"))
    code, _, err = cli("key", "rotate", "--force")
    assert code == ExitCode.OK, err
    assert "wrong password" in one_line_error(cli("snapshots", password=SECOND))
