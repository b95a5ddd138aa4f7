"""The CLI as a user runs it: real subprocesses, real files, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write

PASSWORD = "cli password"


def run(
    *args: str, env: dict[str, str] | None = None, password: str | None = PASSWORD, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPVAULT_")}
    if password is not None:
        full_env["SNAPVAULT_PASSWORD"] = password
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "snapvault.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("snapvault: error: ")
    return lines[0]


@pytest.fixture
def repo_url(tmp_path: Path) -> str:
    url = str(tmp_path / "repo")
    proc = run("-r", url, "init")
    assert proc.returncode == 0, proc.stderr
    return url


def test_backup_snapshots_ls_restore_check(repo_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.md", "alpha")
    write(src / "sub" / "b.txt", "beta")
    proc = run("-r", repo_url, "backup", str(src), "--tag", "docs", "--exclude", "*.tmp", "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["tags"] == ["docs"]
    assert manifest["stats"]["files_new"] == 2

    listing = json.loads(run("-r", repo_url, "snapshots", "--json").stdout)
    assert [s["id"] for s in listing] == [manifest["id"]]
    assert {"id", "time", "paths", "tags"} <= set(listing[0])
    assert listing[0]["paths"] == [str(src)]

    ls = run("-r", repo_url, "ls", manifest["id"][:8], str(src))
    assert ls.returncode == 0, ls.stderr
    assert f"{src}/sub/b.txt" in ls.stdout.splitlines()

    target = tmp_path / "out"
    rest = run("-r", repo_url, "restore", "latest", "--target", str(target), "--include", "*.md")
    assert rest.returncode == 0, rest.stderr
    restored = target / os.path.relpath(src, "/")
    assert (restored / "a.md").read_text() == "alpha"
    assert not (restored / "sub" / "b.txt").exists()

    for flags in ([], ["--read-data"], ["--read-data-subset", "50%"]):
        chk = run("-r", repo_url, "check", *flags)
        assert chk.returncode == 0, chk.stderr
        assert "no problems" in chk.stdout


def test_repository_and_password_from_environment_and_file(repo_url: str, tmp_path: Path) -> None:
    pw = write(tmp_path / "pw", PASSWORD + "\n")
    by_env = run("snapshots", env={"SNAPVAULT_REPOSITORY": repo_url})
    assert by_env.returncode == 0, by_env.stderr
    by_file = run("-r", repo_url, "--password-file", str(pw), "snapshots", password=None)
    assert by_file.returncode == 0, by_file.stderr
    by_env_file = run("-r", repo_url, "snapshots", password=None, env={"SNAPVAULT_PASSWORD_FILE": str(pw)})
    assert by_env_file.returncode == 0, by_env_file.stderr


def test_no_password_without_a_terminal_is_a_one_line_error(repo_url: str) -> None:
    line = assert_one_line_error(run("-r", repo_url, "snapshots", password=None))
    assert "password" in line


def test_wrong_password(repo_url: str) -> None:
    assert "wrong password" in assert_one_line_error(run("-r", repo_url, "snapshots", password="nope"))


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = assert_one_line_error(run("-r", str(tmp_path / "empty"), "snapshots"))
    assert "no snapvault repository" in line


def test_init_on_existing_repository(repo_url: str) -> None:
    assert "already exists" in assert_one_line_error(run("-r", repo_url, "init"))


def test_missing_source(repo_url: str, tmp_path: Path) -> None:
    line = assert_one_line_error(run("-r", repo_url, "backup", str(tmp_path / "missing")))
    assert "missing" in line
    assert json.loads(run("-r", repo_url, "snapshots", "--json").stdout) == []


def test_unknown_snapshot(repo_url: str, tmp_path: Path) -> None:
    assert "no snapshot" in assert_one_line_error(run("-r", repo_url, "restore", "abcdef12", "--target", "x"))
    assert "not a snapshot ID" in assert_one_line_error(run("-r", repo_url, "ls", "xyz"))
    assert "no snapshots" in assert_one_line_error(run("-r", repo_url, "ls", "latest"))


def test_no_repository_given() -> None:
    assert "no repository given" in assert_one_line_error(run("snapshots"))


def test_bad_usage_exits_2(repo_url: str) -> None:
    proc = run("-r", repo_url, "restore", "latest")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    bad_subset = run("-r", repo_url, "check", "--read-data-subset", "150%")
    assert_one_line_error(bad_subset)


def test_partial_backup_exits_3(repo_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "ok", "fine")
    write(src / "locked", "no", mode=0o000)
    cmd = ["-r", repo_url, "backup", str(src)]
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPVAULT_")}
        env["SNAPVAULT_PASSWORD"] = PASSWORD
        proc = subprocess.run(
            [
                "setpriv",
                f"--inh-caps={caps}",
                f"--bounding-set={caps}",
                sys.executable,
                "-m",
                "snapvault.cli.main",
                *cmd,
            ],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    else:
        proc = run(*cmd)
    assert proc.returncode == 3, proc.stderr
    assert "could not read" in proc.stderr
    assert "locked" in proc.stderr
    assert len(json.loads(run("-r", repo_url, "snapshots", "--json").stdout)) == 1


def test_unencrypted_repository_says_so(tmp_path: Path) -> None:
    url = str(tmp_path / "plain")
    proc = run("-r", url, "init", "--no-encryption", password=None)
    assert proc.returncode == 0
    assert "UNENCRYPTED" in proc.stdout
    src = write(tmp_path / "src" / "f", "x").parent
    for args in (["backup", str(src)], ["check", "--read-data"], ["snapshots"]):
        proc = run("-r", url, *args, password=None)
        assert proc.returncode == 0, proc.stderr
        assert "NOT encrypted" in proc.stderr


def test_storage_options_are_parsed(tmp_path: Path) -> None:
    proc = run("-r", str(tmp_path / "r"), "-o", "novalue", "init")
    assert "KEY=VALUE" in assert_one_line_error(proc)


def test_a_closed_stdout_is_not_an_error(repo_url: str, tmp_path: Path) -> None:
    # Cron and service managers may start a command with stdout closed (`>&-`).
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPVAULT_")}
    env["SNAPVAULT_PASSWORD"] = PASSWORD
    proc = subprocess.run(
        [sys.executable, "-m", "snapvault.cli.main", "-r", repo_url, "backup", str(src)],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=lambda: os.close(1),  # the child's stdout only
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    listed = run("-r", repo_url, "snapshots")
    assert listed.returncode == 0
    assert str(src) in listed.stdout
