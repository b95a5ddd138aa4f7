"""A sparse file is backed up without reading its holes, and as exactly the chunks of its bytes.

The holes are given to the chunker as zeros, so a sparse file and the same bytes written densely
have the same chunk IDs (they deduplicate), and ``bytes_read`` counts only what was read from
disk. Runs on the real file system under ``tmp_path``; skipped where it makes no holes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.archiver.holes import READ_SIZE, file_pieces, may_have_holes
from snapvault.pipeline.tree import Node
from tests.conftest import FAST_KDF, PASSWORD

MiB = 1 << 20
# Small chunks, so that holes and data fall across many chunk boundaries.
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
    """Bytes the file system allocated to ``path``."""
    return os.stat(path).st_blocks * 512


@pytest.fixture(autouse=True)
def _holes_or_skip(tmp_path: Path) -> None:
    probe = make_sparse(tmp_path / "probe", 4 * MiB, [(MiB, b"x" * 4096)])
    if allocated(probe) >= MiB or not may_have_holes(os.stat(probe)):
        pytest.skip("the file system under tmp_path makes no holes (or has no SEEK_HOLE)")
    probe.unlink()


def node_of(repo: sv.Repository, manifest: sv.Manifest, path: Path) -> Node:
    tree = manifest.tree
    parts = Path(os.path.relpath(path, "/")).parts
    for part in parts[:-1]:
        sub = next(n for n in repo.read_tree(tree) if n.name == part).subtree
        assert sub is not None
        tree = sub
    return next(n for n in repo.read_tree(tree) if n.name == parts[-1])


def layout(seed: int) -> tuple[int, list[tuple[int, bytes]]]:
    """A size and data at odd offsets and of odd lengths: holes unaligned to anything."""
    rng = random.Random(seed)
    size = 3 * MiB + rng.randrange(1, 4096)
    offsets = sorted(rng.sample(range(size), 5))
    return size, [(off, rng.randbytes(min(rng.randrange(1, 200_000), size - off))) for off in offsets]


LAYOUTS = {
    "two-blocks": (8 * MiB, [(MiB, b"a" * 8192), (5 * MiB + 123, b"b" * 8192)]),
    "leading-hole": (2 * MiB, [(2 * MiB - 70_000, random.Random(1).randbytes(70_000))]),
    "trailing-hole": (2 * MiB + 1, [(0, random.Random(2).randbytes(300_000))]),
    "all-hole": (3 * MiB + 5, []),
    "unaligned-1": layout(1),
    "unaligned-2": layout(2),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_a_sparse_file_has_the_chunk_ids_of_its_bytes_written_densely(tmp_path: Path, name: str) -> None:
    size, data = LAYOUTS[name]
    src = tmp_path / "src"
    sparse = make_sparse(src / "sparse", size, data)
    dense = src / "dense"
    dense.write_bytes(sparse.read_bytes())
    assert allocated(sparse) < allocated(dense)
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, chunker=SMALL_CHUNKS)
    m = sv.Engine(repo).backup([src])
    s, d = node_of(repo, m, sparse), node_of(repo, m, dense)
    assert s.size == d.size == size
    assert len(s.content) > 1
    assert s.content == d.content
    # The dense copy was read whole, the sparse one only where it holds data.
    assert size <= m.stats.bytes_read <= size + allocated(sparse)


def test_backup_reads_only_the_data_of_a_sparse_file(local_repo: sv.Repository, tmp_path: Path) -> None:
    size, data = LAYOUTS["two-blocks"]
    f = make_sparse(tmp_path / "src" / "sparse", size, data)
    seen: list[int] = []
    m = sv.Engine(local_repo).backup([f.parent], progress=lambda n, path: seen.append(n))
    assert m.stats.total_bytes == size
    # What the file system holds (three blocks: the second write straddles a block edge).
    assert m.stats.bytes_read == allocated(f) <= 64 << 10
    # Progress still covers every byte: a job's totals count file sizes.
    assert sum(seen) == size


def test_pieces_are_the_file_s_bytes_and_only_data_is_read(tmp_path: Path) -> None:
    size, data = layout(3)
    f = make_sparse(tmp_path / "f", size, data)
    fd = os.open(f, os.O_RDONLY)
    try:
        assert may_have_holes(os.fstat(fd))
        pieces = list(file_pieces(fd, size, holes=True))
    finally:
        os.close(fd)
    assert b"".join(bytes(p) for p, _ in pieces) == f.read_bytes()
    assert all(0 < len(p) <= READ_SIZE for p, _ in pieces)
    assert not any(bytes(p).strip(b"\0") for p, read in pieces if not read)
    assert 0 < sum(len(p) for p, read in pieces if read) <= allocated(f) < size


@pytest.mark.parametrize(("expected", "given"), [(5000, 5000), (MiB + 10, MiB), (3 * MiB, MiB)])
def test_pieces_stop_at_the_size_asked_for_or_the_end_of_the_file(tmp_path: Path, expected: int, given: int) -> None:
    # A file that grew is cut at the size first seen; one that shrank ends where it ends,
    # its final hole included, never padded to the size first seen.
    f = make_sparse(tmp_path / "f", MiB, [(1000, b"data")])
    fd = os.open(f, os.O_RDONLY)
    try:
        got = b"".join(bytes(p) for p, _ in file_pieces(fd, expected, holes=True))
    finally:
        os.close(fd)
    assert got == f.read_bytes()[:given]


def test_a_dense_file_is_not_taken_for_a_sparse_one(tmp_path: Path) -> None:
    f = tmp_path / "dense"
    f.write_bytes(bytes(MiB))
    assert not may_have_holes(os.stat(f))
