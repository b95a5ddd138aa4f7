"""The hostile suite's harness: the real CLI in a subprocess, measured, and a watch on the disk.

Every command runs as ``python -m snapvault.cli.main`` with the password in the environment.
Its peak resident memory comes from the kernel (the ``VmHWM`` of its own address space, which
the command writes out as it exits; ``os.wait4``'s ``ru_maxrss`` would also count the address
space it was spawned from, the test runner's, at the moment of exec) and must stay
under :data:`MAX_RSS_MIB`; it must end within :data:`TIMEOUT_S`; its exit code must be one of
the documented ones; its stderr must hold no traceback, only the line shapes the CLI writes.

``SNAPVAULT_HOSTILE_ALL=1`` runs every command on every case (the long run); by default each
case runs the commands that read what it damages, to keep the suite within CI's time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapvault.cli.exits import ExitCode
from tests.conftest import PASSWORD
from tests.test_hostile import Scene

#: The issue's bound on any command's peak RSS, whatever the repository holds.
MAX_RSS_MIB = 256
#: Generous: every case here finishes in a few seconds unless something is unbounded.
TIMEOUT_S = 60.0
ALL_COMMANDS = os.environ.get("SNAPVAULT_HOSTILE_ALL", "") in ("1", "true", "yes")

# The shapes of a stderr line (README, "Command line"): the one fatal line, a restore's or a
# check's line per damaged path or problem, warnings, and the per-object lines of
# ``snapshots`` and the policy commands.
_LINE = re.compile(
    r"^(snapvault: error: |snapvault: interrupted$|error: |warning: |note: |snapshot [0-9a-f]{64}: error: "
    r"|policy record \S+: error: |policy \S+: error: )"
)


@dataclass(frozen=True)
class Run:
    """One finished CLI process."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    rss_mib: float
    seconds: float

    def __str__(self) -> str:
        return (
            f"snapvault {' '.join(self.args)} -> exit {self.code}, {self.rss_mib:.0f} MiB, "
            f"{self.seconds:.1f} s\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-4000:]}"
        )

    @property
    def raw_lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def lines(self) -> list[str]:
        """The stderr lines as text: a --json run's JSON lines as the same run without --json
        prints them (``[SUBJECT: ]LEVEL: MESSAGE``), its closing exit-code line left out (see
        :attr:`fatal`)."""
        out = []
        for line in self.raw_lines:
            doc = _json_line(line)
            if doc is None:
                out.append(line)
            elif "exit_code" not in doc:
                subject = f"{doc['subject']}: " if "subject" in doc else ""
                out.append(f"{subject}{doc['level']}: {doc['message']}")
        return out

    @property
    def fatal(self) -> list[str]:
        """The line a failed command ends with, in text (a --json run's is made text)."""
        out = []
        for line in self.raw_lines:
            doc = _json_line(line)
            if doc is not None and "exit_code" in doc:
                out.append(f"snapvault: error: {doc['message']}")
            elif line.startswith("snapvault: error: "):
                out.append(line)
        return out

    def json(self) -> Any:
        return json.loads(self.stdout)


# The CLI as ``python -m snapvault.cli.main`` runs it, reporting its own peak resident memory
# (VmHWM: this address space only, from exec on) to a file as it exits.
_MEASURED_CLI = """
import atexit, os, runpy, sys

def _report():
    with open("/proc/self/status") as f:
        hwm = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["SV_TEST_HWM_FILE"], "w") as out:
        out.write(hwm)

_real_exit = os._exit


def _exit(code):
    _report()
    _real_exit(code)


atexit.register(_report)
os._exit = _exit  # a successful CLI run leaves through os._exit, past atexit
sys.argv[0] = "snapvault"
runpy.run_module("snapvault.cli.main", run_name="__main__", alter_sys=True)
"""


def _peak_mib(hwm_file: Path, ru_maxrss_kib: int) -> float:
    """The command's own peak RSS in MiB (the kernel's figure if it died before reporting)."""
    try:
        text = hwm_file.read_text().strip()
    finally:
        hwm_file.unlink(missing_ok=True)
    return int(text) / 1024 if text else ru_maxrss_kib / 1024


def snapvault(
    *args: str, cwd: Path, password: str | None = PASSWORD, env: dict[str, str] | None = None, shapes: bool = True
) -> Run:
    """Run the CLI; assert the bounds every hostile case shares (memory, time, exit code, no
    traceback, and with ``shapes`` every stderr line of a known shape: :func:`assert_shapes`)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPVAULT_")}
    if password is not None:
        full_env["SNAPVAULT_PASSWORD"] = password
    # No hook is ever allowed here, whatever a stored policy says.
    full_env["SNAPVAULT_HOOKS_ALLOW"] = str(cwd / "no-hooks.allow")
    full_env.update(env or {})
    start = time.monotonic()
    # Anonymous files, not pipes: nothing has to drain them while the process is waited for.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        hwm_file = Path(tempfile.mkstemp(prefix="sv-hwm-")[1])
        full_env["SV_TEST_HWM_FILE"] = str(hwm_file)
        proc = subprocess.Popen(
            [sys.executable, "-c", _MEASURED_CLI, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
        )
        timed_out = False
        while True:
            # wait4, not Popen.wait: its rusage is the child's own peak RSS (KiB on Linux).
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > TIMEOUT_S:
                timed_out = True
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
        out.seek(0)
        err.seek(0)
        run = Run(
            tuple(args),
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            _peak_mib(hwm_file, usage.ru_maxrss),
            time.monotonic() - start,
        )
    assert not timed_out, f"killed after {TIMEOUT_S} s: {run}"
    assert run.rss_mib < MAX_RSS_MIB, f"peak RSS {run.rss_mib:.0f} MiB: {run}"
    assert run.code in set(ExitCode), run
    assert "Traceback" not in run.stderr, run
    if shapes:
        assert_shapes(run)
    return run


def _json_line(line: str) -> dict[str, Any] | None:
    """A --json run's stderr line as its object (README: a level and a message), else None."""
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("level") not in ("error", "warning", "note", "info"):
        return None
    return doc if isinstance(doc.get("message"), str) else None


def assert_shapes(run: Run) -> None:
    """Every stderr line is one of the CLI's: a message never spills onto a line of its own."""
    bad = [line for line in run.raw_lines if not _LINE.match(line) and _json_line(line) is None]
    assert not bad, f"stderr lines of no known shape {bad[:5]}: {run}"


#: Commands of independent cases run side by side, one per CPU (each still measured alone).
WORKERS = max(2, os.cpu_count() or 2)


def run_batch(jobs: Mapping[str, tuple[Sequence[str], Path]], **kw: Any) -> dict[str, Run | AssertionError]:
    """Run ``{case: (args, cwd)}`` concurrently; each case gets its Run, or the assertion of
    :func:`snapvault` it failed, which :func:`outcome` raises in that case's own test."""
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {name: pool.submit(snapvault, *args, cwd=cwd, **kw) for name, (args, cwd) in jobs.items()}
    out: dict[str, Run | AssertionError] = {}
    for name, future in futures.items():
        try:
            out[name] = future.result()
        except AssertionError as e:
            out[name] = e
    return out


def outcome(result: Run | AssertionError) -> Run:
    if isinstance(result, AssertionError):
        raise result
    return result


def assert_refused(run: Run, *names: str) -> str:
    """The command failed as a whole: exit 1 and exactly one line, naming one of ``names``."""
    assert run.code == ExitCode.ERROR, run
    assert len(run.lines) == 1, run
    assert len(run.fatal) == 1, run
    line = run.fatal[0]
    if names:
        assert any(n in line for n in names), f"the error names none of {names}: {run}"
    return line


def assert_ok(run: Run) -> None:
    assert run.code == ExitCode.OK, run
    assert not run.fatal, run


# -- the disk around a command -----------------------------------------------------------------


def _entry(p: Path) -> tuple[Any, ...]:
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(p))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", st.st_mode, st.st_uid, st.st_gid)
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        return ("file", digest, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return ("other", st.st_mode, st.st_rdev)


def record(roots: Iterable[Path], skip: Iterable[Path] = ()) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``roots`` (symlinks not followed), the ``skip`` subtrees left out."""
    skipped = {Path(s) for s in skip}
    out: dict[str, tuple[Any, ...]] = {}
    for root in roots:
        out[str(root)] = _entry(root)
        stack = [root]
        while stack:  # iterative: a hostile restore may leave a deep tree behind
            d = stack.pop()
            with os.scandir(d) as it:
                for e in it:
                    p = Path(e.path)
                    if p in skipped:
                        continue
                    out[str(p)] = _entry(p)
                    if e.is_dir(follow_symlinks=False):
                        stack.append(p)
    return out


class Watch:
    """Everything under ``roots`` but the ``target``: recorded now, compared by :meth:`check`.

    The repository is inside the roots on purpose: no read command may change it.
    """

    def __init__(self, roots: Iterable[Path], target: Path | None = None) -> None:
        self.roots = list(roots)
        self.skip = [target] if target is not None else []
        self.before = record(self.roots, self.skip)

    def check(self) -> None:
        after = record(self.roots, self.skip)
        changed = {k: (self.before.get(k), after.get(k)) for k in set(self.before) | set(after)}
        changed = {k: v for k, v in changed.items() if v[0] != v[1]}
        assert not changed, f"changed outside the target: {dict(sorted(changed.items())[:10])}"


def remove_deep(root: Path) -> None:
    """Delete a directory tree of any depth (shutil.rmtree recurses, and paths past PATH_MAX
    cannot be named): each round lifts the children of the top directories up into ``root``."""
    if not root.exists():
        return
    n = 0
    while names := os.listdir(root):
        for name in names:
            p = root / name
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o700)
                for child in os.listdir(p):
                    n += 1
                    os.rename(p / child, root / f"{n}-{child}")
                p.rmdir()
            else:
                p.unlink()
    root.rmdir()


@dataclass(frozen=True)
class Sandbox:
    """A restore target, a neighbourhood with a canary, and the watch on all of it."""

    scene: Scene
    watch: Watch


@dataclass(frozen=True)
class Runs:
    """A module's commands run side by side: each outcome by case, the sandboxes, the repository's watch."""

    results: dict[str, Run | AssertionError]
    boxes: dict[str, Sandbox]
    repo: Watch
