"""What the distributed tests share: a source tree, a comparison of snapshots, a recording
callback, a cluster with a killer."""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fsspec.callbacks import Callback

import snapvault as sv

distributed = pytest.importorskip("distributed")


def source_tree(root: Path, seed: int = 1) -> Path:
    """Files of many sizes (empty, small, several chunks), nested, with a symlink, an empty
    directory, a hardlink and a sparse file."""
    rnd = random.Random(seed)
    src = root / "src"
    for d in range(3):
        (src / f"d{d}" / "sub").mkdir(parents=True)
        for f in range(8):
            (src / f"d{d}" / f"f{f}.bin").write_bytes(rnd.randbytes(rnd.choice([0, 10, 5000, 200_000])))
        (src / f"d{d}" / "sub" / "big").write_bytes(rnd.randbytes(1_500_000))
    (src / "empty").mkdir()
    (src / "link").symlink_to("d0/f1.bin")
    os.link(src / "d1" / "sub" / "big", src / "d1" / "hardlink")
    with open(src / "d2" / "sparse", "wb") as f:
        f.seek(3 << 20)
        f.write(b"end of a sparse file")
    return src


def same_source_tree(repo: sv.Repository, a: sv.Manifest, b: sv.Manifest, src: Path) -> bool:
    """Whether two snapshots hold the same tree for ``src`` below the same directories.

    The directories above the source are compared by their entries' names only: their
    metadata is the temporary folder's, which anything on this machine may touch between two
    backups (a worker started in place of a killed one writes its scratch space there).
    """
    ta, tb = a.tree, b.tree
    for name in src.parts[1:]:
        na, nb = repo.read_tree(ta), repo.read_tree(tb)
        if [n.name for n in na] != [n.name for n in nb]:
            return False
        ta = next(n.subtree for n in na if n.name == name and n.subtree is not None)
        tb = next(n.subtree for n in nb if n.name == name and n.subtree is not None)
    return ta == tb


class Recorder(Callback):  # type: ignore[misc]
    """An fsspec callback that keeps every update, and calls ``on_update`` after each."""

    def __init__(self, on_update: Any = None) -> None:
        super().__init__()
        self.updates: list[int] = []
        self.on_update = on_update

    def relative_update(self, inc: int = 1) -> None:
        self.updates.append(inc)
        if self.on_update is not None:
            self.on_update(self)
        super().relative_update(inc)


@contextlib.contextmanager
def cluster_with_a_killer() -> Iterator[tuple[Any, Any, Recorder, list[int]]]:
    """A cluster of its own (two worker processes, restarted by their nannies), its client, and
    a callback that SIGKILLs one worker at the first progress a run reports while a task of the
    run is running on that worker (a worker between tasks would lose nothing); the list names
    the process killed."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        killed: list[int] = []

        def busy_worker() -> int | None:
            # The scheduler runs in this process; a snapshot of its task table is enough.
            for ts in list(cluster.scheduler.tasks.values()):
                if ts.state == "processing" and str(ts.key).startswith("snapvault-") and ts.processing_on:
                    return int(pids[ts.processing_on.address])
            return None

        def kill_once(rec: Recorder) -> None:
            if not killed and sum(rec.updates) > 0:
                pid = busy_worker()
                if pid is not None:
                    killed.append(pid)
                    os.kill(pid, signal.SIGKILL)

        yield cluster, client, Recorder(kill_once), killed


def too_long(base: Path) -> None:
    """Directories nested past the system's path length below ``base``: unreadable by path."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(20):
            name = f"{i:02d}" + "x" * 240
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"out of reach")
    finally:
        os.close(fd)


# The counters a distributed or pooled run must share with a single-process one (storage aside).
WALK_STATS = (
    "files_new",
    "files_changed",
    "files_unchanged",
    "files_removed",
    "dirs",
    "other",
    "total_files",
    "total_bytes",
    "bytes_read",
)


def walk_stats(m: sv.Manifest) -> dict[str, int]:
    """A snapshot's counters of its walk: equal between a split run and a single-process one."""
    return {name: getattr(m.stats, name) for name in WALK_STATS}
