"""kill -9 at random points of backup, copy, forget and prune never leaves an unusable repository.

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

A prune has no single commit but four windows where a crash leaves work half done: right
after its deletion mark is written, during the repack's copies, between deleting packs and
rewriting the index files that list them, and before deleting the mark. Its kills are aimed
at those (planned from an uncut prune of a copy of the repository, which must finish), and
after each one every snapshot restores bit-exact; the next uncut prune leaves no mark and
nothing for check to warn about.

Seeded from a fixed base, so a run is repeatable up to where a timed kill lands.
``SNAPVAULT_KILL9_RUNS`` (default 200) is the number of kills across backup, copy and forget,
and prune takes a quarter of that on top (about 250 kills in all); raise it for a long run, which
also has each repository take more kills in a row.
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
from snapvault.repository.lifecycle import read_writers
from snapvault.retention import KeepLast
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.treecompare import snapshot_tree

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kills with SIGKILL and watches pidfds")

RUNS = int(os.environ.get("SNAPVAULT_KILL9_RUNS", "200"))
SEED = 20260917
# Each command's share of the kills in percent: backup, copy and forget share RUNS, prune
# takes a quarter of it on top.
SHARES = {"backup": 45, "copy": 30, "forget": 25, "prune": 25}
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

    def _timed(self) -> dict[str, Any]:
        """A kill anywhere in the operation, half of the time in its last quarter."""
        rng = self.rng
        duration = max(self.lived) if self.lived else 0.2
        lo = 0.0 if rng.random() < 0.5 else 0.75 * duration
        return {"timer": rng.uniform(lo, 1.05 * duration)}

    def _at(self, writes: list[str], pos: int, whens: list[str]) -> dict[str, Any]:
        """A kill around the write at ``pos`` (counted among the writes to its folder)."""
        folder = writes[pos]
        return {
            "prefix": folder + "/",
            "nth": writes[: pos + 1].count(folder),
            "when": self.rng.choice(whens),
            "delay": self.rng.uniform(0, 0.003),
        }

    def pick(self, writes: list[str], commit: str = "snapshots") -> dict[str, Any]:
        """A kill plan for an operation expected to make ``writes`` (the folder of each write,
        in order), of which those to ``commit`` are commit writes."""
        rng = self.rng
        if rng.random() < 0.35 or not writes:
            return self._timed()
        last = max((i for i, w in enumerate(writes) if w == commit), default=len(writes) - 1)
        if last < len(writes) - 1 and rng.random() < 0.2:
            # A write after the last commit (a backup removing its writer record).
            return self._at(writes, rng.randrange(last + 1, len(writes)), ["before", "after"])
        # The last commit weighs most, then each write before it half as much.
        pos = last
        while pos > 0 and rng.random() < 0.5:
            pos -= 1
        return self._at(writes, pos, ["before", "after", "during"] if writes[pos] == commit else ["before", "after"])

    def pick_prune(self, writes: list[str], kinds: list[str]) -> dict[str, Any]:
        """A kill plan for a prune expected to make ``writes`` (``kinds``: ``put`` or ``delete``
        each): a fifth timed, the rest at a write, most inside one of its critical windows
        (:func:`_prune_windows`), each window as likely as any write of the whole run."""
        rng = self.rng
        if rng.random() < 0.2 or not writes:
            return self._timed()
        windows = [w for w in _prune_windows(writes, kinds).values() if w]
        pos = rng.choice(rng.choice([*windows, range(len(writes))]))
        return self._at(writes, pos, ["before", "after", "during"])


def _prune_windows(writes: list[str], kinds: list[str]) -> dict[str, list[int]]:
    """The positions of a prune's writes in each of its critical windows.

    ``mark``: the deletion mark's write. ``copy``: the repack's packs and index files, written
    after the mark. ``drop``: the deletes of marked packs, and the index file that lists what
    stays, written after them. ``unlist``: the deletes of index files, then the delete of the
    mark. A mark of an earlier, killed run is carried out before a new one is written: its
    ``drop`` and ``unlist`` writes count in with this run's.
    """
    out: dict[str, list[int]] = {"mark": [], "copy": [], "drop": [], "unlist": []}
    phase = ""
    for i, (folder, kind) in enumerate(zip(writes, kinds, strict=True)):
        if (folder, kind) == ("deletions", "put"):
            out["mark"].append(i)
            phase = "copy"
        elif (folder, kind) == ("data", "delete"):
            out["drop"].append(i)
            phase = "drop"
        elif folder in ("data", "index") and kind == "put" and phase in ("copy", "drop"):
            out[phase].append(i)
        elif folder in ("index", "deletions") and kind == "delete":
            out["unlist"].append(i)
            phase = ""
    return out


def _check(repo: sv.Repository) -> list[str]:
    """Check every stored byte; return the warnings."""
    report = repo.check(read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert repo.unreadable_snapshots() == []
    return report.warnings


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


def _landed(plan: dict[str, Any], writes: list[str], commit: str = "snapshots", commits: int = 1) -> range | None:
    """How many commit writes can have landed when the plan's kill came (None: not known).

    ``writes`` are the folders of the writes the plan was made from. Of an operation with one
    commit write, a kill at another write lands after the commit if that write came after it
    there (a backup removes its writer record last; its packs, index files and first writer
    records come before the commit in every run). A kill timed to land during a commit write
    may come after it, or after later writes that were quicker than the timer.
    """
    if "timer" in plan:
        return None
    folder, n = plan["prefix"].rstrip("/"), plan["nth"]
    if folder != commit:
        if commits != 1:
            return None
        at = [i for i, w in enumerate(writes) if w == folder][n - 1]
        landed = int(at > writes.index(commit))
        return range(landed, landed + 1)
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
        planned_from = writes
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
        landed = _landed(plan, planned_from) if answer["killed"] and plan else None
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
        plan, planned_from = None, writes.get(dst_url, []) * len(pending)
        if dst_url in writes:
            plan = plans.pick(planned_from)
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
        landed = _landed(plan, planned_from, commits=len(pending)) if answer["killed"] and plan else None
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
        assert sorted(m.copied_from or "" for m in snaps) == sorted(expected)
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
        planned_from = ["snapshots"] * len(remove)
        plan = plans.pick(planned_from)
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
        elif (landed := _landed(plan, planned_from, commits=len(remove))) is not None:
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


def _finished(repo: sv.Repository) -> None:
    """What an uncut prune with no writer running leaves: no mark pending, and a repository
    that checks clean with nothing to warn about (no pack deleted but still listed, none
    listed by no index)."""
    assert repo.list_keys("deletions") == []
    assert _check(repo) == []


def _prune_time(repo: sv.Repository, clock: Clock, *, writer_live: bool) -> datetime:
    """The ``now`` of the next prune. Writer records carry the machine's clock, so a crashed
    writer's record is live for a prune a minute after it and aged out two hours after it
    (past the default one-hour timeout), whatever the machine's clock says. So prunes' times
    go back and forth between the test's clock and the machine's: only that comparison reads
    them, as between machines whose clocks differ."""
    records = [r.time for r in read_writers(repo)]
    if writer_live:
        return max(records) + timedelta(minutes=1)
    return max([clock(), *(t + timedelta(hours=2) for t in records)])


@pytest.mark.parametrize("part", _repositories("prune"))
def test_kill9_prune(server: Server, tmp_path: Path, source_dir: Path, part: int) -> None:
    rng = random.Random(f"{SEED}:prune:{part}")
    started, quota = time.monotonic(), _kills("prune")
    url = str(tmp_path / "repo")
    # The smallest packs: every backup writes packs of its own, so there are many.
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    src = Source(source_dir / "src", rng)
    restores = Restores(src.root, tmp_path)
    clock, plans = Clock(), Plans(rng)
    rehearsal = str(tmp_path / "rehearsal")
    # The first snapshot is never forgotten: its packs hold the first version of every file,
    # which later snapshots rewrite one by one, so they turn partly unused and get repacked.
    first = sv.Engine(repo).backup([src.root], now=clock())
    expected: dict[str, Tree] = {first.id: snapshot_tree(src.root)}
    kills = rounds = 0
    while kills < quota:
        rounds += 1
        assert rounds <= 3 * quota, f"only {kills} of {rounds} runs were killed"
        # Not always a backup: one after a kill stores again what it finds only in marked
        # packs, which would spare the next prune the rescue of what the kill left uncopied.
        for _ in range(rng.choice([0, 0, 1, 2])):
            tree = src.change()
            expected[sv.Engine(repo).backup([src.root], now=clock()).id] = tree
        if rng.random() < 0.7:
            # Forget all but the first, the newest and up to two others: packs to delete, and
            # packs to repack whose live blobs only older snapshots still reference.
            middle = repo.snapshots()[1:-1]
            keep = {m.id for m in rng.sample(middle, min(len(middle), rng.randint(0, 2)))}
            for m in middle:
                if m.id not in keep:
                    repo.delete_snapshot(m.id)
                    del expected[m.id]
        writer_live = rng.random() < 0.15
        if writer_live:
            # A backup killed after its first pack leaves its writer record: this round's
            # mark waits for that writer (it is not carried out), and a later round's prune,
            # past the record's timeout, carries out every pending mark. (Its change is
            # backed up by the next round.)
            src.change()
            crashed = server.run(
                {
                    "op": "backup",
                    "repo": url,
                    "source": str(src.root),
                    "now": clock().isoformat(),
                    "kill": {"prefix": "data/", "nth": 1, "when": "after", "delay": 0},
                }
            )
            assert crashed["killed"]
        now = _prune_time(repo, clock, writer_live=writer_live).isoformat()
        options = {"max_repack": rng.choice([0.1, 0.5, 1.0]), "max_unused": rng.choice([0.0, 0.0, 0.05])}

        # An uncut prune on a copy of the repository as it now is (with whatever earlier kills
        # left in it) must finish; its writes are what the kill is planned from, and the same
        # prune on the same objects makes the same writes.
        shutil.rmtree(rehearsal, ignore_errors=True)
        shutil.copytree(url, rehearsal, symlinks=True)
        marks = set(repo.list_keys("deletions"))
        uncut = server.run({"op": "prune", "repo": rehearsal, "now": now, **options, "kill": None})
        plans.note(uncut)
        result = uncut["result"]
        if writer_live:
            # (An earlier crashed writer whose record a killed prune did not get to remove
            # counts as live again for a prune this early: more waiting, never less.)
            assert result["live_writers"] >= 1, result
            copy = sv.Repository.open(rehearsal, PASSWORD)
            _check(copy)
            # The mark it wrote (if any) waits for the writer that never saw it.
            assert len(set(copy.list_keys("deletions")) - marks) == result["marks_written"], result
        else:
            _finished(sv.Repository.open(rehearsal, PASSWORD))

        plan = plans.pick_prune(result["writes"], result["kinds"])
        answer = server.run({"op": "prune", "repo": url, "now": now, **options, "kill": plan})
        kills += answer["killed"]

        # A prune deletes no snapshot, and every one restores whatever the kill cut short.
        repo = sv.Repository.open(url, PASSWORD)
        if answer["killed"] or writer_live:
            _check(repo)
        else:
            _finished(repo)
        assert set(repo.snapshot_ids()) == set(expected), plan
        for sid, tree in expected.items():
            restores(repo, sid, tree, again=True)

    # And after the last kill, the next prune finishes it.
    repo = sv.Repository.open(url, PASSWORD)
    repo.prune(now=_prune_time(repo, clock, writer_live=False), max_repack=1.0, max_unused=0.0)
    _finished(repo)
    assert read_writers(repo) == []
    assert set(repo.snapshot_ids()) == set(expected)
    for sid, tree in expected.items():
        restores(repo, sid, tree, again=True)
    _report("prune", kills, rounds, started)
    assert kills >= quota
