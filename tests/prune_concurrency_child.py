"""The processes tests/test_prune_concurrency.py runs side by side: writers, a pruner, a paused writer.

Run as ``python prune_concurrency_child.py ROLE CONFIG.json``. Each role opens the repository
itself (a local folder or an S3 URL with its storage options) and talks to the test only
through files in ``config["control"]``:

- ``writer``: backs up its own source folder in a loop, changing a few files between backups
  (seeded: fresh bytes, bytes from a pool every writer shares, bytes this writer had in an
  earlier round), and appends one JSON line per committed snapshot to ``config["results"]``:
  its ID and ``{relative path: sha256}`` of the tree it was taken of. It stops once
  ``stop`` exists and it has done ``min_rounds``.
- ``pruner``: in a loop, forgets snapshots (``Repository.delete_snapshot``: older ones of each
  writer, now and then a writer's newest, and the ``old`` host's once ``paused`` exists), then
  prunes; it appends one JSON line per forget (written before the deletes) and one per
  completed prune. It stops once ``stop`` exists.
- ``paused``: one backup of its source folder whose ``on_file`` hook, at ``config["pause_at"]``,
  creates ``marker`` and waits for ``ack``: the test stops the process (SIGSTOP) while it waits
  there, in the middle of the backup, with the index loaded, and creates ``ack`` before it
  continues it (SIGCONT). The snapshot's ID and stats go to ``config["results"]``.

A failure is a traceback on stderr and exit code 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import snapvault as sv

#: Snapshots of each writer the pruner always keeps (besides a newest it forgets now and then).
KEEP = 2
#: Backups each writer makes per complete prune, at most (plus one).
PER_PRUNE = 1
#: Beyond this many rounds a writer stops whatever the test says (a runaway guard).
MAX_ROUNDS = 500
#: Backups a writer runs again after a known race before it gives up.
MAX_RETRIES = 20
#: Seconds the paused writer waits for ``ack`` before it gives up.
ACK_TIMEOUT = 600.0


def pool(seed: int) -> list[bytes]:
    """The contents every writer draws from, so that blobs are shared across writers."""
    rng = random.Random(f"{seed}:pool")
    return [rng.randbytes(rng.randint(1 << 10, 100 << 10)) for _ in range(24)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _append(path: str, doc: dict[str, Any]) -> None:
    # One line per write, flushed to disk before the next step, so the test never reads half
    # a record and a record never goes missing behind a later action.
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(doc) + "\n")
        f.flush()
        os.fsync(f.fileno())


def known_race(e: BaseException) -> str | None:
    """Which known library race ``e`` is, if any: none now. The three the first runs met (a
    local listing meeting a delete, an index file deleted after it was listed, a prune whose
    index lagged its listing of snapshots) are fixed and pinned in
    tests/test_prune_concurrency.py; any failure fails the run."""
    del e
    return None


def _open(cfg: dict[str, Any]) -> sv.Repository:
    return sv.Repository.open(cfg["url"], cfg["password"], storage_options=cfg["storage_options"] or None)


class Source:
    """A writer's source folder: 20-45 files of 1-100 KiB in three folders, changed each round."""

    def __init__(self, root: Path, rng: random.Random, shared: list[bytes]) -> None:
        self.root = root
        self.rng = rng
        self.shared = shared
        self.files: dict[str, bytes] = {}
        self.history: list[bytes] = []
        self.serial = 0
        for k in range(30):
            self._put(f"d{k % 3}/f{k:03}.bin", self._content(pool_share=0.3))

    def _content(self, pool_share: float) -> bytes:
        if self.rng.random() < pool_share:
            return self.rng.choice(self.shared)
        return self.rng.randbytes(self.rng.randint(1 << 10, 100 << 10))

    def _put(self, rel: str, data: bytes) -> None:
        self.serial += 1
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # A modification time of its own for every write: a rewrite within the file system's
        # timestamp granularity must not look unchanged to the parent-snapshot shortcut.
        t = 1_700_000_000_000_000_000 + self.serial * 1_000_000
        os.utime(path, ns=(t, t))
        self.files[rel] = data
        self.history.append(data)

    def change(self) -> None:
        """One to four seeded edits: new bytes, pool bytes, bytes of an earlier round, a file
        added or removed."""
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            names = sorted(self.files)
            r = rng.random()
            if r < 0.35:
                self._put(rng.choice(names), self._content(pool_share=0.0))
            elif r < 0.55:
                self._put(rng.choice(names), rng.choice(self.shared))
            elif r < 0.8:
                # Content this writer had before, likely only in snapshots forgotten since.
                self._put(rng.choice(names), rng.choice(self.history))
            elif r < 0.9 and len(names) < 45:
                self._put(f"d{rng.randrange(3)}/n{self.serial:04}.bin", self._content(pool_share=0.3))
            elif len(names) > 20:
                gone = rng.choice(names)
                (self.root / gone).unlink()
                del self.files[gone]

    def expected(self) -> dict[str, str]:
        return {rel: sha256(data) for rel, data in sorted(self.files.items())}


def prunes_done(cfg: dict[str, Any]) -> int:
    try:
        with open(cfg["pruner_results"], encoding="utf-8") as f:
            return sum(1 for line in f if line.startswith('{"prune"'))
    except FileNotFoundError:
        return 0


def writer(cfg: dict[str, Any]) -> None:
    control = Path(cfg["control"])
    rng = random.Random(f"{cfg['seed']}:writer:{cfg['host']}")
    src = Source(Path(cfg["source"]), rng, pool(cfg["seed"]))
    repo = _open(cfg)
    for rounds in range(MAX_ROUNDS):
        # Paced to the pruner (PER_PRUNE backups a prune), so that each prune has a few new
        # snapshots to meet and the repository stays small enough to check and restore fully.
        while prunes_done(cfg) < rounds // PER_PRUNE and not (control / "stop").exists():
            time.sleep(0.05)
        if rounds >= cfg["min_rounds"] and (control / "stop").exists():
            return
        if rounds:
            src.change()
        if rng.random() < 0.3:
            # Now and then a fresh handle; otherwise one long-lived handle, as a daemon has.
            repo = _open(cfg)
        for attempt in range(MAX_RETRIES + 1):
            try:
                m = sv.Engine(repo, workers=2).backup([str(src.root)], hostname=cfg["host"])
                break
            except sv.ObjectNotFound as e:
                if not (race := known_race(e)) or attempt == MAX_RETRIES:
                    raise
                _append(cfg["results"], {"race": race, "error": str(e)})
        _append(cfg["results"], {"id": m.id, "round": rounds, "files": src.expected()})
        time.sleep(rng.uniform(0.0, 0.15))


def pruner(cfg: dict[str, Any]) -> None:
    control = Path(cfg["control"])
    rng = random.Random(f"{cfg['seed']}:pruner")
    repo = _open(cfg)
    old_forgotten = False
    failed = 0
    n = 0
    while not (control / "stop").exists():
        # Read before forgetting: a prune logged with these flags started after them.
        after_pause = (control / "paused").exists()
        after_resume = (control / "resumed").exists()
        if rng.random() < 0.5:
            repo = _open(cfg)
        by_host: dict[str, list[sv.Manifest]] = {}
        for m in repo.snapshots():
            by_host.setdefault(m.hostname, []).append(m)
        forget: list[str] = []
        if after_pause and not old_forgotten:
            # The snapshot whose blobs the paused writer is about to reuse.
            forget += [m.id for m in by_host.get("old", [])]
            old_forgotten = True
        for host, snaps in sorted(by_host.items()):
            if not host.startswith("w"):
                continue
            snaps.sort(key=lambda m: m.time)
            forget += [m.id for m in snaps[:-KEEP] if rng.random() < 0.6]
            if len(snaps) > KEEP and rng.random() < 0.15:
                # The newest too: the writer's next backup (maybe running already) has it as
                # parent and takes unchanged files from it.
                forget.append(snaps[-1].id)
        _append(cfg["results"], {"forget": forget})
        for sid in forget:
            repo.delete_snapshot(sid)
        max_repack, max_unused = rng.choice([0.1, 0.5, 1.0]), rng.choice([0.0, 0.05])
        started = time.monotonic()
        try:
            result = repo.prune(now=datetime.now(UTC), max_repack=max_repack, max_unused=max_unused)
        except (sv.PruneError, sv.ObjectNotFound) as e:
            # Real damage fails every attempt: three failed prunes in a row (each on a fresh
            # handle) fail the child.
            if not (race := known_race(e)) or failed >= 2:
                raise
            _append(cfg["results"], {"race": race, "error": str(e)})
            failed, repo = failed + 1, _open(cfg)
            continue
        failed = 0
        took = round(time.monotonic() - started, 2)
        _append(
            cfg["results"],
            {"prune": n, "paused": after_pause, "resumed": after_resume, "seconds": took, **summary(result)},
        )
        n += 1
        time.sleep(rng.uniform(0.0, 0.2))


def summary(r: sv.PruneResult) -> dict[str, Any]:
    """The counts of a prune result, as JSON."""
    return {
        "marked": {k: v.packs for k, v in r.marked.items()},
        "repacked_blobs": r.repacked_blobs,
        "deleted": r.deleted.packs,
        "deferred": r.deferred.packs,
        "rescued": r.rescued,
        "marks_written": r.marks_written,
        "marks_carried_out": r.marks_carried_out,
        "live_writers": r.live_writers,
        "writer_records_removed": r.writer_records_removed,
    }


def paused_writer(cfg: dict[str, Any]) -> None:
    control = Path(cfg["control"])
    fired = False

    def on_file(path: str, size: int, unchanged: bool) -> None:
        nonlocal fired
        if fired or os.path.basename(path) != cfg["pause_at"]:
            return
        fired = True
        (control / "marker").write_text(str(os.getpid()))
        deadline = time.monotonic() + ACK_TIMEOUT
        while not (control / "ack").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never acknowledged the pause")
            time.sleep(0.01)

    for attempt in range(MAX_RETRIES + 1):
        try:
            m = sv.Engine(_open(cfg), workers=2).backup([cfg["source"]], hostname="paused", on_file=on_file)
            break
        except sv.ObjectNotFound as e:
            # Only while it starts: once paused, it has loaded the index.
            if fired or not (race := known_race(e)) or attempt == MAX_RETRIES:
                raise
            _append(cfg["results"], {"race": race, "error": str(e)})
    if not fired:
        raise AssertionError(f"the backup never reached {cfg['pause_at']}")
    _append(cfg["results"], {"id": m.id, "stats": m.stats.model_dump()})


ROLES = {"writer": writer, "pruner": pruner, "paused": paused_writer}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))
