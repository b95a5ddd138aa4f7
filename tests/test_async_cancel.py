"""asyncio that cancels: cancelling the task awaiting ``abackup``/``arun_policy``/``arestore`` stops
the work itself (no snapshot, a repository that checks clean, the repository untouched by a
restore), and ``job.events()`` follows a job to its end.

The cancellation is made to land mid-way without timing: an ``on_file`` hook holds the worker
on its first file until the task has been cancelled (asyncio runs ready callbacks in the order
they were scheduled, so one ``sleep(0)`` after ``cancel()`` lets the task handle it first).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from snapvault.errors import JobCancelled
from snapvault.jobs import Job, JobEvent
from snapvault.policy.records import load_runs
from tests.cli.test_key_cli import Cli
from tests.conftest import write

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_tree(src: Path, n: int = 6) -> dict[str, bytes]:
    files = {f"f{i}.bin": os.urandom(20_000 + i) for i in range(n)}
    for rel, data in files.items():
        write(src / rel, data)
    return files


class Gate:
    """An ``on_file`` hook that records each call and holds the first until released."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.released = threading.Event()
        self.calls: list[str] = []

    def __call__(self, path: str, *_: object) -> None:
        self.calls.append(path)
        if len(self.calls) == 1:
            self.reached.set()
            assert self.released.wait(30), "never released"


async def cancel_at_gate(make: Callable[[], Coroutine[Any, Any, Any]], gate: Gate) -> None:
    """Run ``make()`` as a task, cancel it while the gate holds its first file, and expect the
    cancellation to come back once the work has stopped."""
    task = asyncio.create_task(make())
    assert await asyncio.to_thread(gate.reached.wait, 30)
    task.cancel()
    await asyncio.sleep(0)  # the task handles its cancellation (asks the work to stop) first
    gate.released.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


def repo_files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_cancelled_abackup_commits_nothing(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo)
    gate = Gate()
    asyncio.run(cancel_at_gate(lambda: engine.abackup([src], on_file=gate, now=T0), gate))
    # Stopped at the next file: the other files were never reached.
    assert len(gate.calls) == 1
    assert local_repo.snapshots() == []
    assert local_repo.check(read_data=True).ok
    # The next backup of the same source completes and restores whole.
    m = asyncio.run(engine.abackup([src], now=T0))
    res = sv.Restorer(local_repo).restore(m, tmp_path / "out")
    assert res.files == len(files)


def test_cancelled_abackup_through_the_cli_view(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    make_tree(src)
    engine = sv.Engine(local_repo)
    policy = sv.Policy(name="aio", sources=[str(src)])
    gate = Gate()
    asyncio.run(cancel_at_gate(lambda: engine.arun_policy(policy, on_file=gate, now=T0), gate))
    cli = Cli(local_repo.url, monkeypatch, capsys)
    code, out, err = cli("snapshots", "--json")
    assert (code, json.loads(out)) == (ExitCode.OK, []), err
    code, _, err = cli("check", "--read-data")
    assert code == ExitCode.OK, err
    # The cancelled run is on record as one.
    assert [r.status for r in load_runs(local_repo, "aio")] == ["cancelled"]


def test_a_given_should_stop_is_still_obeyed(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 2)
    with pytest.raises(JobCancelled):
        asyncio.run(sv.Engine(local_repo).abackup([src], should_stop=lambda: True))
    assert local_repo.snapshots() == []


def test_cancelled_arestore_leaves_a_partial_target_and_the_repository_untouched(
    local_repo: sv.Repository,
    tmp_path: Path,
    repo_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    m = sv.Engine(local_repo).backup([src], now=T0)
    before = repo_files(Path(repo_path))
    # One worker: while the gate holds the first file, nothing else is written.
    restorer = sv.Restorer(local_repo, workers=1)
    gate = Gate()
    out = tmp_path / "out"
    asyncio.run(cancel_at_gate(lambda: restorer.arestore(m.id, out, on_file=gate), gate))
    root = out / str(src).lstrip("/")
    there = {p.name: p.read_bytes() for p in root.iterdir()} if root.exists() else {}
    assert 1 <= len(there) < len(files)
    assert all(files[name] == data for name, data in there.items())  # no half-written file
    assert repo_files(Path(repo_path)) == before
    assert local_repo.check(read_data=True).ok
    # The command line restores over the partial target.
    code, _, err = Cli(local_repo.url, monkeypatch, capsys)("restore", "latest", "--target", str(out))
    assert code == ExitCode.OK, err
    assert {p.name: p.read_bytes() for p in root.iterdir()} == files


# -- events ---------------------------------------------------------------------------------------


async def collect(job: Job[Any]) -> list[JobEvent]:
    return [e async for e in job.events()]


def check_shape(events: list[JobEvent], end: str) -> None:
    kinds = [e.kind for e in events]
    assert kinds[0] == "started"
    assert kinds[-1] == end
    assert set(kinds[1:-1]) <= {"progress"}
    done = [e.progress.bytes_done for e in events]
    assert done == sorted(done)


def test_events_of_a_backup_and_a_restore(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    total = sum(map(len, files.values()))
    job = sv.Engine(local_repo).submit([src], now=T0)
    events = asyncio.run(collect(job))
    check_shape(events, "completed")
    assert events[-1].status is sv.JobStatus.COMPLETED
    assert events[-1].progress == job.progress
    assert (events[-1].progress.files_done, events[-1].progress.bytes_done) == (len(files), total)

    rjob = sv.Restorer(local_repo).submit("latest", tmp_path / "out")
    revents = asyncio.run(collect(rjob))
    check_shape(revents, "completed")
    assert revents[-1].progress.bytes_done == revents[-1].progress.bytes_total == total
    # A follower that comes after the end still gets the start, the final progress and the end.
    late = asyncio.run(collect(rjob))
    assert [e.kind for e in late] == ["started", "progress", "completed"]
    assert late[-1].progress == rjob.progress


def test_events_of_a_cancelled_and_a_failed_job() -> None:
    gate = threading.Event()

    def work(job: Job[Any]) -> int:
        job.set_totals(2, 20)
        job.advance(10, "a", files=1)
        assert gate.wait(30)
        if job.cancelled:
            raise JobCancelled("stopped")
        return 1

    async def follow_and_cancel(job: Job[Any]) -> list[JobEvent]:
        seen = []
        async for e in job.events():
            seen.append(e)
            if e.kind == "progress" and e.progress.files_done == 1:
                job.cancel()
                gate.set()
        return seen

    events = asyncio.run(follow_and_cancel(Job(work).start()))
    check_shape(events, "cancelled")
    assert events[-1].progress.bytes_done == 10

    def broken(job: Job[Any]) -> int:
        raise ValueError("no")

    failed = asyncio.run(collect(Job(broken).start()))
    assert [e.kind for e in failed] == ["started", "failed"]
    assert isinstance(failed[-1].error, ValueError)
