"""A restore interrupted half way, run again, fetches and writes only the rest; an existing
file is trusted on size+mtime by default and hashed with ``verify_existing=True``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.errors import JobCancelled
from snapvault.restore.restorer import Restorer
from snapvault.storage import open_store
from snapvault.storage.wrappers import _Wrapper
from tests.conftest import FAST_KDF, PASSWORD, write

N = 10


class Counting(_Wrapper):
    """Counts reads of data packs, the cost a resumed restore must save."""

    reads = 0

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if key.startswith("data/"):
            Counting.reads += 1
        return super().get_range(key, offset, length)

    def get(self, key: str) -> bytes:
        if key.startswith("data/"):
            Counting.reads += 1
        return super().get(key)


@pytest.fixture
def snap(tmp_path: Path) -> tuple[str, sv.Manifest]:
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    src = tmp_path / "src"
    # Incompressible 600 KB files: about one pack each, so skipping a file skips a read.
    for i in range(N):
        write(src / f"f{i:02d}.bin", os.urandom(600_000))
    return url, sv.Engine(repo).backup([src])


def _restorer(url: str) -> Restorer:
    Counting.reads = 0
    return Restorer(sv.Repository.open(url, PASSWORD, store=Counting(open_store(url))), workers=1)


def test_interrupted_restore_resumes_writing_and_fetching_only_the_rest(
    snap: tuple[str, sv.Manifest], tmp_path: Path
) -> None:
    url, m = snap
    out = tmp_path / "out"
    full = _restorer(url).restore(m, tmp_path / "full")
    full_reads = Counting.reads
    done: list[str] = []
    with pytest.raises(JobCancelled):
        _restorer(url).restore(m, out, on_file=done.append, should_stop=lambda: len(done) >= N // 2)
    first = len(done)
    assert 0 < first < N
    second = _restorer(url).restore(m, out)
    assert (second.files, second.files_skipped) == (N - first, first)
    resumed_reads = Counting.reads
    # The same pack reads as a fresh restore of only the files the first run did not write.
    rest = sorted({p.name for p in (tmp_path / "full").rglob("*.bin")} - {Path(r).name for r in done})
    _restorer(url).restore(m, tmp_path / "rest", include=rest)
    assert resumed_reads == Counting.reads < full_reads
    assert (full.files, full.files_skipped) == (N, 0)
    for p in (tmp_path / "full").rglob("*.bin"):
        assert (out / p.relative_to(tmp_path / "full")).read_bytes() == p.read_bytes()


def test_same_size_and_mtime_but_other_content_is_kept_unless_verified(
    snap: tuple[str, sv.Manifest], tmp_path: Path
) -> None:
    url, m = snap
    out = tmp_path / "out"
    _restorer(url).restore(m, out)
    victim = next(out.rglob("f03.bin"))
    good = victim.read_bytes()
    st = victim.stat()
    victim.write_bytes(b"\0" * len(good))  # same size, then the same mtime back
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    quick = _restorer(url).restore(m, out)
    assert (quick.files, quick.files_skipped) == (0, N)
    assert victim.read_bytes() == b"\0" * len(good)  # the documented quick-check trade-off
    verified = _restorer(url).restore(m, out, verify_existing=True)
    assert (verified.files, verified.files_skipped) == (1, N - 1)
    assert victim.read_bytes() == good
    forced = _restorer(url).restore(m, out, skip_existing=False)
    assert (forced.files, forced.files_skipped) == (N, 0)
