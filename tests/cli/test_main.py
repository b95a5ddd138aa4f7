"""The CLI as a user runs it: real subprocesses, real files, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapvault.cli.exits import ExitCode
from tests.conftest import write

PASSWORD = "cli password"


def observed(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Every exit code a CLI test sees must be one of the exit-code table's."""
    assert proc.returncode in set(ExitCode), (proc.returncode, proc.stderr)
    return proc


def run(
    *args: str, env: dict[str, str] | None = None, password: str | None = PASSWORD, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPVAULT_")}
    if password is not None:
        full_env["SNAPVAULT_PASSWORD"] = password
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "snapvault.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    return observed(proc)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int = ExitCode.ERROR) -> str:
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
    assert observed(proc).returncode == 3, proc.stderr
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
        proc = run("-r", url, "--insecure-no-password", *args, password=None)
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
    assert observed(proc).returncode == 0, proc.stderr
    assert proc.stderr == ""
    listed = run("-r", repo_url, "snapshots")
    assert listed.returncode == 0
    assert str(src) in listed.stdout


# -- restore targets, damage and --json ---------------------------------------------------------


def test_a_file_url_of_another_host_is_refused_as_a_restore_target(repo_url: str, tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "a.txt", "a").parent
    assert run("-r", repo_url, "backup", str(src)).returncode == 0
    work = tmp_path / "cwd"
    work.mkdir()
    line = assert_one_line_error(run("-r", repo_url, "restore", "latest", "--target", "file://otherhost/x", cwd=work))
    assert "file://otherhost/x" in line
    assert list(work.iterdir()) == []


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[str, set[str], set[str]]:
    """A repository of several packs with one pack overwritten: its URL, the files that lose
    data, and the files that do not."""
    from tests.restore.test_restore_damage import _backup, damage_pack, data_pack_of, make_source

    b = _backup(str(tmp_path / "repo"), make_source(tmp_path))
    pack = data_pack_of(b, next(rel for rel in sorted(b.blobs) if rel.endswith("d1/f3.bin")))
    lost = b.files_using(damage_pack(b, pack, "garbage"))
    assert lost
    return b.url, lost, set(b.files) - lost


def _repo_password() -> str:
    from tests.conftest import PASSWORD as LIBRARY_PASSWORD

    return LIBRARY_PASSWORD


def test_restore_over_damage_restores_the_rest_lists_the_damage_and_exits_1(
    damaged: tuple[str, set[str], set[str]], tmp_path: Path
) -> None:
    url, lost, intact = damaged
    target = tmp_path / "out"
    proc = run("-r", url, "restore", "latest", "--target", str(target), password=_repo_password())
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    listed = {line.split(": ")[1] for line in proc.stderr.splitlines() if line.startswith("error: ")}
    assert listed == lost
    assert proc.stderr.splitlines()[-1] == f"snapvault: error: {len(lost)} paths could not be restored"
    assert f"{len(intact)} files" in proc.stdout
    on_disk = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert on_disk == intact

    proc = run("-r", url, "restore", "latest", "--target", str(tmp_path / "j"), "--json", password=_repo_password())
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert doc["files"] == len(intact)
    assert {e["path"] for e in doc["errors"]} == lost
    assert {e["kind"] for e in doc["errors"]} == {"damaged"}
    assert all(e["type"] == "file" and e["error"] and e["pack_id"] for e in doc["errors"])

    stop = run(
        "-r", url, "restore", "latest", "--target", str(tmp_path / "s"), "--stop-on-error", password=_repo_password()
    )
    line = assert_one_line_error(stop)
    assert any(rel in line for rel in lost)


def test_json_of_restore_check_and_ls(repo_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.md", "alpha")
    write(src / "sub" / "b.txt", "beta", mode=0o640)
    os.symlink("a.md", src / "link")
    assert run("-r", repo_url, "backup", str(src)).returncode == 0

    rest = run("-r", repo_url, "restore", "latest", "--target", str(tmp_path / "out"), "--json")
    assert rest.returncode == 0, rest.stderr
    doc = json.loads(rest.stdout)
    assert doc["ok"] is True
    assert doc["errors"] == []
    assert (doc["files"], doc["symlinks"], doc["bytes_written"]) == (2, 1, 9)
    assert doc["target"] == str(tmp_path / "out")
    assert len(doc["snapshot_id"]) == 64

    chk = run("-r", repo_url, "check", "--read-data", "--json")
    assert chk.returncode == 0, chk.stderr
    report = json.loads(chk.stdout)
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["warnings"] == []
    assert report["snapshots"] == 1
    assert report["packs"] >= 1
    assert report["packs_read"] == report["packs"]
    assert report["blobs_read"] >= 3

    ls = run("-r", repo_url, "ls", "latest", str(src), "--json")
    assert ls.returncode == 0, ls.stderr
    entries = {e["path"]: e for e in json.loads(ls.stdout)}
    assert set(entries) == {str(src), f"{src}/a.md", f"{src}/link", f"{src}/sub", f"{src}/sub/b.txt"}
    b = entries[f"{src}/sub/b.txt"]
    st = os.stat(src / "sub" / "b.txt")
    assert (b["type"], b["size"], b["mode"], b["mtime_ns"]) == ("file", 4, 0o640, st.st_mtime_ns)
    ns = st.st_mtime_ns
    assert datetime.fromisoformat(b["mtime"]) == datetime.fromtimestamp(ns // 10**9, UTC).replace(
        microsecond=ns // 1000 % 10**6
    )
    assert entries[f"{src}/link"]["type"] == "symlink"
    assert entries[f"{src}/link"]["target"] == "a.md"
    assert entries[f"{src}/sub"]["type"] == "dir"
    single = run("-r", repo_url, "ls", "latest", f"{src}/a.md", "--json")
    assert [e["path"] for e in json.loads(single.stdout)] == [f"{src}/a.md"]
    missing = run("-r", repo_url, "ls", "latest", f"{src}/nothing", "--json")
    assert missing.returncode == 1
    assert missing.stdout == ""
    # With --json the error is JSON too: one line on stderr.
    (line,) = missing.stderr.splitlines()
    error = json.loads(line)
    assert (error["level"], error["type"], error["exit_code"]) == ("error", "SnapshotNotFound", 1)
    assert "is not in snapshot" in error["message"]


def test_check_json_lists_problems_and_exits_1(damaged: tuple[str, set[str], set[str]]) -> None:
    url, _, _ = damaged
    proc = run("-r", url, "check", "--read-data", "--json", password=_repo_password())
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert report["problems"]
    for p in report["problems"]:
        assert {"kind", "message", "pack", "blob", "snapshot", "path", "key"} <= set(p)
    assert any(p["pack"] for p in report["problems"])


def test_init_json(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    proc = run("-r", url, "init", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["url"], doc["encrypted"], doc["params_from"]) == (url, True, None)
    listed = run("-r", url, "snapshots")
    assert listed.returncode == 0
    plain = json.loads(run("-r", str(tmp_path / "plain"), "init", "--no-encryption", "--json", password=None).stdout)
    assert plain["encrypted"] is False
    assert len(doc["id"]) == len(plain["id"]) == 64
    assert doc["id"] != plain["id"]


def test_local_commands_without_a_terminal_import_no_progress_or_async_machinery(tmp_path: Path) -> None:
    # Each import is milliseconds of every command's start: fsspec and tqdm come only with a
    # bar drawn on a terminal (or a URL), asyncio only with an event loop (the service).
    src = tmp_path / "src"
    write(src / "a.txt", b"hello\n")
    repo = str(tmp_path / "repo")
    script = f"""
import os
import sys
from snapvault.cli.main import run
for argv in (["init"], ["backup", {str(src)!r}], ["backup", {str(src)!r}], ["forget", "--keep-last", "1", "--prune"],
             ["restore", "latest", "--target", {str(tmp_path / "out")!r}], ["check"]):
    code = run(["-r", {repo!r}, "--quiet", *argv])
    assert code == 0, (argv, code)
print(sorted({{n.split(".")[0] for n in sys.modules}} & {{"fsspec", "tqdm", "asyncio"}}))
print(os.environ.get("PYDANTIC_DISABLE_PLUGINS"))  # left as the caller set it: hooks inherit it
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPVAULT_", "PYDANTIC_"))}
    env["SNAPVAULT_PASSWORD"] = PASSWORD
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "None"]
    assert (tmp_path / "out" / os.path.relpath(src, "/") / "a.txt").read_bytes() == b"hello\n"
