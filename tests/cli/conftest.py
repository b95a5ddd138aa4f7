"""The CLI run in this process, for the tests of tests/cli: a fixture and its helper."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli import output
from snapvault.cli.exits import ExitCode
from snapvault.cli.main import run
from tests.conftest import FAST_KDF, PASSWORD


class Cli:
    """The CLI run in this process against one repository, with a clean environment."""

    def __init__(self, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        for name in list(os.environ):
            if name.startswith("SNAPVAULT_"):
                monkeypatch.delenv(name)
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    def __call__(self, *args: str) -> tuple[int, str, str]:
        with self.monkeypatch.context() as m:
            m.setenv("SNAPVAULT_PASSWORD", PASSWORD)
            self.capsys.readouterr()
            code = run(["-r", self.url, *args])
            out, err = self.capsys.readouterr()
        return code, out, err

    def backup(self, *args: str) -> tuple[sv.Repository, sv.Manifest]:
        """Run ``backup --json ARGS``; the repository and the new snapshot."""
        code, out, err = self("backup", "--json", *args)
        assert code == ExitCode.OK, err
        repo = sv.Repository.open(self.url, PASSWORD)
        return repo, repo.resolve(json.loads(out)["id"])


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    return Cli(url, monkeypatch, capsys)


@pytest.fixture(autouse=True)
def _plain_output() -> Iterator[None]:
    """Each test starts and ends with plain output: the --json/--quiet/--verbose settings live
    for one run of the CLI, and a test that calls the exit-code table directly must not see
    the last run's."""
    output.reset()
    yield
    output.reset()
