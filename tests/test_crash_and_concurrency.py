"""kill -9 at any moment leaves a repository that checks clean; concurrent writers need no lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.treecompare import assert_same_tree

_CHILD = """
import sys
import snapvault as sv
repo = sv.Repository.open(sys.argv[1], sys.argv[2])
m = sv.Engine(repo, workers=2).backup(sys.argv[3:])
print(m.id)
"""


def _child(repo: str, *sources: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, repo, PASSWORD, *map(str, sources)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _tree(root: Path, files: int, size: int, seed: int) -> Path:
    import random

    rng = random.Random(seed)
    for i in range(files):
        write(root / f"d{i % 7}" / f"f{i}.bin", rng.randbytes(size + i))
    write(root / "log.txt", "".join(f"line {rng.random()}\n" for _ in range(200_000)))
    return root


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tree(tmp_path_factory.mktemp("crashsrc") / "src", files=60, size=1 << 20, seed=1)


def _packs(repo_dir: Path) -> int:
    return sum(1 for p in (repo_dir / "data").rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))


# Kill points across the whole backup: before anything is written, after the first pack,
# mid-way, near the end (the backup writes about 60 packs here).
@pytest.mark.parametrize("after_packs", [0, 1, 12, 35, 58])
def test_kill_9_during_backup_then_check_passes_and_next_backup_succeeds(
    big_source: Path, tmp_path: Path, after_packs: int
) -> None:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    child = _child(url, big_source)
    deadline = time.monotonic() + 60
    while _packs(tmp_path / "repo") < after_packs and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    repo = sv.Repository.open(url, PASSWORD)
    report = repo.check(read_data=True)
    assert report.ok, report.problems
    # No lock was taken, so none is left behind; the next backup just runs.
    m = sv.Engine(repo).backup([big_source])
    assert repo.check(read_data=True).ok
    sv.Restorer(repo).restore(m.id, tmp_path / "out")
    assert_same_tree(big_source, tmp_path / "out" / os.path.relpath(big_source, "/"))


def test_interrupted_backup_data_is_reused(big_source: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    child = _child(url, big_source)
    # Wait until the first index file lands (written every few packs), then kill.
    deadline = time.monotonic() + 60
    index_dir = tmp_path / "repo" / "index"
    while not [p for p in index_dir.glob("*") if not p.name.startswith(".tmp-")] and time.monotonic() < deadline:
        if child.poll() is not None:
            pytest.skip("the backup finished before it could be interrupted")
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    repo = sv.Repository.open(url, PASSWORD)
    m = sv.Engine(repo).backup([big_source])
    assert m.stats.bytes_added < m.stats.bytes_read


def test_two_concurrent_backups_into_one_repository(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    a = _tree(tmp_path / "a", files=25, size=300_000, seed=2)
    b = _tree(tmp_path / "b", files=25, size=300_000, seed=3)
    # Shared content between the two, so both writers race to store the same blobs.
    write(a / "shared.bin", (tmp_path / "b" / "d0" / "f0.bin").read_bytes() * 3)
    procs = [_child(url, a), _child(url, b)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    ids = [o[0].strip() for o in outs]
    repo = sv.Repository.open(url, PASSWORD)
    assert sorted(repo.snapshot_ids()) == sorted(ids)
    assert repo.check(read_data=True).ok
    for sid, src in zip(ids, (a, b), strict=True):
        out = tmp_path / f"out-{sid[:8]}"
        sv.Restorer(repo).restore(sid, out)
        assert_same_tree(src, out / os.path.relpath(src, "/"))
