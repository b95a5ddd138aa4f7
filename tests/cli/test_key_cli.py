"""``snapvault key list|add|remove|passwd`` as a user runs them: where each password comes from,
what is printed, and the exit code and one-line error of every refusal."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import termios
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from snapvault.cli.main import run
from snapvault.repository import layout
from tests.conftest import FAST_KDF, PASSWORD

SECOND = "second password"


class Cli:
    """The CLI run in this process against one repository, with a clean environment."""

    def __init__(self, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        for name in list(os.environ):
            if name.startswith("SNAPVAULT_"):
                monkeypatch.delenv(name)
        # Not a terminal: a missing password must be an error, never a prompt that waits.
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    def __call__(self, *args: str, password: str | None = PASSWORD, **env: str) -> tuple[int, str, str]:
        with self.monkeypatch.context() as m:
            if password is not None:
                m.setenv("SNAPVAULT_PASSWORD", password)
            for name, value in env.items():
                m.setenv(name, value)
            self.capsys.readouterr()
            code = run(["-r", self.url, *args])
            out, err = self.capsys.readouterr()
        assert code in set(ExitCode), (code, err)
        return code, out, err


def one_line_error(result: tuple[int, str, str]) -> str:
    code, _, err = result
    assert code == ExitCode.ERROR, result
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("snapvault: error: ")
    return lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> sv.Repository:
    return sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)


@pytest.fixture
def cli(repo: sv.Repository, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(repo.url, monkeypatch, capsys)


def _listing(cli: Cli, password: str = PASSWORD) -> list[dict[str, object]]:
    code, out, err = cli("key", "list", "--json", password=password)
    assert code == 0, err
    keys: list[dict[str, object]] = json.loads(out)
    return keys


def test_add_from_a_file_then_list(cli: Cli, repo: sv.Repository, tmp_path: Path) -> None:
    pw_file = tmp_path / "new-pw"
    pw_file.write_text(SECOND + "\n")
    code, out, err = cli("key", "add", "--label", "backup laptop", "--new-password-file", str(pw_file))
    assert (code, err) == (0, "")
    (line,) = out.splitlines()
    assert line.startswith("key ")
    assert line.endswith(" added (backup laptop)")
    new_short = line.split()[1]

    code, out, _ = cli("key", "list")
    assert code == 0
    header, first, second, footer = out.splitlines()
    assert header.split() == ["ID", "Created", "KDF", "Label"]
    # The key file init wrote says no time; the new one does. * marks the one that opened.
    assert first.split() == [(repo.key_id or "")[:8], "*", "-", "64", "KiB,", "1", "pass"]
    assert second.startswith(new_short)
    assert "*" not in second
    # `key add` makes a key of the default cost, as init does.
    assert second.endswith("19 MiB, 2 passes    backup laptop")
    assert footer == "2 key files"

    # The new password opens the repository, and the listing then marks its key.
    keys = _listing(cli, password=SECOND)
    assert [(k["short_id"], k["current"], k["label"]) for k in keys] == [
        ((repo.key_id or "")[:8], False, ""),
        (new_short, True, "backup laptop"),
    ]
    assert keys[1]["kdf"] == {"algorithm": "argon2id", "memory_kib": 19456, "iterations": 2, "lanes": 1}
    created = datetime.fromisoformat(str(keys[1]["created"]))
    assert abs(created - datetime.now(UTC)).total_seconds() < 600
    assert keys[0]["created"] is None
    assert {k["error"] for k in keys} == {None}


def test_add_from_the_environment(cli: Cli) -> None:
    code, _, err = cli("key", "add", SNAPVAULT_NEW_PASSWORD=SECOND)
    assert code == 0, err
    assert len(_listing(cli, password=SECOND)) == 2


def test_add_without_a_new_password_is_one_error_and_adds_nothing(cli: Cli, repo: sv.Repository) -> None:
    line = one_line_error(cli("key", "add"))
    assert "--new-password-file" in line
    assert "SNAPVAULT_NEW_PASSWORD" in line
    # The repository's own password is never taken as the new one.
    assert len(repo.list_keys(layout.KEYS)) == 1


def test_add_with_a_bad_label_or_password_file(cli: Cli, repo: sv.Repository, tmp_path: Path) -> None:
    assert "longer than 256" in one_line_error(cli("key", "add", "--label", "x" * 300, SNAPVAULT_NEW_PASSWORD=SECOND))
    assert "control character" in one_line_error(cli("key", "add", "--label", "a\tb", SNAPVAULT_NEW_PASSWORD=SECOND))
    missing = tmp_path / "missing"
    assert "cannot read password file" in one_line_error(cli("key", "add", "--new-password-file", str(missing)))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "empty" in one_line_error(cli("key", "add", "--new-password-file", str(empty)))
    assert len(repo.list_keys(layout.KEYS)) == 1


def test_remove_by_prefix_and_the_removed_password_fails(cli: Cli, repo: sv.Repository) -> None:
    second = repo.add_key(SECOND, label="old laptop", kdf=FAST_KDF)
    code, out, err = cli("key", "remove", second.id[:6])
    assert (code, err) == (0, "")
    assert out == f"key {second.short_id} removed (old laptop)\n"
    assert "wrong password" in one_line_error(cli("key", "list", password=SECOND))
    assert [k["current"] for k in _listing(cli)] == [True]


def test_remove_refusals(cli: Cli, repo: sv.Repository) -> None:
    current = repo.key_id or ""
    assert "last key file" in one_line_error(cli("key", "remove", current, "--force"))
    second = repo.add_key(SECOND, kdf=FAST_KDF)
    assert "--force" in one_line_error(cli("key", "remove", current[:8]))
    assert "not a key ID" in one_line_error(cli("key", "remove", "ab"))
    unknown = next(c * 8 for c in "0123456789abcdef" if not {current[0], second.id[0]} & {c})
    assert "no key file matches" in one_line_error(cli("key", "remove", unknown))
    assert len(repo.list_keys(layout.KEYS)) == 2

    # With --force the key in use goes; the other password still opens.
    code, _, err = cli("key", "remove", current[:8], "--force")
    assert code == 0, err
    assert "wrong password" in one_line_error(cli("key", "list"))
    assert [k["id"] for k in _listing(cli, password=SECOND)] == [second.id]


def test_passwd_replaces_the_key_in_use(cli: Cli, repo: sv.Repository, tmp_path: Path) -> None:
    other = repo.add_key(SECOND, kdf=FAST_KDF)
    old = repo.key_id or ""
    pw_file = tmp_path / "new-pw"
    pw_file.write_text("changed password")
    code, out, err = cli("key", "passwd", "--new-password-file", str(pw_file))
    assert (code, err) == (0, "")
    assert out.startswith("password changed: key ")
    assert out.endswith(f" replaces key {old[:8]}\n")
    assert "wrong password" in one_line_error(cli("key", "list"))
    keys = _listing(cli, password="changed password")
    assert old not in {k["id"] for k in keys}
    assert other.id in {k["id"] for k in keys}
    # The old key's Argon2 parameters are kept.
    (new,) = (k for k in keys if k["current"])
    assert new["kdf"] == {"algorithm": "argon2id", "memory_kib": 64, "iterations": 1, "lanes": 1}
    assert "no new password" in one_line_error(cli("key", "passwd", password="changed password"))


def test_an_unencrypted_repository_lists_its_key_and_refuses_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = sv.Repository.init(str(tmp_path / "plain"), encryption="none")
    cli = Cli(plain.url, monkeypatch, capsys)
    code, out, _ = cli("--insecure-no-password", "key", "list", password=None)
    assert code == 0
    assert "none (keys in clear)" in out.splitlines()[1]
    for args in (("key", "add"), ("key", "passwd"), ("key", "remove", plain.key_id or "", "--force")):
        code, _, err = cli("--insecure-no-password", *args, password=None, SNAPVAULT_NEW_PASSWORD=SECOND)
        assert code == ExitCode.ERROR
        # The note that the repository is unencrypted, then the one error line.
        assert err.splitlines()[-1].startswith("snapvault: error: cannot ")
        assert "NOT encrypted" in err.splitlines()[-1]
    assert len(plain.list_keys(layout.KEYS)) == 1


def test_an_unreadable_key_file_is_listed_and_named_on_stderr(cli: Cli, repo: sv.Repository) -> None:
    stray = "ab" * 32
    repo.store.put_if_absent(layout.object_key(layout.KEYS, stray), b"junk")
    code, out, err = cli("key", "list")
    assert code == 0
    reason = "key file does not match its name (damaged or altered)"
    assert err == f"warning: key file {stray} cannot be read: {reason}\n"
    assert f"\nabababab  ! unreadable: {reason}\n" in out
    keys = _listing(cli)
    assert {(k["id"], k["error"] is None) for k in keys} == {(stray, False), (repo.key_id, True)}
    # It can be removed like any other.
    assert cli("key", "remove", "abab")[0] == 0
    assert len(_listing(cli)) == 1


def _wait_for(fd: int, buffer: bytearray, text: bytes, timeout: float = 60) -> None:
    """Read ``fd`` into ``buffer`` until ``text`` is in it."""
    deadline = time.monotonic() + timeout
    while text not in buffer:
        assert time.monotonic() < deadline, bytes(buffer)
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, bytes(buffer)
            buffer += chunk


def _wait_for_echo_off(tty: int, timeout: float = 60) -> None:
    # The prompt turns echo off (flushing pending input) before it reads: a password typed
    # earlier would be thrown away, so it is typed only once echo is off.
    deadline = time.monotonic() + timeout
    while termios.tcgetattr(tty)[3] & termios.ECHO:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_add_prompts_twice_on_a_terminal(repo: sv.Repository) -> None:
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPVAULT_")}
    env["SNAPVAULT_PASSWORD"] = PASSWORD
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapvault.cli.main", "-r", repo.url, "key", "add", "--label", "typed"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    os.close(secondary)
    try:
        assert proc.stderr is not None
        err = bytearray()
        _wait_for(proc.stderr.fileno(), err, b"new password")
        _wait_for_echo_off(primary)
        os.write(primary, b"typed password\n")
        _wait_for(proc.stderr.fileno(), err, b"Repeat for confirmation")
        _wait_for_echo_off(primary)
        os.write(primary, b"typed password\n")
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    assert proc.returncode == 0, bytes(err) + rest
    assert out.decode().endswith(" added (typed)\n")
    assert sv.Repository.open(repo.url, "typed password").key_id != repo.key_id
