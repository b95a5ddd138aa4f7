"""``snapvault diff`` and ``snapvault find`` as a user runs them: restic's change letters and
a summary line, the JSON documents parsed and checked against the library, the snapshot
filters, and a bad snapshot reference or time as one line on stderr with the documented exit
code and no traceback."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from tests.cli.test_key_cli import Cli, one_line_error
from tests.conftest import FAST_KDF, PASSWORD, write

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
MTIME = 1_700_000_000


@pytest.fixture
def made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Cli, sv.Repository, Path, sv.Manifest, sv.Manifest]:
    """Two snapshots of one folder (hosts web, then db): a file modified, one removed, one
    added, a directory added, a mode changed."""
    src = tmp_path / "src"
    write(src / "keep.txt", "kept")
    write(src / "mod.txt", "one")
    write(src / "gone.txt", "gone!")
    write(src / "perm.sh", "#!/bin/sh\n", mode=0o644)
    for p in (*src.iterdir(), src):
        os.utime(p, (MTIME, MTIME))
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    engine = sv.Engine(repo)
    first = engine.backup([str(src)], hostname="web", tags=["a"], now=T0)
    write(src / "mod.txt", "one and more")
    (src / "gone.txt").unlink()
    write(src / "new" / "Readme.TXT", "hello")
    os.chmod(src / "perm.sh", 0o755)
    second = engine.backup([str(src)], hostname="db", now=T0 + timedelta(hours=1), full=True)
    return Cli(repo.url, monkeypatch, capsys), repo, src, first, second


def test_diff_prints_restic_lines_and_a_summary(
    made: tuple[Cli, sv.Repository, Path, sv.Manifest, sv.Manifest],
) -> None:
    run, _, src, first, second = made
    code, out, err = run("diff", first.short_id, second.id[:6])
    assert (code, err) == (ExitCode.OK, "")
    *lines, summary = out.splitlines()
    assert [ln for ln in lines if f"{src}/" in ln] == [
        f"U    {src}/",  # its mtime moved: an entry came, another went
        f"-    {src}/gone.txt",
        f"M    {src}/mod.txt",
        f"+    {src}/new/",
        f"+    {src}/new/Readme.TXT",
        f"U    {src}/perm.sh",
    ]
    assert summary.startswith("files: 1 new, 1 removed; dirs: 1 new, 0 removed; others: 0 new, 0 removed; modified: 1,")
    # mod.txt grew by 9 bytes and Readme.TXT is 5; gone.txt had 5.
    assert summary.endswith(", type: 0; 14 B added, 5 B removed")


def test_diff_json_is_one_document(made: tuple[Cli, sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    run, repo, src, first, second = made
    code, out, err = run("diff", "--json", first.id, "latest")
    assert (code, err) == (ExitCode.OK, "")
    doc = json.loads(out)
    assert doc == repo.diff(first, second).to_json()
    ours = [(c["path"], c["kind"], c["type"]) for c in doc["changes"] if c["path"].startswith(f"{src}/")]
    assert ours == [
        (f"{src}/gone.txt", "removed", "file"),
        (f"{src}/mod.txt", "modified", "file"),
        (f"{src}/new", "added", "dir"),
        (f"{src}/new/Readme.TXT", "added", "file"),
        (f"{src}/perm.sh", "metadata", "file"),
    ]
    assert {k: doc["summary"][k] for k in ("files_added", "files_removed", "modified", "bytes_added")} == {
        "files_added": 1,
        "files_removed": 1,
        "modified": 1,
        "bytes_added": 14,
    }


@pytest.mark.parametrize("args", [("diff", "latest", "abcdef0123"), ("diff", "zz", "latest")])
def test_diff_of_a_bad_reference_is_one_line(
    made: tuple[Cli, sv.Repository, Path, sv.Manifest, sv.Manifest], args: tuple[str, ...]
) -> None:
    run = made[0]
    line = one_line_error(run(*args))
    assert "snapshot" in line
    assert "Traceback" not in line


def test_find_prints_id_path_size_and_mtime(made: tuple[Cli, sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    run, _, src, first, second = made
    code, out, err = run("find", "*.txt")
    assert (code, err) == (ExitCode.OK, "")
    stamp = datetime.fromtimestamp(MTIME, UTC).isoformat(timespec="seconds")
    lines = out.splitlines()
    assert lines[:3] == [
        f"{first.short_id}  {src}/gone.txt  5  {stamp}",
        f"{first.short_id}  {src}/keep.txt  4  {stamp}",
        f"{first.short_id}  {src}/mod.txt  3  {stamp}",
    ]
    # Snapshots oldest first; Readme.TXT is no match without -i.
    later = [[second.short_id, f"{src}/{n}"] for n in ("keep.txt", "mod.txt")]
    assert [ln.split("  ")[:2] for ln in lines[3:]] == later
    assert all(re.fullmatch(r"[0-9a-f]{8}  /\S+  \d+  \S+", ln) for ln in lines)


def test_find_filters_and_json(made: tuple[Cli, sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    run, _, src, first, second = made

    def found(*args: str) -> list[tuple[str, str]]:
        code, out, err = run("find", "--json", *args)
        assert (code, err) == (ExitCode.OK, ""), err
        return [(m["snapshot_id"], m["path"]) for m in json.loads(out)]

    readme = (second.id, f"{src}/new/Readme.TXT")
    assert found("readme.txt") == []
    assert found("readme.txt", "-i") == [readme]
    assert found("NEW/*.txt", "--ignore-case") == [readme]
    assert found(f"{src}/*.sh", "--host", "web") == [(first.id, f"{src}/perm.sh")]
    assert found("perm.sh", "--tag", "a") == [(first.id, f"{src}/perm.sh")]
    assert found("perm.sh", "--latest", "1", "--path", str(src)) == [
        (first.id, f"{src}/perm.sh"),  # the newest of each host: both
        (second.id, f"{src}/perm.sh"),
    ]
    assert found("perm.sh", "--policy", "nightly") == []
    assert found("perm.sh", "--snapshot", second.short_id, "-s", "latest") == [(second.id, f"{src}/perm.sh")]
    # The files' mtime is in November 2023.
    assert found(f"{src}/*", "--newer", "2024-01-01", "--snapshot", first.id) == []
    assert len(found(f"{src}/*", "--older", "2024-01-01T00:00:00Z", "--snapshot", first.id)) == 4
    assert len(found(f"{src}/*", "--newer", "2023-11-14T22:13:20+00:00", "-s", first.id)) == 4
    # One entry's whole JSON form.
    code, out, _ = run("find", "--json", "keep.txt", "-s", first.id)
    assert code == ExitCode.OK
    assert json.loads(out) == [
        {
            "snapshot_id": first.id,
            "short_id": first.short_id,
            "path": f"{src}/keep.txt",
            "type": "file",
            "size": 4,
            "mode": os.stat(src / "keep.txt").st_mode & 0o7777,
            "mtime": datetime.fromtimestamp(MTIME, UTC).isoformat(),
            "mtime_ns": MTIME * 10**9,
            "target": None,
            "uid": os.getuid(),
            "gid": os.getgid(),
            "user": json.loads(out)[0]["user"],  # the name this machine has for the uid, if any
            "group": json.loads(out)[0]["group"],
        }
    ]


def test_find_errors(made: tuple[Cli, sv.Repository, Path, sv.Manifest, sv.Manifest]) -> None:
    run = made[0]
    line = one_line_error(run("find", "*", "--snapshot", "abcdef0123"))
    assert "no snapshot matches abcdef0123" in line
    # With --json the line may be a JSON object; either way it is one line, exit code 1.
    code, out, err = run("find", "*", "--json", "--snapshot", "latest", "--host", "nobody")
    assert (code, out, len(err.splitlines())) == (ExitCode.ERROR, "", 1)
    assert "no snapshot matches the filters" in err
    one_line_error(run("find", "*", "--snapshot", "latest", "--latest", "2"))
    code, out, err = run("find", "*", "--newer", "last tuesday")
    assert (code, out) == (ExitCode.USAGE, "")
    assert "'--newer'" in err
    assert "Traceback" not in err
