"""kill -9 at random points of backup, copy and forget never leaves an unusable repository.

Each command runs, over and over, in a real process (forked by tests/kill9_child.py from a
server that has already imported the library) on a local-folder repository, and is killed
with SIGKILL: after a seeded random delay, or by its store right before, during or right after
its n-th write, with most of the weight on the commit (the manifest write of a backup or a
copy, the manifest deletes of a forget) and the writes just before it. Each repository takes
a series of kills, so it accumulates what many crashes leave behind.

After every kill the repository must check clean (every stored byte read), hold no unreadable
snapshot, have committed exactly when the kill came after the commit write, restore its newest
snapshot bit-exact against the source tree that snapshot was taken of, and take the next
operation. At the end every snapshot is restored and compared.

Seeded from a fixed base, so a run is repeatable up to where a timed kill lands.
``SNAPVAULT_KILL9_RUNS`` (default 200) is the number of kills across the commands; raise it
for a long run, which also has each repository take more kills in a row. (``prune`` joins the commands once it exists.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.retention import KeepLast
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.treecompare import snapshot_tree

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kills with SIGKILL and watches pidfds")

RUNS = int(os.environ.get("SNAPVAULT_KILL9_RUNS", "200"))
SEED = 20260917
# Each command's share of the kills in percent; together at least RUNS.
SHARES = {"backup": 45, "copy": 30, "forget": 25}
# Kills one repository takes in a row: enough leftovers of crashes piled up in it, while the
# check after each kill (which walks every snapshot) stays quick; a long run piles up more.
PER_REPOSITORY = max(20, RUNS // 10)

Tree = dict[str, tuple[object, ...]]


def _quota(command: str) -> int:
    return -(-RUNS * SHARES[command] // 100)


def _repositories(command: str) -> list[int]:
    """One test per repository: the command's kills are split evenly among them."""
    return list(range(-(-_quota(command) // PER_REPOSITORY)))


def _kills(command: str) -> int:
    return -(-_quota(command) // len(_repositories(command)))


class Server:
    """The fork server of tests/kill9_child.py: one request in, one answer out."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._err = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("kill9_child.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"password": PASSWORD, **request}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the fork server died: {self.log.read_text()[-4000:]}"
        answer: dict[str, Any] = json.loads(line)
        if not answer["killed"]:
            # A child that was not killed must have done its job.
            assert answer["exit"] == 0, answer
            assert answer["result"] is not None, answer
            assert "error" not in answer["result"], answer["result"]["error"]
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("kill9") / "server.log")
    yield s
    s.close()


class Source:
    """A small source tree (a few hundred KiB in several files and folders) that changes a
    little between snapshots, so each snapshot has content of its own."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.serial = 0
        for i in range(8):
            self._put(f"d{i % 3}/f{i}.bin")
        write(root / "notes.txt", "".join(f"line {rng.random()}\n" for _ in range(2000)))
        os.symlink("notes.txt", root / "link")

    def _put(self, rel: str) -> None:
        self.serial += 1
        write(self.root / rel, self.rng.randbytes(self.rng.randint(1, 64 << 10)))

    def change(self) -> Tree:
        """Rewrite one file, sometimes add or remove one; return the tree as it now is."""
        files = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.bin"))
        self._put(self.rng.choice(files))
        r = self.rng.random()
        if r < 0.2:
            self._put(f"d{self.rng.randrange(3)}/new{self.serial}.bin")
        elif r < 0.3 and len(files) > 4:
            (self.root / self.rng.choice(files)).unlink()
        return snapshot_tree(self.root)


class Clock:
    """Snapshot times one minute apart, so "newest" never depends on the wall clock."""

    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(minutes=1)
        return self.t


class Plans:
    """Seeded kill points: timed ones anywhere, and hooked ones around chosen writes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lived: list[float] = []

    def note(self, answer: dict[str, Any]) -> None:
        if not answer["killed"]:
            self.lived = [*self.lived[-9:], answer["lived"]]

    def pick(self, writes: list[str], commit: str = "snapshots") -> dict[str, Any]:
        """A kill plan for an operation expected to make ``writes`` (the folder of each write,
        in order), of which those to ``commit`` are commit writes."""
        rng = self.rng
        duration = max(self.lived) if self.lived else 0.2
        if rng.random() < 0.35 or not writes:
            # Anywhere in the operation, half of the time in its last quarter (the commit's).
            lo = 0.0 if rng.random() < 0.5 else 0.75 * duration
            return {"timer": rng.uniform(lo, 1.05 * duration)}
        # The last writes weigh most: the commit, then each write before it half as much.
        pos = len(writes) - 1
        while pos > 0 and rng.random() < 0.5:
            pos -= 1
        folder = writes[pos]
        when = rng.choice(["before", "after", "during"] if folder == commit else ["before", "after"])
        return {
            "prefix": folder + "/",
            "nth": writes[: pos + 1].count(folder),
            "when": when,
            "delay": rng.uniform(0, 0.003),
        }


def _check(repo: sv.Repository) -> None:
    report = repo.check(read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert repo.unreadable_snapshots() == []


class Restores:
    """Restore snapshots and compare them, byte for byte, with the trees they were taken of.

    Each snapshot is restored when it first appears, and the newest again after every kill.
    Objects are create-only and only forget deletes (manifests), and after every kill a check
    re-reads every stored blob and walks every snapshot's trees, so one restore of each shows
    it still restores without restoring every snapshot every time.
    """

    def __init__(self, source: Path, scratch: Path) -> None:
        self.source = source
        self.out = scratch / "restore"
        self.done: set[tuple[str, str]] = set()

    def __call__(self, repo: sv.Repository, sid: str, expected: Tree, *, again: bool = False) -> None:
        if (repo.url, sid) in self.done and not again:
            return
        shutil.rmtree(self.out, ignore_errors=True)
        result = sv.Restorer(repo).restore(sid, self.out)
        assert result.ok, result.errors
        got = snapshot_tree(self.out / os.path.relpath(self.source, "/"))
        assert sorted(got) == sorted(expected), sid
        for rel in expected:
            assert got[rel] == expected[rel], (sid, rel)
        shutil.rmtree(self.out)
        self.done.add((repo.url, sid))


@pytest.fixture
def source_dir() -> Iterator[Path]:
    """A folder for the source, a few levels below the root.

    Every snapshot adds one tree per level above a changed file, and the check after every
    kill walks them all: a shallow source keeps a repository of hundreds of snapshots quick
    to check. Restores go elsewhere, so the source's parents never change.
    """
    path = Path(tempfile.mkdtemp(prefix="k9-"))
    yield path
    shutil.rmtree(path)


def _landed(plan: dict[str, Any], commit: str, commits: int = 1) -> range | None:
    """How many commit writes can have landed when the plan's kill came (None: not known).

    Of an operation with one commit write, every other write comes before it (backup and copy
    write their packs and indexes first). A kill timed to land during a commit write may come
    after it, or after later writes that were quicker than the timer.
    """
    if "timer" in plan:
        return None
    if plan["prefix"] != commit:
        return range(1) if commits == 1 else None
    n = plan["nth"]
    return {"before": range(n - 1, n), "after": range(n, n + 1), "during": range(n - 1, commits + 1)}[plan["when"]]


def _report(command: str, kills: int, rounds: int, started: float) -> None:
    # Shown with -s or in the captured output of a failure; the assertions are below it.
    print(f"kill -9 {command}: {kills} kills in {rounds} runs, {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("part", _repositories("backup"))
def test_kill9_backup(server: Server, tmp_path: Path, source_dir: Path, part: int) -> None:
    rng = random.Random(f"{SEED}:backup:{part}")
    started, quota = time.monotonic(), _kills("backup")
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    src = Source(source_dir / "src", rng)
    restores = Restores(src.root, tmp_path)
    clock, plans = Clock(), Plans(rng)
    expected: dict[str, Tree] = {}
    writes: list[str] = []  # what an uncut backup wrote, folder by folder
    kills = rounds = 0
    while kills < quota:
        rounds += 1
        assert rounds <= 3 * quota, f"only {kills} of {rounds} runs were killed"
        tree = src.change()
        before = set(sv.Repository.open(url, PASSWORD).snapshot_ids())
        # The first run is not killed: it counts the writes a backup makes.
        plan = plans.pick(writes) if writes else None
        answer = server.run(
            {"op": "backup", "repo": url, "source": str(src.root), "now": clock().isoformat(), "kill": plan}
        )
        plans.note(answer)
        kills += answer["killed"]
        if not answer["killed"]:
            writes = answer["result"]["writes"]
            # Only the writer's own record goes after it (deleted as the backup ends).
            assert [w for w in writes if w != "writers"][-1] == "snapshots", "the manifest is the last write"

        repo = sv.Repository.open(url, PASSWORD)
        _check(repo)
        after = set(repo.snapshot_ids())
        new = after - before
        assert before <= after
        assert len(new) <= 1
        landed = _landed(plan, "snapshots/") if answer["killed"] and plan else None
        if landed is not None:
            # The manifest write is the commit point: a snapshot exists exactly after it.
            assert len(new) in landed, plan
        if not answer["killed"]:
            assert new == {answer["result"]["snapshot"]}
        for sid in new:
            expected[sid] = tree
        snaps = repo.snapshots()
        for m in snaps:
            restores(repo, m.id, expected[m.id], again=m is snaps[-1])

        # Whatever the crash left, the next backup runs; it is restored as the newest next time.
        m = sv.Engine(repo).backup([src.root], now=clock())
        expected[m.id] = tree

    repo = sv.Repository.open(url, PASSWORD)
    _check(repo)
    assert set(repo.snapshot_ids()) == set(expected)
    for sid, tree in expected.items():
        restores(repo, sid, tree)
    _report("backup", kills, rounds, started)
    assert kills >= quota


@pytest.mark.parametrize("part", _repositories("copy"))
def test_kill9_copy(server: Server, tmp_path: Path, source_dir: Path, part: int) -> None:
    rng = random.Random(f"{SEED}:copy:{part}")
    started, quota = time.monotonic(), _kills("copy")
    src_url = str(tmp_path / "src-repo")
    src_repo = sv.Repository.init(src_url, PASSWORD, kdf=FAST_KDF)
    # One destination shares the source's content IDs (blobs move as they are), the other
    # has its own (every blob is re-encrypted and every tree rewritten).
    dsts = [str(tmp_path / "same-ids"), str(tmp_path / "own-ids")]
    sv.Repository.init(dsts[0], PASSWORD, kdf=FAST_KDF, copy_params_from=src_repo)
    sv.Repository.init(dsts[1], PASSWORD, kdf=FAST_KDF)
    src = Source(source_dir / "src", rng)
    restores = Restores(src.root, tmp_path)
    clock, plans = Clock(), Plans(rng)
    expected: dict[str, Tree] = {}  # by source snapshot ID
    writes: dict[str, list[str]] = {}  # what copying one snapshot wrote, by destination
    kills = rounds = 0
    while kills < quota:
        rounds += 1
        assert rounds <= 3 * quota, f"only {kills} of {rounds} runs were killed"
        for _ in range(rng.choice([1, 1, 2])):
            tree = src.change()
            expected[sv.Engine(src_repo).backup([src.root], now=clock()).id] = tree
        dst_url = rng.choice(dsts)
        dst = sv.Repository.open(dst_url, PASSWORD)
        before = {m.copied_from: m.id for m in dst.snapshots()}
        pending = [m.id for m in src_repo.snapshots() if m.id not in before]
        plan = None
        if dst_url in writes:
            plan = plans.pick(writes[dst_url] * len(pending))
        answer = server.run(
            {"op": "copy", "repo": dst_url, "source_repo": src_url, "now": clock().isoformat(), "kill": plan}
        )
        plans.note(answer)
        kills += answer["killed"]
        if not answer["killed"]:
            copied = answer["result"]["copied"]
            assert [s for s, _ in copied] == pending
            done = answer["result"]["writes"]
            writes[dst_url] = done[: done.index("snapshots") + 1]

        dst = sv.Repository.open(dst_url, PASSWORD)
        _check(dst)
        snaps = dst.snapshots()
        sources = [m.copied_from for m in snaps]
        # A source snapshot is copied at most once, and copies are made oldest first.
        assert len(sources) == len(set(sources))
        assert set(before) <= set(sources)
        new = [s for s in pending if s in sources]
        assert new == pending[: len(new)]
        landed = _landed(plan, "snapshots/", len(pending)) if answer["killed"] and plan else None
        if landed is not None:
            # The n-th manifest written commits the n-th pending snapshot, and only it.
            assert len(new) in landed, plan
        for m in snaps:
            assert m.copied_from in expected
            restores(dst, m.id, expected[m.copied_from], again=m is snaps[-1])

        if rng.random() < 0.5:
            # The next copy completes what the crash left and copies each snapshot once.
            src_repo.copy_snapshots(dst, workers=2)
            dst = sv.Repository.open(dst_url, PASSWORD)
            done = {m.copied_from: m.id for m in dst.snapshots()}
            assert sorted(done) == sorted(m.id for m in src_repo.snapshots())
            assert len(done) == len(dst.snapshot_ids())
            for sid in pending:
                restores(dst, done[sid], expected[sid])

    for dst_url in dsts:
        dst = sv.Repository.open(dst_url, PASSWORD)
        src_repo.copy_snapshots(dst, workers=2)
        dst = sv.Repository.open(dst_url, PASSWORD)
        _check(dst)
        snaps = dst.snapshots()
        assert sorted(m.copied_from for m in snaps) == sorted(expected)
        for m in snaps:
            assert m.copied_from is not None
            restores(dst, m.id, expected[m.copied_from], again=m is snaps[-1])
    _report("copy", kills, rounds, started)
    assert kills >= quota


@pytest.mark.parametrize("part", _repositories("forget"))
def test_kill9_forget(server: Server, tmp_path: Path, source_dir: Path, part: int) -> None:
    rng = random.Random(f"{SEED}:forget:{part}")
    started, quota = time.monotonic(), _kills("forget")
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    src = Source(source_dir / "src", rng)
    restores = Restores(src.root, tmp_path)
    clock, plans = Clock(), Plans(rng)
    policy = sv.Policy(name="k9", sources=[str(src.root)], retention=KeepLast(2))
    repo.save_policy(policy, now=clock())
    expected: dict[str, Tree] = {}
    # A snapshot made without a policy: forget never touches it.
    outside = sv.Engine(repo).backup([src.root], now=clock())
    expected[outside.id] = snapshot_tree(src.root)
    kills = rounds = 0
    while kills < quota:
        rounds += 1
        assert rounds <= 3 * quota, f"only {kills} of {rounds} runs were killed"
        for _ in range(rng.choice([1, 2, 3])):
            tree = src.change()
            expected[sv.Engine(repo).run_policy(policy, now=clock()).id] = tree
        now = clock()
        (decision,) = [r.decision for r in sv.forget(repo, now=now, dry_run=True)]
        remove = list(decision.remove)  # newest first, the order forget deletes in
        before = set(repo.snapshot_ids())
        plan = plans.pick(["snapshots"] * len(remove))
        answer = server.run({"op": "forget", "repo": url, "now": now.isoformat(), "kill": plan})
        plans.note(answer)
        kills += answer["killed"]

        repo = sv.Repository.open(url, PASSWORD)
        _check(repo)
        after = set(repo.snapshot_ids())
        gone = before - after
        assert after <= before
        assert gone <= set(remove)
        assert outside.id in after
        # Deleted in order, each at once: a snapshot is there whole or not at all.
        assert [s for s in remove if s in gone] == remove[: len(gone)]
        if not answer["killed"]:
            assert sorted(answer["result"]["removed"]) == sorted(remove) == sorted(gone)
        elif (landed := _landed(plan, "snapshots/", len(remove))) is not None:
            assert len(gone) in landed, plan
        # What the crash left is still whole, as is what forget keeps.
        snaps = repo.snapshots()
        for m in snaps:
            restores(repo, m.id, expected[m.id], again=m is snaps[-1])
        for sid in gone:
            del expected[sid]

        if rng.random() < 0.5:
            # The next forget finishes the job.
            sv.forget(repo, now=clock())
            assert set(repo.snapshot_ids()) == set(decision.keep) | {outside.id}
            for sid in set(expected) - set(decision.keep) - {outside.id}:
                del expected[sid]

    repo = sv.Repository.open(url, PASSWORD)
    _check(repo)
    assert set(repo.snapshot_ids()) == set(expected)
    for sid, tree in expected.items():
        restores(repo, sid, tree)
    _report("forget", kills, rounds, started)
    assert kills >= quota
