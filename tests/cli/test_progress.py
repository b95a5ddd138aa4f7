"""The progress bar of the long commands: drawn on a terminal (a real pseudo-terminal, the CLI
in a subprocess), and not one byte of it when stdout or stderr is not a terminal, with --json,
or with --quiet; without tqdm, the one-line fallback."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD, write

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
# Runs the CLI as its console script does; with "notqdm" first, as if tqdm were not installed.
_SCRIPT = """
import sys
if sys.argv[1] == "notqdm":
    sys.modules["tqdm"] = None
del sys.argv[1]
sys.argv[0] = "snapvault"
from snapvault.cli.main import main
main()
"""


@dataclass
class Run:
    code: int
    tty: bytes  # what the terminal showed (stdout and stderr, when on it), as written
    out: bytes  # stdout when it was a pipe
    err: bytes  # stderr when it was a pipe

    def lines(self) -> list[bytes]:
        """The terminal's lines as they end up on screen: each is what follows its last \\r."""
        return [line.rsplit(b"\r", 1)[-1] for line in self.tty.split(b"\r\n")]


@dataclass
class World:
    """A repository with a snapshot and a stored policy, a second repository to copy into, and
    a DR plan with one replica; the environment the CLI runs in."""

    home: Path
    repo: str
    src: Path
    env: dict[str, str]

    def cli(
        self, *args: str, stdout_tty: bool = True, stderr_tty: bool = True, tqdm: bool = True, repo: str | None = None
    ) -> Run:
        master, slave = os.openpty()
        # A terminal of 120 columns: tqdm sizes its bar to it.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, "tqdm" if tqdm else "notqdm", "-r", repo or self.repo, *args],
            stdin=subprocess.DEVNULL,
            stdout=slave if stdout_tty else subprocess.PIPE,
            stderr=slave if stderr_tty else subprocess.PIPE,
            env=self.env,
            cwd=self.home,
        )
        os.close(slave)
        shown: list[bytes] = []

        def read_terminal() -> None:
            while True:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # EIO: every writer of the terminal has closed it
                    return
                if not data:
                    return
                shown.append(data)

        reader = threading.Thread(target=read_terminal)
        reader.start()
        out, err = proc.communicate(timeout=120)
        reader.join(timeout=30)
        os.close(master)
        return Run(proc.returncode, b"".join(shown), out or b"", err or b"")


@pytest.fixture
def world(tmp_path: Path) -> World:
    src = tmp_path / "src"
    for i in range(6):
        write(src / f"d{i % 2}" / f"f{i}.bin", os.urandom(700_000 + 1000 * i))
    repo = str(tmp_path / "repo")
    base = sv.Repository.init(repo, PASSWORD, kdf=FAST_KDF)
    sv.Repository.init(str(tmp_path / "dst"), PASSWORD, kdf=FAST_KDF)
    sv.Repository.init(str(tmp_path / "replica"), "pw-a", kdf=FAST_KDF, copy_params_from=base)
    base.save_policy(sv.Policy(name="nightly", sources=[str(src)]), now=T0)
    sv.Engine(base).backup([src], now=T0)
    primary = sv.Site(name="main", region="here", url=repo, password_env="SNAPVAULT_PASSWORD")
    replica = sv.Site(name="a", region="there", url=str(tmp_path / "replica"), password_env="PW_A")
    sv.DRPlan(name="web", primary=primary, replicas=[replica], rpo="6h", rto="1h").save(base, now=T0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPVAULT_", "PW_"))}
    env.update(
        SNAPVAULT_PASSWORD=PASSWORD,
        SNAPVAULT_FROM_PASSWORD=PASSWORD,
        PW_A="pw-a",
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        SNAPVAULT_HOOKS_ALLOW=str(tmp_path / "hooks.allow"),
    )
    return World(tmp_path, repo, src, env)


def _commands(w: World) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """Each long command: its arguments, and the repository it runs on (None: the main one)."""
    return {
        "backup": (("backup", str(w.src)), None),
        "restore": (("restore", "latest", "--target", str(w.home / "out")), None),
        "check": (("check",), None),
        "check --read-data": (("check", "--read-data"), None),
        "copy": (("copy", "--from", w.repo), str(w.home / "dst")),
        "prune": (("prune",), None),
        "run": (("run", "nightly"), None),
        "dr replicate": (("dr", "replicate", "web"), None),
        "dr drill": (("dr", "drill", "web", "--site", "a"), None),
    }


def _frame(line: bytes) -> bool:
    """Whether ``line`` holds a frame of a tqdm bar (its rate ends the frame: ``?B/s]``,
    ``1.2MB/s, 3 files]``)."""
    return b"%|" in line or b"/s]" in line or b" files]" in line


# What the last line says once the bar is gone (with --quiet there is no such line).
SUMMARY = {
    "backup": b"snapshot ",
    "restore": b"restored snapshot ",
    "check": b"checked 1 snapshots",
    "check --read-data": b"checked 1 snapshots",
    "copy": b"1 copied, 0 already present",
    "prune": b"1 snapshot(s); ",
    "run": b"policy nightly: ",
    "dr replicate": b"plan web: main -> a: 1 copied",
    "dr drill": b"plan web site a: drill passed",
}


@pytest.mark.parametrize("command", list(SUMMARY))
def test_a_terminal_sees_a_bar_that_gives_way_to_the_summary(world: World, command: str) -> None:
    if command == "dr drill":
        assert world.cli("dr", "replicate", "web", stdout_tty=False, stderr_tty=False).code == 0
    args, repo = _commands(world)[command]
    run = world.cli(*args, repo=repo)
    assert run.code == 0, run.tty
    # tqdm's rate: bytes a second, or snapshots for a check of the structure alone.
    rate = b"snapshot/s" if command == "check" else b"B/s"
    assert rate in run.tty
    if command not in ("prune",):  # a prune of nothing has no bytes to deal with: no total
        assert b"%|" in run.tty, run.tty  # the total was known: a bar with a percentage
    lines = [line for line in run.lines() if line.strip()]
    # The bar was cleared: what stays on screen is the command's own lines, the summary last.
    assert lines[-1].startswith(SUMMARY[command]), lines
    assert not any(_frame(line) for line in lines), run.tty


def test_the_bar_ends_at_the_total_with_the_files_done(world: World) -> None:
    tqdm = pytest.importorskip("tqdm").tqdm
    total = sum(p.stat().st_size for p in world.src.rglob("*.bin"))
    run = world.cli("backup", "--full", str(world.src))
    assert run.code == 0
    # The last frame, drawn as the bar is taken off: all bytes of the total, all six files.
    size = tqdm.format_sizeof(total, divisor=1024).encode()
    assert b"100%|" in run.tty
    assert b" " + size + b"/" + size + b" [" in run.tty, run.tty
    assert b", 6 files]" in run.tty


@pytest.mark.parametrize("command", list(SUMMARY))
def test_no_progress_byte_when_stdout_is_not_a_terminal(world: World, command: str) -> None:
    if command == "dr drill":
        assert world.cli("dr", "replicate", "web", stdout_tty=False, stderr_tty=False).code == 0
    args, repo = _commands(world)[command]
    run = world.cli(*args, repo=repo, stdout_tty=False)
    assert run.code == 0, run.tty
    assert run.tty == b""  # stderr, on the terminal, got nothing at all
    assert run.out.splitlines()[-1].startswith(SUMMARY[command])
    assert b"\r" not in run.out


@pytest.mark.parametrize("command", ["backup", "restore", "check --read-data", "copy", "dr replicate"])
def test_no_progress_byte_when_stderr_is_not_a_terminal(world: World, command: str) -> None:
    args, repo = _commands(world)[command]
    run = world.cli(*args, repo=repo, stderr_tty=False)
    assert run.code == 0, run.err
    assert run.err == b""
    assert [line for line in run.lines() if line][-1].startswith(SUMMARY[command])
    assert b"\r" not in run.tty.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("command", list(SUMMARY))
def test_json_on_a_terminal_is_the_document_alone(world: World, command: str) -> None:
    if command == "dr drill":
        assert world.cli("dr", "replicate", "web", stdout_tty=False, stderr_tty=False).code == 0
    args, repo = _commands(world)[command]
    run = world.cli(*args, "--json", repo=repo)
    assert run.code == 0, run.tty
    text = run.tty.replace(b"\r\n", b"\n")
    assert b"\r" not in text
    json.loads(text)  # the whole terminal is one JSON document: nothing else was written


@pytest.mark.parametrize("command", list(SUMMARY))
def test_quiet_on_a_terminal_writes_nothing(world: World, command: str) -> None:
    if command == "dr drill":
        assert world.cli("dr", "replicate", "web", stdout_tty=False, stderr_tty=False).code == 0
    args, repo = _commands(world)[command]
    run = world.cli("--quiet", *args, repo=repo)
    assert run.code == 0
    assert run.tty == b""


@pytest.mark.parametrize("command", ["backup", "restore", "copy"])
def test_without_tqdm_the_progress_is_one_line_of_text(world: World, command: str) -> None:
    args, repo = _commands(world)[command]
    run = world.cli(*args, repo=repo, tqdm=False)
    assert run.code == 0, run.tty
    assert b" MiB  " in run.tty  # the fallback line: bytes so far (and the file last done)
    assert b"B/s" not in run.tty
    assert b"%|" not in run.tty
    lines = [line for line in run.lines() if line.strip()]
    assert lines[-1].startswith(SUMMARY[command]), lines
    assert not any(b" MiB  " in line for line in lines[:-1])


def test_verbose_lines_are_written_whole_above_the_bar(world: World) -> None:
    run = world.cli("-v", "backup", "--full", str(world.src))
    assert run.code == 0
    assert b"B/s" in run.tty
    read = [line for line in run.lines() if line.startswith(b"read ")]
    assert len(read) == 6, run.lines()
    assert all(line.endswith(b" bytes)") for line in read)
