"""Index files decoded once while ``index_file_cache`` is on: a prune, which reads each one to
load the index, to survey the packs and to rebuild the index when the marks change, fetches
each from the store once; outside the block nothing is kept."""

from __future__ import annotations

import collections
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import snapvault as sv
from snapvault.storage import open_store
from snapvault.storage.wrappers import _Wrapper
from tests.conftest import FAST_KDF, PASSWORD


class CountingIndexReads(_Wrapper):
    """Counts whole-object reads of index files, by key."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.reads: collections.Counter[str] = collections.Counter()

    def get(self, key: str) -> bytes:
        if key.startswith("index/"):
            self.reads[key] += 1
        return super().get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if key.startswith("index/"):
            self.reads[key] += 1
        return super().get_range(key, offset, length)


def _repo_with_history(tmp_path: Path) -> str:
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    rng = random.Random(5)
    src = tmp_path / "src"
    src.mkdir()
    eng = sv.Engine(repo)
    for day in range(4):
        for i in range(12):
            if day == 0 or i % 3 == day % 3:
                (src / f"f{i:02d}").write_bytes(rng.randbytes(120_000))
        eng.backup([src])
    return url


def test_a_prune_fetches_each_index_file_once(tmp_path: Path) -> None:
    url = _repo_with_history(tmp_path)
    store = CountingIndexReads(open_store(url))
    repo = sv.Repository.open(url, PASSWORD, store=store)
    # The backups carry the machine's time; the prune runs a day later, past the age under
    # which it leaves a new pack alone.
    now = datetime.now(UTC) + timedelta(days=1)
    repo.forget(keep_last=1, now=now)
    before = set(store.reads)
    result = repo.prune(now=now, max_repack=1.0, max_unused=0.0)
    # The run wrote a deletion mark and carried it out: the index was rebuilt twice over.
    assert result.marks_written == result.marks_carried_out == 1
    assert result.deleted.packs > 0
    assert store.reads, "the index was read"
    assert max(store.reads.values()) == 1, store.reads
    assert before <= set(store.reads)


def test_reads_are_kept_only_inside_the_block(tmp_path: Path) -> None:
    url = _repo_with_history(tmp_path)
    store = CountingIndexReads(open_store(url))
    repo = sv.Repository.open(url, PASSWORD, store=store)
    key = repo.index_files()[0]
    with repo.index_file_cache():
        first = repo.read_index_file(key)
        with repo.index_file_cache():  # nested: the outer block's cache stays
            assert repo.read_index_file(key) is first
        assert repo.read_index_file(key) is first
    assert store.reads[key] == 1
    assert repo.read_index_file(key) == first
    assert repo.read_index_file(key) is not first
    assert store.reads[key] == 3
