"""BlobSink under failure: no stray spool files, no hang after close, bounded open packs."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.archiver import sink as sink_module
from snapvault.archiver.sink import BlobSink
from snapvault.pipeline.ids import BlobType
from tests.conftest import FAST_KDF, PASSWORD


def _spool_files(repo_dir: Path) -> list[str]:
    return sorted(p.name for p in (repo_dir / "data").iterdir() if p.name.startswith(".tmp-"))


def test_a_pack_that_fails_to_finish_leaves_no_spool_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    finish = sink_module.SpoolPackWriter.finish
    calls = []

    def full_disk_once(self: Any, *args: Any) -> Any:
        calls.append(self)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return finish(self, *args)

    with BlobSink(repo, workers=2) as sink:
        sink.add(BlobType.TREE, b'{"nodes":[],"v":1}')
        for i in range(400):
            sink.add(BlobType.DATA, os.urandom(4096) + i.to_bytes(4, "big"))
        monkeypatch.setattr(sink_module.SpoolPackWriter, "finish", full_disk_once)
        with pytest.raises(OSError, match="No space"):
            sink.flush()
        sink.abandon(keep=False)
    assert _spool_files(tmp_path / "repo") == []


def test_abandon_after_close_with_queued_work_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    gate = threading.Event()
    seal = repo.seal_blob

    def slow_seal(*args: Any) -> Any:
        gate.wait(5)
        return seal(*args)

    monkeypatch.setattr(repo, "seal_blob", slow_seal)
    sink = BlobSink(repo, workers=1, max_pending=1 << 30)
    for i in range(20):
        sink.add(BlobType.DATA, os.urandom(1000) + bytes([i]))
    # close() cancels what is still queued while the first encode is held up.
    closer = threading.Thread(target=sink.close)
    closer.start()
    gate.set()
    closer.join(10)
    assert not closer.is_alive()
    done = threading.Event()
    threading.Thread(target=lambda: (sink.abandon(keep=False), done.set()), daemon=True).start()
    assert done.wait(10), "abandon() after close() never returned"
    assert _spool_files(tmp_path / "repo") == []


def test_open_data_packs_do_not_grow_with_the_worker_count(small_pack_memory_repo: sv.Repository) -> None:
    # On object stores open packs live in memory: eight workers still share two of them, and a
    # flush leaves at most two partial data packs.
    with BlobSink(small_pack_memory_repo, workers=8, max_pending=1 << 20) as sink:
        total = 0
        for i in range(800):
            blob = os.urandom(8192) + i.to_bytes(4, "big")
            total += len(blob)
            sink.add(BlobType.DATA, blob)
        sink.flush()
        # About 6.3 MiB: six full 1 MiB packs plus at most two partial ones.
        assert sink.stats.packs_written <= total // (1 << 20) + 2


def test_the_counters_cover_the_manifest_statistics() -> None:
    """Every count a manifest records comes from the walker or the sink, under its own name."""
    from dataclasses import fields

    from snapvault.archiver.sink import SinkStats
    from snapvault.archiver.walker import WalkStats

    counted = {f.name for f in fields(WalkStats)} | {f.name for f in fields(SinkStats)}
    derived = {"total_files", "duration_s"}
    assert set(sv.SnapshotStats.model_fields) - derived <= counted


def test_packs_and_index_files_stay_within_the_formats_counts(
    memory_repo: sv.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limits lowered so a test reaches them: a pack closes at MAX_PACK_BLOBS blobs and an
    # index file holds at most MAX_INDEX_ENTRIES, however small the blobs are.
    from snapvault.repository import repo as repo_module

    monkeypatch.setattr(sink_module, "MAX_PACK_BLOBS", 5)
    monkeypatch.setattr(sink_module, "MAX_INDEX_ENTRIES", 12)
    monkeypatch.setattr(repo_module, "MAX_INDEX_ENTRIES", 12)
    with BlobSink(memory_repo, workers=1) as sink:
        added = [sink.add(BlobType.DATA, f"blob {i}".encode())[0] for i in range(53)]
        sink.flush()
    files = [memory_repo.read_index_file(key) for key in memory_repo.index_files()]
    per_pack = [len(entries) for f in files for _, entries in f]
    assert max(per_pack) <= 5
    assert all(sum(len(entries) for _, entries in f) <= 12 for f in files)
    assert sum(per_pack) == 53
    fresh = sv.Repository.open(memory_repo.url, PASSWORD)
    assert all(fresh.read_blob(bid) == f"blob {i}".encode() for i, bid in enumerate(added))
