"""--json, --quiet and --verbose on every command: one JSON document on stdout, errors as JSON
lines on stderr with the exit code, nothing but warnings and errors with --quiet, a line per
file with -v."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import pytest

from snapvault.cli.exits import ExitCode
from snapvault.cli.main import cli as root
from snapvault.cli.main import run
from tests.cli.conftest import Cli
from tests.conftest import write


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write(root / "a.txt", "alpha")
    write(root / "sub" / "b.txt", "beta")
    return root


def _leaves(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out += _leaves(command, f"{prefix}{name} ")
        else:
            out.append((prefix + name, command))
    return out


def test_every_command_takes_json_quiet_and_verbose() -> None:
    leaves = _leaves(root)
    assert len(leaves) > 20
    for name, command in leaves:
        flags = {flag for p in command.params for flag in getattr(p, "opts", [])}
        assert {"--json", "-q", "--quiet", "-v", "--verbose"} <= flags, name


def _doc(result: tuple[int, str, str]) -> Any:
    code, out, err = result
    assert code == ExitCode.OK, err
    assert err == ""
    return json.loads(out)  # the whole of stdout is one document


def test_each_reporting_command_prints_one_document(cli: Cli, src: Path, tmp_path: Path) -> None:
    first = _doc(cli("backup", "--json", str(src)))
    assert isinstance(first, dict)
    write(src / "a.txt", "alpha, changed")
    _doc(cli("backup", "--json", str(src)))
    docs: dict[str, Any] = {
        "snapshots": _doc(cli("snapshots", "--json")),
        "ls": _doc(cli("ls", "--json", "latest")),
        "check": _doc(cli("check", "--json")),
        "restore": _doc(cli("restore", "--json", "latest", "--target", str(tmp_path / "out"))),
        "forget": _doc(cli("forget", "--json", "--keep-last", "1", "--dry-run")),
        "prune": _doc(cli("prune", "--json", "--dry-run")),
        "key list": _doc(cli("key", "list", "--json")),
        "stats": _doc(cli("stats", "--json")),
        "policy add": _doc(cli("policy", "add", "p", "-s", str(src), "--keep-last", "3", "--json")),
        "policy remove": _doc(cli("policy", "remove", "p", "--json")),
        "tag": _doc(cli("tag", "--json", "--add", "x", "latest")),
    }
    assert docs["snapshots"][0]["id"] == first["id"]
    assert {e["path"] for e in docs["ls"]} >= {f"{src}/a.txt", f"{src}/sub/b.txt"}
    assert docs["check"]["ok"] is True
    assert docs["restore"]["files"] == 2
    assert len(docs["forget"][0]["remove"]) == 1
    assert docs["prune"]["dry_run"] is True
    assert [k["current"] for k in docs["key list"]] == [True]
    assert docs["policy add"]["saved"] == "p"
    assert docs["policy remove"] == {"removed": "p"}
    assert docs["tag"][0]["tags"] == ["x"]


def test_json_before_the_command_is_the_same_as_after(cli: Cli, src: Path) -> None:
    after = _doc(cli("backup", "--json", str(src)))
    before = _doc(cli("--json", "snapshots"))
    assert [m["id"] for m in before] == [after["id"]]
    assert _doc(cli("--json", "key", "list")) == _doc(cli("key", "list", "--json"))


def test_an_error_with_json_is_a_json_line_with_the_exit_code(cli: Cli, src: Path) -> None:
    code, out, err = cli("restore", "--json", "0000ffff", "--target", "x")
    assert (code, out) == (ExitCode.ERROR, "")
    (line,) = err.splitlines()
    doc = json.loads(line)
    assert (doc["level"], doc["type"], doc["exit_code"]) == ("error", "SnapshotNotFound", 1)
    assert "0000ffff" in doc["message"]

    with cli.monkeypatch.context() as m:
        m.setenv("SNAPVAULT_PASSWORD", "not it")
        code = run(["-r", cli.url, "--json", "snapshots"])
    out, err = cli.capsys.readouterr()
    assert (code, out) == (ExitCode.ERROR, "")
    assert json.loads(err)["type"] == "WrongPassword"


def test_a_usage_error_with_json_is_json_too(cli: Cli) -> None:
    code, out, err = cli("ls", "--json")  # SNAPSHOT missing
    assert (code, out) == (ExitCode.USAGE, "")
    (line,) = err.splitlines()
    doc = json.loads(line)
    assert (doc["level"], doc["exit_code"]) == ("error", 2)
    assert "SNAPSHOT" in doc["message"]


def test_quiet_prints_no_summary_but_keeps_warnings(cli: Cli, src: Path, tmp_path: Path) -> None:
    code, out, err = cli("backup", str(src))
    assert code == ExitCode.OK
    assert "snapshot" in out
    setuid = write(src / "tool", "#!/bin/sh\n")
    os.chmod(setuid, 0o4755)
    assert cli("backup", "-q", str(src)) == (ExitCode.OK, "", "")
    assert cli("--quiet", "check") == (ExitCode.OK, "", "")
    code, out, err = cli("restore", "-q", "latest", "--target", str(tmp_path / "out"))
    assert (code, out) == (ExitCode.OK, "")
    assert err.startswith("warning: setuid/setgid bits dropped from 1 entries")
    # A listing is what was asked for: --quiet keeps it and drops only the count below it.
    code, out, _ = cli("snapshots", "-q")
    assert len(out.splitlines()) == 1 + 2


def test_verbose_names_each_file(cli: Cli, src: Path, tmp_path: Path) -> None:
    code, out, _ = cli("backup", "-v", str(src))
    assert code == ExitCode.OK
    read = sorted(line.split()[1] for line in out.splitlines() if line.startswith("read "))
    assert read == [f"{src}/a.txt", f"{src}/sub/b.txt"]
    write(src / "a.txt", "alpha, changed")
    code, out, _ = cli("backup", "-v", str(src))
    assert [line.split()[1] for line in out.splitlines() if line.startswith(("read ", "unchanged "))] == [
        f"{src}/a.txt"
    ]
    code, out, _ = cli("backup", "-vv", str(src))
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("unchanged ")) == [
        f"{src}/a.txt",
        f"{src}/sub/b.txt",
    ]
    code, out, _ = cli("restore", "--verbose", "latest", "--target", str(tmp_path / "out"))
    *per_file, summary = out.splitlines()
    assert summary.startswith("restored snapshot ")
    restored = sorted(line.split()[1] for line in per_file if line.startswith("restored "))
    assert restored == [os.path.relpath(src / "a.txt", "/"), os.path.relpath(src / "sub" / "b.txt", "/")]
    code, out, _ = cli("check", "-v")
    assert "snapshots: 3" in out.splitlines()


def test_verbose_with_json_keeps_stdout_one_document(cli: Cli, src: Path) -> None:
    code, out, err = cli("backup", "--json", "-v", str(src))
    assert code == ExitCode.OK
    assert json.loads(out)["stats"]["files_new"] == 2
    lines = [json.loads(line) for line in err.splitlines()]
    assert {line["level"] for line in lines} == {"info"}
    assert len(lines) == 2
