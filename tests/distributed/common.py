"""What the distributed tests share: a source tree, a recording callback, a cluster with a killer."""

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
    a callback that SIGKILLs one worker at the first progress a run reports; the list names the
    process killed."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = sorted(client.run(os.getpid).values())
        killed: list[int] = []

        def kill_once(rec: Recorder) -> None:
            if not killed and sum(rec.updates) > 0:
                killed.append(pids[0])
                os.kill(pids[0], signal.SIGKILL)

        yield cluster, client, Recorder(kill_once), killed
