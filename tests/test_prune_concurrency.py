"""Prune while others back up: no committed snapshot loses a byte, on a local folder and on S3.

Five real processes share one repository (tests/prune_concurrency_child.py): three writers
back up their own folders in a loop (files shared across writers through a common pool, and
content of earlier rounds brought back, so dedup crosses writers and forgotten snapshots), one
pruner forgets snapshots and prunes in a loop (repacking up to all of the repository per run),
and one writer is stopped with SIGSTOP in the middle of its backup, after it loaded the index,
for two complete prunes, then continued with SIGCONT.

The paused writer's folder holds the files of an ``old`` snapshot taken before it started; the
pruner forgets that snapshot only once the writer is stopped. So the writer goes on to reuse
blobs whose packs the prune marked while it was stopped: the test checks that the marks wait
for it (those packs are still stored and marked after two prunes), that it did reuse them,
and that the packs are rescued, not deleted, once it has committed.

At the end (loops stopped, one last prune, which with no writer left carries out every mark):
every snapshot a writer reported as committed exists unless the pruner forgot it, and
restores bit-exact against what its writer recorded; ``check --read-data`` passes; no
deletion mark or writer record is left.

Three races the first runs met are fixed, and each is pinned below by a test that forces it
deterministically (a delete between a listing's steps, or a store that runs a prune or a
backup at the one instant it needs): a local listing met an object deleted before it was
stat'ed, loading the index met an index file a prune deleted after it was listed, and a prune
met a snapshot committed between its index refresh and its listing of snapshots.

Content is seeded; the interleaving is whatever the scheduler makes of it, which is the
point. Writers are paced to the pruner (a backup each per prune), so the repository stays small
enough to restore every snapshot. No assertion depends on timing: every wait has a generous
deadline that fails with the state it was waited on. By default two seeds run on the local
store and one on S3; ``SNAPVAULT_PRUNE_CONCURRENCY_SEEDS=N`` runs N on each, for a long run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest

import snapvault as sv
from snapvault.storage import Capabilities, LocalStore, StoreEntry
from tests.conftest import FAST_KDF, PASSWORD, write

#: Seeds per backend: two on the local store and one on S3 (the emulator makes a run several
#: times slower), or SNAPVAULT_PRUNE_CONCURRENCY_SEEDS on each.
_N = os.environ.get("SNAPVAULT_PRUNE_CONCURRENCY_SEEDS")
RUNS = [
    (backend, 20261204 + i) for backend, default in (("local", 2), ("s3", 1)) for i in range(int(_N) if _N else default)
]
CHILD = Path(__file__).with_name("prune_concurrency_child.py")
WRITERS = ("w0", "w1", "w2")
#: Backups each looping writer makes at least.
MIN_ROUNDS = 4
#: Seconds any one wait may take before the test fails (a 2-CPU machine under load is slow).
DEADLINE = 300.0
#: Files of the paused writer read before it stops, and after (then the ``old`` files).
PAUSED_FILES = 24
PAUSE_AT = "a015.bin"

Expected = dict[str, str]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # A child outliving a killed test run would keep writing into its temporary folder.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a child's results file (a line still being written is not)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _state(pid: int) -> str:
    """A process's state letter from /proc (``T``: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


class Children:
    """The child processes of one run, their logs and results; every wait fails loudly."""

    def __init__(self, work: Path, base: dict[str, Any]) -> None:
        self.work = work
        self.base = base
        self.control = work / "control"
        self.control.mkdir(parents=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, IO[bytes]] = {}

    def start(self, role: str, name: str, **cfg: Any) -> subprocess.Popen[bytes]:
        config = {**self.base, "control": str(self.control), "results": str(self.results(name)), **cfg}
        path = self.work / f"{name}.json"
        path.write_text(json.dumps(config))
        log = self.logs[name] = (self.work / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), role, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.procs[name] = proc
        return proc

    def results(self, name: str) -> Path:
        return self.work / f"{name}.jsonl"

    def lines(self, name: str) -> list[dict[str, Any]]:
        return _lines(self.results(name))

    def log_tail(self, name: str) -> str:
        return (self.work / f"{name}.log").read_bytes()[-6000:].decode(errors="replace")

    def touch(self, flag: str) -> None:
        (self.control / flag).touch()

    def _failed(self) -> str | None:
        for name, p in self.procs.items():
            if p.poll() not in (None, 0):
                return f"{name} exited with {p.returncode}:\n{self.log_tail(name)}"
        return None

    def wait_for(self, what: str, cond: Callable[[], bool], state: Callable[[], object]) -> None:
        """Poll ``cond`` until it holds; fail at once if a child failed, or after DEADLINE."""
        deadline = time.monotonic() + DEADLINE
        while not cond():
            if failed := self._failed():
                pytest.fail(f"while waiting for {what}: {failed}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {DEADLINE:.0f} s; state: {state()}", pytrace=False)
            time.sleep(0.05)

    def wait_exit(self, name: str) -> None:
        try:
            code = self.procs[name].wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not end within {DEADLINE:.0f} s:\n{self.log_tail(name)}", pytrace=False)
        assert code == 0, f"{name} exited with {code}:\n{self.log_tail(name)}"

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                # A stopped process takes SIGKILL too, but continue it first so nothing lingers.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGCONT)
                p.kill()
            p.wait()
        for log in self.logs.values():
            log.close()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Children]]:
    made: list[Children] = []

    def make(base: dict[str, Any]) -> Children:
        made.append(Children(tmp_path / "run", base))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def src() -> Iterator[Path]:
    """A folder for the sources right below the temporary root: every snapshot stores one tree
    per level above a changed file, and each prune walks them all (through an emulator, one
    request each), so shallow sources keep the run short."""
    path = Path(tempfile.mkdtemp(prefix="svpc-"))
    yield path
    shutil.rmtree(path)


def _hashes(files: dict[str, bytes]) -> Expected:
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(files.items())}


def _put_all(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        write(root / rel, data)


def _restored(root: Path) -> Expected:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _packs_of(repo: sv.Repository, files: dict[str, bytes]) -> set[bytes]:
    """The packs the index locates these files' blobs in (each file under the chunker's
    minimum size is one blob)."""
    idx = repo.refresh_index()
    out = set()
    for rel, data in files.items():
        loc = idx.get(repo.blob_id(data))
        assert loc is not None, f"the blob of {rel} is not indexed"
        out.add(loc.pack_id)
    return out


@pytest.mark.skipif(sys.platform != "linux", reason="stops and continues processes, reads /proc")
@pytest.mark.parametrize(("backend", "seed"), RUNS)
def test_prune_with_concurrent_and_paused_writers(
    backend: str,
    seed: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    src: Path,
    children: Callable[[dict[str, Any]], Children],
) -> None:
    if backend == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        url, options = bucket.url_for("vault"), bucket.storage_options
    else:
        url, options = str(tmp_path / "vault"), {}

    def fresh() -> sv.Repository:
        return sv.Repository.open(url, PASSWORD, storage_options=options or None)

    repo = sv.Repository.init(url, PASSWORD, storage_options=options or None, kdf=FAST_KDF, pack_size=1 << 20)
    rng = random.Random(f"{seed}:test")

    # The old snapshot: files only it holds (one blob each), about 1 MiB, so they fill their
    # own packs; the paused writer's folder has the same files, read after its pause.
    old_files = {f"x/x{k:03}.bin": rng.randbytes(rng.randint(32 << 10, 100 << 10)) for k in range(16)}
    _put_all(src / "old", old_files)
    old = sv.Engine(repo).backup([src / "old"], hostname="old")
    old_packs = _packs_of(repo, old_files)
    paused_files = {f"a/a{k:03}.bin": rng.randbytes(rng.randint(40 << 10, 100 << 10)) for k in range(PAUSED_FILES)}
    paused_files |= old_files
    _put_all(src / "paused", paused_files)

    base = {"url": url, "storage_options": options, "password": PASSWORD, "seed": seed}
    run = children({**base, "pruner_results": str(tmp_path / "run" / "pruner.jsonl")})
    run.start("pruner", "pruner")
    for host in WRITERS:
        run.start("writer", host, host=host, source=str(src / host), min_rounds=MIN_ROUNDS)

    def prunes() -> list[dict[str, Any]]:
        return [r for r in run.lines("pruner") if "prune" in r]

    def snapshots_of(name: str) -> list[dict[str, Any]]:
        return [r for r in run.lines(name) if "id" in r]

    def progress() -> dict[str, int]:
        return {"prunes": len(prunes()), **{h: len(snapshots_of(h)) for h in WRITERS}}

    # The paused writer starts into a repository with history: prunes done, marks perhaps
    # pending, each writer committed.
    run.wait_for("first prune and first backups", lambda: all(progress().values()), progress)
    paused = run.start("paused", "paused", source=str(src / "paused"), pause_at=PAUSE_AT)
    run.wait_for("paused writer at its pause point", (run.control / "marker").exists, progress)
    os.kill(paused.pid, signal.SIGSTOP)
    run.wait_for("stopped state", lambda: _state(paused.pid) == "T", lambda: _state(paused.pid))
    # Both flags are written while it is stopped: it reads "ack" only once continued, and
    # the pruner forgets the old snapshot in its next round.
    run.touch("ack")
    run.touch("paused")

    run.wait_for(
        "two complete prunes after the pause",
        lambda: sum(p["paused"] for p in prunes()) >= 2,
        lambda: prunes()[-3:],
    )
    assert paused.poll() is None, "the paused writer ended during the prunes"
    assert _state(paused.pid) == "T", "the paused writer ran during the prunes"
    # The old snapshot is forgotten and its packs are marked, but a writer that loaded the
    # index before the marks is still live (stopped): they must wait, still stored.
    watcher = fresh()
    assert old.id not in watcher.snapshot_ids()
    stored = {bytes.fromhex(name) for name, _ in watcher.packs()}
    assert old_packs <= stored, "a prune deleted packs a stopped writer may still reference"
    marked = set().union(*(m.packs for m in watcher.deletion_marks().values()))
    assert old_packs <= marked, "the forgotten snapshot's packs were not marked by two prunes"
    # The second of those prunes found the mark pending and reported its packs deferred.
    assert [p for p in prunes() if p["paused"]][1]["deferred"] >= len(old_packs)

    os.kill(paused.pid, signal.SIGCONT)
    run.wait_exit("paused")
    run.touch("resumed")
    [paused_result] = snapshots_of("paused")
    # It reused the old snapshot's blobs (from the index it loaded before they were marked):
    # only its own files were added.
    assert paused_result["stats"]["data_blobs_added"] == PAUSED_FILES, paused_result["stats"]

    # Loops go on for at least one more prune (the one that meets the paused writer's
    # snapshot) and until each writer has made its rounds.
    run.wait_for(
        "a prune after the resume and every writer's rounds",
        lambda: any(p["resumed"] for p in prunes()) and all(len(snapshots_of(h)) >= MIN_ROUNDS for h in WRITERS),
        progress,
    )
    run.touch("stop")
    for name in ("pruner", *WRITERS):
        run.wait_exit(name)

    repo = fresh()
    final = repo.prune(now=datetime.now(UTC))
    assert final.live_writers == 0, final
    assert final.deferred.packs == 0, final
    assert repo.list_keys("deletions") == [], "a prune with no writer running left marks behind"
    assert repo.list_keys("writers") == [], "a writer that ended left its record"

    expected: dict[str, tuple[str, Expected]] = {}
    for host in WRITERS:
        for r in snapshots_of(host):
            expected[r["id"]] = (str(src / host), r["files"])
    expected[paused_result["id"]] = (str(src / "paused"), _hashes(paused_files))
    forgotten = {sid for r in run.lines("pruner") for sid in r.get("forget", ())}
    assert old.id in forgotten
    present = set(repo.snapshot_ids())
    lost = sorted(sid for sid in expected if sid not in forgotten and sid not in present)
    assert not lost, f"snapshots lost: {lost}"
    assert present <= set(expected), f"snapshots nobody reported: {sorted(present - set(expected))}"
    assert not present & forgotten, "a forgotten snapshot came back"
    assert repo.unreadable_snapshots() == []

    # The old files' packs were marked while the paused writer was stopped; the mark has been
    # carried out since, and they were rescued because its snapshot needs them.
    assert old_packs <= {bytes.fromhex(name) for name, _ in repo.packs()}, "packs the paused writer reused are gone"
    assert _packs_of(repo, old_files) == old_packs

    out = tmp_path / "restore"
    for sid in sorted(present):
        root, files = expected[sid]
        result = sv.Restorer(repo).restore(sid, out)
        assert result.ok, (sid, result.errors)
        assert _restored(out / os.path.relpath(root, "/")) == files, f"snapshot {sid} does not restore bit-exact"
        shutil.rmtree(out)

    report = repo.check(read_data=True)
    assert report.ok, [str(p) for p in report.problems]

    pruned = prunes()
    races = Counter(r["race"] for name in ("pruner", *WRITERS, "paused") for r in run.lines(name) if "race" in r)
    # Shown with -s or in the captured output of a failure.
    print(
        f"{backend} seed {seed}: {len(pruned)} prunes, {len(expected)} snapshots reported, "
        f"{len(forgotten)} forgotten, {len(present)} restored; marks written "
        f"{sum(p['marks_written'] for p in pruned)}, carried out {sum(p['marks_carried_out'] for p in pruned)} "
        f"(+{final.marks_carried_out} at the end), deferred in {sum(p['deferred'] > 0 for p in pruned)} prunes, "
        f"rescued {sum(p['rescued'] for p in pruned) + final.rescued} packs, "
        f"repacked {sum(p['repacked_blobs'] for p in pruned)} blobs; operations run again after a known "
        f"race: {races or 'none'}"
    )


# -- the races the run above meets, each reproduced deterministically -----------------------
#
# Each is forced at the one instant it needs; all three once failed an operation of the run.


class HookStore:
    """A local store that runs ``action`` once, at the first listing ``when`` accepts: right
    before it lists, or (``after``) right after, returning the listing taken before."""

    def __init__(
        self, root: str, when: Callable[[str], bool], action: Callable[[], object], *, after: bool = False
    ) -> None:
        self.inner = LocalStore(root)
        self.when = when
        self.action = action
        self.after = after
        self.fired = False

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        return self.inner.put_if_absent(key, data)

    def put_file_if_absent(self, key: str, path: str) -> bool:
        return self.inner.put_file_if_absent(key, path)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        fire = not self.fired and self.when(prefix)
        if fire and not self.after:
            self.fired = True
            self.action()
        entries = list(self.inner.list(prefix))
        if fire and self.after:
            self.fired = True
            self.action()
        return iter(entries)


def _two_snapshots(path: str, root: Path) -> tuple[sv.Repository, sv.Manifest, sv.Manifest]:
    repo = sv.Repository.init(path, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    rng = random.Random(7)
    made = []
    for name in ("a", "b"):
        _put_all(root / name, {f"f{k}.bin": rng.randbytes(64 << 10) for k in range(20)})
        made.append(sv.Engine(repo).backup([root / name], hostname=name))
    return repo, made[0], made[1]


def test_a_local_listing_leaves_out_an_object_deleted_while_it_lists(tmp_path: Path) -> None:
    # In the run above: a backup's search for its parent lists snapshots/ while the pruner
    # forgets one, a prune lists writers/ while a backup ends and removes its record.
    store = LocalStore(str(tmp_path / "store"))
    for name in "abc":
        store.put_if_absent(f"snapshots/{name}", b"x")
    listing = store.list("snapshots")
    first = next(listing)
    for name in "abc":
        if f"snapshots/{name}" != first.key:
            store.delete(f"snapshots/{name}")
    assert list(listing) == []


def test_a_restore_loads_the_index_while_a_prune_carries_out_a_mark(tmp_path: Path) -> None:
    path = str(tmp_path / "vault")
    repo, a, b = _two_snapshots(path, tmp_path / "src")
    repo.delete_snapshot(a.id)
    # A writer running across the prune keeps its mark pending; once it ended, the mark is
    # ripe and the next prune carries it out, replacing the index files.
    with sv.Repository.open(path, PASSWORD).writer_session(host="x"):
        first = sv.Repository.open(path, PASSWORD).prune(now=datetime.now(UTC))
        assert first.marks_written == 1, first
        assert first.marks_carried_out == 0, first

    def prune() -> None:
        result = sv.Repository.open(path, PASSWORD).prune(now=datetime.now(UTC))
        assert result.marks_carried_out == 1, result
        assert result.index_files_deleted > 0, result

    store = HookStore(path, lambda prefix: prefix == "index", prune, after=True)
    reader = sv.Repository.open(path, PASSWORD, store=store)
    result = sv.Restorer(reader).restore(b.id, tmp_path / "out")
    assert store.fired
    assert result.ok, result.errors


def test_a_prune_meets_a_snapshot_committed_after_it_refreshed_its_index(tmp_path: Path) -> None:
    path = str(tmp_path / "vault")
    repo, a, _ = _two_snapshots(path, tmp_path / "src")
    write(tmp_path / "src" / "c" / "new.bin", b"committed while the prune starts")
    index_listed = False

    def when(prefix: str) -> bool:
        nonlocal index_listed
        index_listed = index_listed or prefix == "index"
        return prefix == "snapshots" and index_listed

    store = HookStore(path, when, lambda: sv.Engine(repo).backup([tmp_path / "src" / "c"], hostname="c"))
    pruner = sv.Repository.open(path, PASSWORD, store=store)
    repo.delete_snapshot(a.id)
    pruner.prune(now=datetime.now(UTC))
    assert store.fired
