"""Random schedules of backups, restores, copies and checks over stores that misbehave.

A hypothesis state machine drives two repositories on fsspec's memory filesystem through
:class:`FaultyStore` (transient errors on every operation, lost responses after writes that
landed, short reads, torn and stale listings), with and without :class:`RetryingStore` in
front, while the fault rates change between steps. What it proves, for every schedule:

- every operation either succeeds or raises a :class:`snapvault.SnapvaultError`, and an
  operation that met no injected fault succeeds;
- a restore that reports success reproduces the tree as it was backed up, bit for bit, and a
  restore that fails never leaves a wrong file under a final name (zero silent mismatches);
- read through a fault-free view of the same stores, both repositories check clean with
  ``read_data`` after every step, list exactly the snapshots the model knows, and each
  snapshot (including one committed by a backup whose answer was lost) restores exactly;
  after a failed backup or copy every earlier snapshot still does;
- a check that reports no problem reports it on data that restores; one through faults that
  reports problems met a fault.

``SNAPVAULT_FAULT_SCHEDULES`` sets the number of schedules (default 1000, what CI runs).
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import fsspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import snapvault as sv
from snapvault.errors import SnapvaultError
from snapvault.maintenance.check import check_snapshot
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.storage import FaultyStore, RetryingStore, Store, StoreEntry, open_store
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.treecompare import snapshot_tree

SCHEDULES = int(os.environ.get("SNAPVAULT_FAULT_SCHEDULES", "1000"))

# Small chunks, so a file of a few KiB is several blobs and an edit shares some with the
# version before it.
CHUNKER = ChunkerParams(min_size=64, avg_size=256, max_size=1024)
RATES = st.sampled_from([0.0, 0.0, 0.05, 0.2, 0.5])
LAYERS = st.sampled_from(["retry", "raw"])
VAULTS = st.sampled_from(["a", "b"])
T0 = datetime(2026, 1, 1, tzinfo=UTC)

Tree = dict[str, tuple[object, ...]]
T = TypeVar("T")


def _no_sleep(_: float) -> None:
    pass


def _innermost(store: Store) -> Store:
    while isinstance(store, (FaultyStore, RetryingStore)):
        store = store.inner
    return store


@pytest.fixture(autouse=True)
def _every_commit_reads_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check every commit right at its commit, as conftest's fixture of this name does, but
    through a fault-free view of the store: a read-back through the faulty one would fail
    on the injected faults, not on the commit."""
    save = sv.Repository.save_manifest

    @functools.wraps(save)
    def save_and_check(self: sv.Repository, manifest: sv.Manifest) -> sv.Manifest:
        saved = save(self, manifest)
        clean = sv.Repository.open(self.url, PASSWORD, store=_innermost(self.store))
        report = check_snapshot(clean, saved.id)
        assert report.ok, [str(p) for p in report.problems]
        return saved

    monkeypatch.setattr(sv.Repository, "save_manifest", save_and_check)


@dataclass
class Vault:
    """One repository: its fault-free store, the faulty layers over it, and the model."""

    url: str
    inner: Store
    faulty: FaultyStore
    retrying: RetryingStore
    seed: int
    #: Snapshot ID -> the source tree it was taken of.
    expected: dict[str, Tree] = field(default_factory=dict)
    handles: int = 0
    fault_free: sv.Repository | None = None
    #: The stored objects when the repository last checked clean, and when every snapshot
    #: last restored exactly: the same objects give the same answers, so those are skipped.
    checked: frozenset[StoreEntry] = frozenset()
    verified: frozenset[StoreEntry] = frozenset()

    def state(self) -> frozenset[StoreEntry]:
        return frozenset(self.inner.list(""))

    def clean(self) -> sv.Repository:
        # One fault-free handle for the whole schedule, its index brought up to date first
        # (a handle's index is loaded once; see the xfail test at the end).
        if self.fault_free is None:
            self.fault_free = sv.Repository.open(self.url, PASSWORD, store=self.inner)
        self.fault_free.refresh_index()
        return self.fault_free

    def through(self, layer: str) -> sv.Repository:
        # A fresh handle per operation, as a new process would open it; its nonces come from
        # a seeded stream, so pack names, and the faults drawn on them, repeat.
        self.handles += 1
        rnd = random.Random(f"{self.seed}-{self.handles}")
        store = self.retrying if layer == "retry" else self.faulty
        return sv.Repository.open(self.url, PASSWORD, store=store, random=rnd.randbytes)


class FaultMachine(RuleBasedStateMachine):
    """Two repositories (``b`` receives copies of ``a``), one source tree, changing faults."""

    def __init__(self) -> None:
        super().__init__()
        # Directly in the temporary folder: a restore re-creates the source's absolute path,
        # and every level is a directory made and removed again.
        self.dir = Path(tempfile.mkdtemp(prefix="svf-"))
        self.src = self.dir / "src"
        self.src.mkdir()
        self.vaults: dict[str, Vault] = {}
        self.steps = 0
        self.targets = 0

    # -- set-up -----------------------------------------------------------------------------

    @initialize(
        seed=st.integers(0, 2**32 - 1), same_ids=st.booleans(), faults=st.lists(RATES, min_size=10, max_size=10)
    )
    def setup(self, seed: int, same_ids: bool, faults: list[float]) -> None:
        self.rng = random.Random(seed)
        self._write_sources(self.rng.randrange(1, 5))
        root = f"memory://fault-{uuid.uuid4().hex}"
        a = sv.Repository.init(
            f"{root}/a", PASSWORD, kdf=FAST_KDF, chunker=CHUNKER, random=random.Random(f"{seed}-a").randbytes
        )
        # Either the same content IDs as ``a`` (blobs and trees copied as they are) or its own
        # (every blob re-encrypted under new IDs).
        sv.Repository.init(
            f"{root}/b",
            PASSWORD,
            kdf=FAST_KDF,
            chunker=CHUNKER,
            copy_params_from=a if same_ids else None,
            random=random.Random(f"{seed}-b").randbytes,
        )
        for i, name in enumerate("ab"):
            url = f"{root}/{name}"
            inner = open_store(url)
            faulty = FaultyStore(inner, seed=seed + i)
            self.vaults[name] = Vault(
                url, inner, faulty, RetryingStore(faulty, attempts=6, sleep=_no_sleep, seed=seed + i), seed + i
            )
        # A first snapshot taken without faults, so that the first failures have something
        # earlier to spare; then the faults start.
        m = sv.Engine(self.vaults["a"].clean(), workers=1).backup([self.src], hostname="fault-machine", now=self._now())
        self.vaults["a"].expected[m.id] = snapshot_tree(self.src)
        self.set_faults("a", *faults[:5])
        self.set_faults("b", *faults[5:])

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        fs = fsspec.filesystem("memory")
        for v in self.vaults.values():
            if fs.exists(v.url):
                fs.rm(v.url, recursive=True)

    # -- helpers ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        self.steps += 1
        return T0 + timedelta(minutes=self.steps)

    def _write_sources(self, n: int) -> None:
        for _ in range(n):
            self._edit_one()

    def _edit_one(self) -> None:
        rng = self.rng
        files = sorted(p for p in self.src.rglob("*") if p.is_file())
        action = rng.choice(["add", "edit", "edit", "remove"] if files else ["add"])
        if action == "remove" and len(files) > 1:
            rng.choice(files).unlink()
            return
        if action == "add" or action == "remove":
            path = self.src / rng.choice(["", "sub", "sub/deep"]) / f"f{rng.randrange(1000)}.bin"
        else:
            path = rng.choice(files)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_bytes() if path.exists() else b""
        if old and rng.random() < 0.5:
            # Change a few bytes in place: most chunks stay as they were.
            pos = rng.randrange(len(old))
            data = old[:pos] + rng.randbytes(rng.randrange(1, 64)) + old[pos + 1 :]
        else:
            data = rng.randbytes(rng.randrange(0, 4096))
        path.write_bytes(data[:4096])
        # A new mtime every time: an edit must never look unchanged to the parent shortcut.
        t = (T0 + timedelta(seconds=self.steps * 10 + rng.randrange(10))).timestamp()
        os.utime(path, (t, t))
        self.steps += 1

    def _attempt(self, fn: Callable[[], T], *faulty: FaultyStore) -> tuple[T | None, SnapvaultError | None, int]:
        """Run ``fn``: its result or its typed error, and how many faults it met. Any other
        exception escapes and fails the schedule."""
        before = sum(f.injected for f in faulty)
        try:
            out, err = fn(), None
        except SnapvaultError as e:
            out, err = None, e
        met = sum(f.injected for f in faulty) - before
        assert err is None or met > 0, f"failed without meeting any fault: {err!r}"
        return out, err, met

    def _target(self) -> Path:
        self.targets += 1
        return self.dir / f"restore-{self.targets}"

    def _restored(self, target: Path) -> Path:
        return target / os.path.relpath(self.src, "/")

    def _restores_exactly(self, v: Vault, sid: str) -> None:
        """Restore through the fault-free view: it must succeed and match the model."""
        target = self._target()
        result = sv.Restorer(v.clean(), workers=1).restore(sid, target)
        assert result.ok, result.errors
        assert snapshot_tree(self._restored(target)) == v.expected[sid], sid
        shutil.rmtree(target)

    def _all_restore_exactly(self, v: Vault) -> None:
        state = v.state()
        if state == v.verified:
            return
        for sid in sorted(v.expected):
            self._restores_exactly(v, sid)
        v.verified = state

    # -- rules ------------------------------------------------------------------------------

    @rule(edits=st.integers(1, 3))
    def edit_sources(self, edits: int) -> None:
        self._write_sources(edits)

    @rule(
        vault=VAULTS,
        transient=RATES,
        short=RATES,
        lost=RATES,
        torn=RATES,
        stale=RATES,
    )
    def set_faults(self, vault: str, transient: float, short: float, lost: float, torn: float, stale: float) -> None:
        f = self.vaults[vault].faulty
        f.transient_rate, f.short_read_rate, f.fail_after_write_rate = transient, short, lost
        f.torn_list_rate, f.stale_list_rate = torn, stale

    @rule(layer=LAYERS)
    def backup(self, layer: str) -> None:
        a = self.vaults["a"]
        tree = snapshot_tree(self.src)
        before = set(a.clean().snapshot_ids())
        now = self._now()

        def run() -> sv.Manifest:
            return sv.Engine(a.through(layer), workers=1).backup([self.src], hostname="fault-machine", now=now)

        m, err, _ = self._attempt(run, a.faulty)
        new = set(a.clean().snapshot_ids()) - before
        if m is not None:
            assert new == {m.id}
        else:
            # At most the snapshot whose commit landed but whose answer was lost.
            assert len(new) <= 1, new
        for sid in new:
            a.expected[sid] = tree
            self._restores_exactly(a, sid)
        if err is not None:
            self._all_restore_exactly(a)

    @rule(vault=VAULTS, pick=st.integers(0, 255), layer=LAYERS)
    def restore(self, vault: str, pick: int, layer: str) -> None:
        # The choice is drawn before the state is looked at: which snapshots exist depends on
        # the faults met, and what hypothesis draws must not.
        v = self.vaults[vault] if self.vaults[vault].expected else self.vaults["a"]
        sid = sorted(v.expected)[pick % len(v.expected)]
        expected = v.expected[sid]
        target = self._target()
        result, _, met = self._attempt(lambda: sv.Restorer(v.through(layer), workers=1).restore(sid, target), v.faulty)
        got = snapshot_tree(self._restored(target))
        if result is not None and result.ok:
            assert got == expected, f"restore of {sid} reported success but differs"
        else:
            if result is not None:
                assert result.errors, "a restore that is not ok names what it did not restore"
                assert met > 0, result.errors
            # Whatever a failed restore left under a final name is right, as far as it goes.
            for rel, entry in got.items():
                assert rel in expected, f"{rel} was never in snapshot {sid}"
                assert entry[0] == expected[rel][0], rel
                if entry[0] == "file":
                    assert entry[3] == expected[rel][3], f"{rel} restored with wrong content"
        shutil.rmtree(target, ignore_errors=True)

    @rule(layer=LAYERS)
    def copy(self, layer: str) -> None:
        a, b = self.vaults["a"], self.vaults["b"]
        before = set(b.clean().snapshot_ids())
        result, err, met = self._attempt(
            lambda: a.through(layer).copy_snapshots(b.through(layer), workers=1), a.faulty, b.faulty
        )
        clean_b = b.clean()
        new = set(clean_b.snapshot_ids()) - before
        for sid in sorted(new):
            origin = clean_b.load_manifest(sid).copied_from
            assert origin in a.expected, (sid, origin)
            b.expected[sid] = a.expected[origin]
            self._restores_exactly(b, sid)
        if result is not None:
            assert {dst for _, dst in result.copied} == new
            if met == 0:
                # Undisturbed, a copy leaves every snapshot of ``a`` in ``b``.
                origins = {m.copied_from for m in clean_b.snapshots()}
                assert set(a.expected) <= origins
        if err is not None:
            self._all_restore_exactly(b)

    @rule(vault=VAULTS, layer=LAYERS)
    def check(self, vault: str, layer: str) -> None:
        v = self.vaults[vault]
        report, _, met = self._attempt(lambda: v.through(layer).check(read_data=True), v.faulty)
        if report is None:
            return
        if report.ok:
            # Never ok on data that does not restore.
            self._all_restore_exactly(v)
        else:
            assert met > 0, [str(p) for p in report.problems]

    # -- invariants, through fault-free views -----------------------------------------------

    @invariant()
    def every_repository_checks_clean(self) -> None:
        for name, v in self.vaults.items():
            state = v.state()
            if state == v.checked:
                continue
            clean = v.clean()
            assert set(clean.snapshot_ids()) == set(v.expected), name
            report = clean.check(read_data=True)
            assert report.ok, (name, [str(p) for p in report.problems])
            v.checked = state


def test_fault_schedules() -> None:
    run_state_machine_as_test(
        FaultMachine,
        settings=settings(
            max_examples=SCHEDULES,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_a_handle_restores_a_snapshot_written_after_it_loaded_its_index(
    memory_repo: sv.Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "f", b"first")
    reader = sv.Repository.open(memory_repo.url, PASSWORD)
    first = sv.Engine(memory_repo, workers=1).backup([src])
    assert sv.Restorer(reader, workers=1).restore(first.id, tmp_path / "one").ok
    # Another writer (here another handle) commits a snapshot with new data.
    write(src / "f", b"second")
    writer = sv.Repository.open(memory_repo.url, PASSWORD)
    second = sv.Engine(writer, workers=1).backup([src])
    result = sv.Restorer(reader, workers=1).restore(second.id, tmp_path / "two")
    assert result.ok, result.errors
    assert (tmp_path / "two" / os.path.relpath(src, "/") / "f").read_bytes() == b"second"


def test_a_handle_copies_a_snapshot_written_after_it_loaded_its_index(
    memory_repo: sv.Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "f", b"first")
    reader = sv.Repository.open(memory_repo.url, PASSWORD)
    assert reader.index is not None  # loaded now, before the snapshot below exists
    write(src / "f", b"second")
    second = sv.Engine(sv.Repository.open(memory_repo.url, PASSWORD), workers=1).backup([src])
    dst = sv.Repository.init(f"memory://copy-dst-{os.getpid()}-{id(tmp_path)}", PASSWORD, kdf=FAST_KDF)
    reader.copy_snapshots(dst, [second.id], workers=1)
    [copied] = dst.snapshots()
    result = sv.Restorer(dst, workers=1).restore(copied.id, tmp_path / "out")
    assert result.ok, result.errors
    assert (tmp_path / "out" / os.path.relpath(src, "/") / "f").read_bytes() == b"second"
