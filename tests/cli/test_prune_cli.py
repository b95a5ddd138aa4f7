"""``snapvault prune`` and ``forget --prune`` as a user runs them: what goes, per reason, what a
dry run would do, the JSON document, and refusals as one line with exit 1."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from snapvault.retention import KeepLast
from tests.cli.test_key_cli import Cli, one_line_error
from tests.conftest import FAST_KDF, PASSWORD


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    rng = random.Random(5)
    src = tmp_path / "src"
    src.mkdir()
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    policy = sv.Policy(name="p", sources=[str(src)], retention=KeepLast(1))
    repo.save_policy(policy)
    engine = sv.Engine(repo)
    for _ in range(3):
        for i in range(8):
            (src / f"f{i}").write_bytes(rng.randbytes(80_000))
        engine.run_policy(policy)
    return Cli(str(tmp_path / "repo"), monkeypatch, capsys)


def _data(cli: Cli) -> int:
    return sum(p.stat().st_size for p in (Path(cli.url) / "data").rglob("*") if p.is_file())


def test_forget_prune_frees_space_and_a_dry_run_first_changes_nothing(cli: Cli) -> None:
    before = _data(cli)
    code, out, err = cli("forget", "--prune", "--dry-run")
    assert code == ExitCode.OK, err
    assert "would remove" in out
    assert "would be deleted" in out
    assert _data(cli) == before
    code, out, err = cli("forget", "--prune")
    assert code == ExitCode.OK, err
    assert "unused:" in out
    assert "deleted; size" in out
    assert _data(cli) < before
    assert sv.Repository.open(cli.url, PASSWORD).check(read_data=True).ok


def test_prune_json_and_options(cli: Cli) -> None:
    cli("forget")
    code, out, _ = cli("prune", "--json", "--max-repack", "100%", "--max-unused", "0%")
    assert code == ExitCode.OK
    doc = json.loads(out)
    assert doc["deleted"]["packs"] > 0
    assert doc["size_after"] < doc["size_before"]
    assert "bad --max-repack" in one_line_error(cli("prune", "--max-repack", "lots"))


def test_prune_refuses_with_an_unreadable_snapshot(cli: Cli) -> None:
    (Path(cli.url) / "snapshots" / ("cd" * 32)).write_bytes(b"junk")
    assert "cannot be read" in one_line_error(cli("prune"))
