"""Backups of fsspec URLs (memory://): layout, restore, and that unchanged objects are not read.

Reads are counted by a subclass of the source's filesystem class, registered under its own
protocol (``countmem://``): it records every ``cat_file`` and ``_open`` call, the only ways
fsspec reads an object's bytes, and otherwise behaves as the class it extends.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pytest
from fsspec.asyn import AsyncFileSystem
from fsspec.implementations.memory import MemoryFileSystem

import snapvault as sv
from snapvault.archiver.fsspec_source import PART_SIZE


def counting(base: type[Any], protocol: str) -> type[Any]:
    """``base`` with its reads of object bytes recorded, reached as ``protocol://``."""
    real = base.protocol if isinstance(base.protocol, str) else base.protocol[0]

    class Counting(base):  # type: ignore[misc,valid-type]
        reads: ClassVar[list[tuple[str, int | None, int | None]]] = []

        @classmethod
        def _strip_protocol(cls, path: Any) -> Any:
            if isinstance(path, str) and path.startswith(f"{protocol}://"):
                path = f"{real}://{path[len(protocol) + 3 :]}"
            return super()._strip_protocol(path)

        def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kw: Any) -> Any:
            Counting.reads.append((path, start, end))
            return super().cat_file(path, start=start, end=end, **kw)

        async def _cat_file(self, path: str, start: int | None = None, end: int | None = None, **kw: Any) -> Any:
            Counting.reads.append((path, start, end))
            return await super()._cat_file(path, start=start, end=end, **kw)

        def _open(self, path: str, *args: Any, **kw: Any) -> Any:
            if not kw.get("mode", args[0] if args else "rb").startswith("w"):
                Counting.reads.append((path, None, None))
            return super()._open(path, *args, **kw)

    if issubclass(base, AsyncFileSystem):
        # fsspec makes the sync cat_file from _cat_file: counting both would count twice.
        del Counting.cat_file
    fsspec.register_implementation(protocol, Counting, clobber=True)
    return Counting


CountingMemory = counting(MemoryFileSystem, "countmem")


@pytest.fixture
def bucket() -> Iterator[str]:
    """A fresh top directory on fsspec's memory filesystem (its name, no slashes)."""
    name = f"src-{uuid.uuid4().hex[:12]}"
    CountingMemory.reads.clear()
    yield name
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


def _objects(rng: random.Random) -> dict[str, bytes]:
    return {
        "a.txt": b"alpha\n",
        "empty": b"",
        "sub/b.bin": rng.randbytes(300_000),
        "sub/deeper/c.bin": rng.randbytes(5000),
    }


def _put(name: str, objects: dict[str, bytes]) -> None:
    fs = fsspec.filesystem("memory")
    for key, data in objects.items():
        fs.pipe_file(f"/{name}/data/{key}", data)


def _restored(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_prefix_is_backed_up_under_its_path_and_restores_bit_exact(
    memory_repo: sv.Repository, bucket: str, tmp_path: Path
) -> None:
    objects = _objects(random.Random(1))
    _put(bucket, objects)
    # A key no tree may hold as a name is listed as an error, never restored above its prefix.
    _put(bucket, {"../outside": b"not below the source"})
    url = f"countmem://{bucket}/data/"
    m = sv.Engine(memory_repo).backup([url])
    assert m.paths == [f"countmem://{bucket}/data"]
    assert m.stats.files_new == len(objects)
    assert [(e.path.endswith("/data/../outside"), "'..'" in e.error) for e in m.errors] == [(True, True)]
    sv.Restorer(memory_repo).restore(m.id, target=str(tmp_path / "out"))
    assert _restored(tmp_path / "out") == {f"{bucket}/data/{k}": v for k, v in objects.items()}
    node = next(n for n in memory_repo.read_tree(m.tree) if n.name == bucket)
    assert node.type == "dir"


def test_nothing_changed_reads_no_object_and_a_rewritten_one_is_read(memory_repo: sv.Repository, bucket: str) -> None:
    objects = _objects(random.Random(2))
    _put(bucket, objects)
    engine = sv.Engine(memory_repo)
    url = f"countmem://{bucket}/data"
    first = engine.backup([url])
    assert len(CountingMemory.reads) == len(objects)
    CountingMemory.reads.clear()

    second = engine.backup([url])
    assert second.parent == first.id  # found by URL
    assert CountingMemory.reads == []
    assert (second.stats.files_unchanged, second.stats.bytes_read) == (len(objects), 0)
    assert second.tree == first.tree

    # Same size, new content: the memory filesystem gives the new object a new time.
    _put(bucket, {"sub/deeper/c.bin": b"x" * 5000})
    third = engine.backup([url])
    assert CountingMemory.reads == [(f"/{bucket}/data/sub/deeper/c.bin", None, None)]
    assert (third.stats.files_changed, third.stats.files_unchanged) == (1, len(objects) - 1)


def test_a_large_object_is_read_as_ranges_that_cover_it(
    memory_repo: sv.Repository, bucket: str, tmp_path: Path
) -> None:
    data = random.Random(3).randbytes(2 * PART_SIZE + 1234)
    _put(bucket, {"big": data})
    m = sv.Engine(memory_repo, workers=2).backup([f"countmem://{bucket}/data"])
    path = f"/{bucket}/data/big"
    # Ranges run on worker threads: the order they start in is theirs to choose.
    assert sorted(CountingMemory.reads) == [
        (path, 0, PART_SIZE),
        (path, PART_SIZE, 2 * PART_SIZE),
        (path, 2 * PART_SIZE, len(data)),
    ]
    assert m.stats.bytes_read == len(data)
    sv.Restorer(memory_repo).restore(m.id, target=str(tmp_path / "out"))
    assert (tmp_path / "out" / bucket / "data" / "big").read_bytes() == data


def test_one_object_as_the_source(memory_repo: sv.Repository, bucket: str, tmp_path: Path) -> None:
    _put(bucket, {"a.txt": b"alpha\n", "b.txt": b"beta\n"})
    m = sv.Engine(memory_repo).backup([f"memory://{bucket}/data/a.txt"])
    sv.Restorer(memory_repo).restore(m.id, target=str(tmp_path / "out"))
    assert _restored(tmp_path / "out") == {f"{bucket}/data/a.txt": b"alpha\n"}


def test_excludes_match_keys_below_the_source(memory_repo: sv.Repository, bucket: str, tmp_path: Path) -> None:
    _put(bucket, {"keep.txt": b"1", "drop.tmp": b"2", "build/x": b"3"})
    m = sv.Engine(memory_repo).backup([f"memory://{bucket}/data"], exclude=["*.tmp", "build/"])
    sv.Restorer(memory_repo).restore(m.id, target=str(tmp_path / "out"))
    assert _restored(tmp_path / "out") == {f"{bucket}/data/keep.txt": b"1"}


def test_a_url_that_names_nothing_is_one_source_error(memory_repo: sv.Repository, bucket: str) -> None:
    with pytest.raises(sv.SourceError) as e:
        sv.Engine(memory_repo).backup([f"memory://{bucket}/missing"])
    assert str(e.value) == f"cannot read source memory://{bucket}/missing: no such object or prefix"
    assert e.value.path == f"memory://{bucket}/missing"
    assert list(memory_repo.snapshots()) == []


def test_local_paths_and_urls_are_not_mixed(memory_repo: sv.Repository, bucket: str, tmp_path: Path) -> None:
    _put(bucket, {"a": b"1"})
    with pytest.raises(sv.ConfigError, match="either local paths or URLs"):
        sv.Engine(memory_repo).backup([str(tmp_path), f"memory://{bucket}/data"])


def test_an_unknown_protocol_is_one_source_error(memory_repo: sv.Repository) -> None:
    with pytest.raises(sv.SourceError) as e:
        sv.Engine(memory_repo).backup(["nosuchproto://bucket/x"])
    assert str(e.value).startswith("cannot read source nosuchproto://bucket/x: ")
    assert "\n" not in str(e.value)


def test_a_job_backs_up_a_url_and_reports_its_bytes(memory_repo: sv.Repository, bucket: str) -> None:
    _put(bucket, {"a": b"12345"})
    job = sv.Engine(memory_repo).submit([f"memory://{bucket}/data"])
    m = job.result(timeout=60)
    assert m.paths == [f"memory://{bucket}/data"]
    assert job.progress.bytes_done == 5


class _RewritingMemory(MemoryFileSystem):  # type: ignore[misc]
    """Memory filesystem (``rewritemem://``) that rewrites an object while its second range is read."""

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str) and path.startswith("rewritemem://"):
            path = "memory://" + path[len("rewritemem://") :]
        return super()._strip_protocol(path)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kw: Any) -> Any:
        data = super().cat_file(path, start=start, end=end, **kw)
        if start == PART_SIZE:
            self.pipe_file(path, b"\0" * self.size(path))
        return data


fsspec.register_implementation("rewritemem", _RewritingMemory, clobber=True)


def test_a_large_object_rewritten_while_read_is_listed_inconsistent(memory_repo: sv.Repository, bucket: str) -> None:
    _put(bucket, {"big": random.Random(4).randbytes(PART_SIZE + 10)})
    m = sv.Engine(memory_repo).backup([f"rewritemem://{bucket}/data"])
    assert m.inconsistent == [f"rewritemem://{bucket}/data/big"]


class _LockedMemory(MemoryFileSystem):  # type: ignore[misc]
    """Memory filesystem (``lockedmem://``) that refuses to read objects named ``locked``."""

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str) and path.startswith("lockedmem://"):
            path = "memory://" + path[len("lockedmem://") :]
        return super()._strip_protocol(path)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kw: Any) -> Any:
        if path.endswith("/locked"):
            raise PermissionError(f"access denied: {path}")
        return super().cat_file(path, start=start, end=end, **kw)


fsspec.register_implementation("lockedmem", _LockedMemory, clobber=True)


def test_an_unreadable_object_is_an_error_and_the_rest_is_stored(
    memory_repo: sv.Repository, bucket: str, tmp_path: Path
) -> None:
    # Many small objects: they are fetched ahead on worker threads, the failure among them.
    objects = {f"f{i:02}": bytes([i]) * (i + 1) for i in range(20)}
    _put(bucket, {**objects, "locked": b"secret"})
    m = sv.Engine(memory_repo, workers=4).backup([f"lockedmem://{bucket}/data"])
    assert [(e.path, e.error) for e in m.errors] == [
        (f"lockedmem://{bucket}/data/locked", f"access denied: /{bucket}/data/locked")
    ]
    sv.Restorer(memory_repo).restore(m.id, target=str(tmp_path / "out"))
    assert _restored(tmp_path / "out") == {f"{bucket}/data/{k}": v for k, v in objects.items()}
