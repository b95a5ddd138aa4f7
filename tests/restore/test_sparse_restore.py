"""A restore leaves runs of zeros as holes (``sparse=True``, the default), bit-exact either way.

Snapshots record no holes: a file that had them, or a dense file of zeros, comes back with its
zero runs not written (as restic restores), while ``sparse=False`` writes every byte. Allocation
is measured as ``st_blocks`` on the real file system under ``tmp_path``; skipped where it makes
no holes.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snapvault as sv
from snapvault.restore.writer import data_spans
from tests.conftest import FAST_KDF, PASSWORD

MiB = 1 << 20
SMALL_CHUNKS = sv.ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10)


def make_sparse(path: Path, size: int, data: list[tuple[int, bytes]]) -> Path:
    """A file of ``size`` bytes holding ``data`` at its offsets and holes elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, chunk in data:
            f.seek(offset)
            f.write(chunk)
    return path


def allocated(path: Path) -> int:
    """Bytes the file system allocated to ``path``, once its writes reached the disk (a file
    system may count delayed allocations only then)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        return os.fstat(fd).st_blocks * 512
    finally:
        os.close(fd)


@pytest.fixture
def holes(tmp_path: Path) -> None:
    probe = make_sparse(tmp_path / "probe", 4 * MiB, [(MiB, b"x" * 4096)])
    if allocated(probe) >= MiB:
        pytest.skip("the file system under tmp_path makes no holes")
    probe.unlink()


def restored(target: Path, source: Path) -> Path:
    return target / os.path.relpath(source, "/")


@pytest.mark.usefixtures("holes")
def test_a_sparse_file_comes_back_sparse_and_with_sparse_false_fully_allocated(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    # 16 KiB of data at two offsets of 8 MiB. With the default chunker the whole file is one
    # chunk (zeros never cut), so the holes are found inside a chunk, not as zero chunks.
    rng = random.Random(1)
    f = make_sparse(tmp_path / "src" / "f", 8 * MiB, [(MiB, rng.randbytes(8192)), (5 * MiB + 123, rng.randbytes(8192))])
    m = sv.Engine(local_repo).backup([f.parent])
    r = sv.Restorer(local_repo)
    result = r.restore(m, tmp_path / "sparse")
    out = restored(tmp_path / "sparse", f)
    assert out.read_bytes() == f.read_bytes()
    assert allocated(out) <= allocated(f) + 8192 < MiB
    # bytes_written counts the file's length, holes included.
    assert result.bytes_written == 8 * MiB
    r.restore(m, tmp_path / "dense", sparse=False)
    out = restored(tmp_path / "dense", f)
    assert out.read_bytes() == f.read_bytes()
    assert allocated(out) >= 8 * MiB


@pytest.mark.usefixtures("holes")
def test_a_dense_file_of_zeros_comes_back_as_a_hole(local_repo: sv.Repository, tmp_path: Path) -> None:
    f = tmp_path / "src" / "zeros"
    f.parent.mkdir()
    f.write_bytes(bytes(8 * MiB + 100))
    assert allocated(f) >= 8 * MiB
    m = sv.Engine(local_repo).backup([f.parent])
    sv.Restorer(local_repo).restore(m, tmp_path / "out")
    out = restored(tmp_path / "out", f)
    assert out.stat().st_size == 8 * MiB + 100
    assert allocated(out) < 64 << 10
    assert not out.read_bytes().strip(b"\0")


@pytest.mark.usefixtures("holes")
@pytest.mark.parametrize("sparse", [True, False])
def test_holes_across_chunk_boundaries_restore_bit_exact(tmp_path: Path, sparse: bool) -> None:
    rng = random.Random(7)
    files = []
    for i in range(4):
        size = 2 * MiB + rng.randrange(1, 4096)
        offsets = sorted(rng.sample(range(size), 6))
        data = [(off, rng.randbytes(min(rng.randrange(1, 150_000), size - off))) for off in offsets]
        # Runs of zeros inside data, about a block (4 KiB) long or a few: each run is
        # skipped block by block, and must stop right before the next byte that is not zero.
        start = rng.randrange(size // 2)
        stretch = bytearray(rng.randbytes(200_000))
        for at, n in zip(range(1000, 200_000, 20_000), (4095, 4096, 4097, 8191, 8193, 12_287, 40_000), strict=False):
            stretch[at : at + n] = bytes(n)
        data.append((start, bytes(stretch)))
        files.append(make_sparse(tmp_path / "src" / f"f{i}", size, data))
    files.append(make_sparse(tmp_path / "src" / "ends-in-data", MiB, [(MiB - 3, b"end")]))
    files.append(make_sparse(tmp_path / "src" / "starts-in-data", MiB, [(0, b"start")]))
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, chunker=SMALL_CHUNKS)
    m = sv.Engine(repo).backup([tmp_path / "src"])
    result = sv.Restorer(repo).restore(m, tmp_path / "out", sparse=sparse)
    assert result.ok
    for f in files:
        out = restored(tmp_path / "out", f)
        assert out.read_bytes() == f.read_bytes(), f.name
        if sparse:
            assert allocated(out) <= allocated(f) + 2 * 4096, f.name
        else:
            assert allocated(out) >= f.stat().st_size, f.name


@st.composite
def zero_runs(draw: st.DrawFn) -> tuple[bytes, int]:
    """Data of alternating runs of zeros and of other bytes, many of them a multiple of the
    block size give or take a byte or two, and that block size."""
    block = draw(st.sampled_from([512, 1024]))
    near_blocks = st.builds(lambda k, d: max(1, k * block + d), st.integers(0, 4), st.integers(-2, 2))
    lengths = draw(st.lists(st.one_of(near_blocks, st.integers(1, 3000)), max_size=12))
    first_zero = draw(st.booleans())
    data = b"".join(bytes(n) if (i % 2 == 0) == first_zero else b"\1" * n for i, n in enumerate(lengths))
    return data, block


@settings(deadline=None, max_examples=300)
@given(zero_runs())
def test_data_spans_skip_only_zeros_and_every_run_of_a_block(case: tuple[bytes, int]) -> None:
    data, block = case
    spans = data_spans(data, bytes(block))
    # Sorted, disjoint, non-empty stretches; everything outside them is zero.
    assert all(a < b for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(spans))
    kept = bytearray(len(data))
    for a, b in spans:
        kept[a:b] = data[a:b]
    assert bytes(kept) == data
    # What is written holds no run of zeros of a block or more.
    assert all(bytes(block) not in data[a:b] for a, b in spans)
