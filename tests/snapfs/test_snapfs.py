"""``snapvault://`` through fsspec, on a local repository.

Proves: the protocol loads from its entry point with no import; listing, info, find, glob,
walk, du, cat_file and cat_ranges (ranges included), open/seek/read and get give the bytes
and metadata the source had; refs pick the right snapshot (``nightly@<time>`` among
them); every write is refused with nothing written; a 4 KiB read in a large file fetches
exactly one chunk; checksums are stable and content-based; modified is the file's mtime.
The checks are functions so tests/snapfs/test_snapfs_s3.py runs them against S3 too.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pytest

import snapvault as sv
from snapvault.snapfs import (
    NotARegularFile,
    ReadOnlySnapshotError,
    SnapshotFileSystem,
    SnapshotIsADirectory,
    SnapshotPathNotFound,
    _short_names,
)
from snapvault.storage import open_store
from snapvault.storage.wrappers import _Wrapper
from tests.conftest import FAST_KDF, PASSWORD, tree_at, write

# Small chunks so that a 4 MiB file spans dozens of them.
SMALL_CHUNKS = sv.ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10)
# 2026-02-25 06:13:20.123456789 UTC: the nanoseconds below the microsecond are dropped by
# modified(), as datetime keeps microseconds.
CSV_MTIME_NS = 1_772_000_000_123_456_789
CSV = "name,size\nalpha,1\nbeta,22\ngamma,333\n"


def make_source(root: Path) -> Path:
    """A source folder: a CSV, a copy of it, a binary, an empty file, a large random file and
    a symlink (beside ``data``, which ``get`` copies whole)."""
    rng = random.Random(7)
    src = root / "src"
    write(src / "data" / "a.csv", CSV)
    write(src / "data" / "same.csv", CSV)
    write(src / "data" / "sub" / "b.bin", rng.randbytes(5000))
    write(src / "data" / "empty.txt", b"")
    write(src / "big.bin", rng.randbytes(4 << 20))
    (src / "link").symlink_to("data/a.csv")
    os.utime(src / "data" / "a.csv", ns=(CSV_MTIME_NS, CSV_MTIME_NS))
    return src


def ref_path(src: Path, rel: str = "", ref: str = "latest") -> str:
    """``<ref>/<absolute source path>/<rel>`` as snapvault:// paths name it."""
    return f"{ref}{src}" + (f"/{rel}" if rel else "")


def check_listing(fs: SnapshotFileSystem, src: Path, manifest: sv.Manifest) -> None:
    """ls, info, find, glob, walk, du and the root's snapshot directories."""
    root = fs.ls("snapvault://")
    assert [(e["name"], e["type"], e["snapshot"]) for e in root] == [(manifest.short_id, "directory", manifest.id)]
    assert fs.ls("snapvault://", detail=False) == [manifest.short_id]
    # The short ID is itself a ref.
    assert fs.ls(f"snapvault://{manifest.short_id}{src}", detail=False) == [
        f"{manifest.short_id}{src}/{n}" for n in ("big.bin", "data", "link")
    ]

    assert fs.ls(ref_path(src, "data"), detail=False) == [
        ref_path(src, f"data/{n}") for n in ("a.csv", "empty.txt", "same.csv", "sub")
    ]
    info = fs.info(f"snapvault://{ref_path(src, 'data/a.csv')}")
    assert (info["type"], info["size"], info["mtime_ns"], info["snapshot"]) == (
        "file",
        len(CSV),
        CSV_MTIME_NS,
        manifest.id,
    )
    assert info["mode"] == (src / "data" / "a.csv").stat().st_mode & 0o7777
    link = fs.info(ref_path(src, "link"))
    assert (link["type"], link["islink"], link["destination"]) == ("link", True, "data/a.csv")
    assert fs.info(ref_path(src, "data/sub"))["type"] == "directory"
    assert fs.isdir("latest")
    assert fs.info("latest")["snapshot"] == manifest.id
    assert fs.ls(ref_path(src, "data/a.csv")) == [info]  # ls of a file: its info

    files = ["big.bin", "data/a.csv", "data/empty.txt", "data/same.csv", "data/sub/b.bin", "link"]
    assert fs.find(ref_path(src)) == [ref_path(src, f) for f in files]
    assert fs.glob(f"snapvault://{ref_path(src)}/**/*.csv") == [
        ref_path(src, f"data/{n}") for n in ("a.csv", "same.csv")
    ]
    assert fs.glob(ref_path(src, "data/*/*.bin")) == [ref_path(src, "data/sub/b.bin")]
    walked = {p: (sorted(d), sorted(f)) for p, d, f in fs.walk(ref_path(src))}
    assert walked == {
        ref_path(src): (["data"], ["big.bin", "link"]),
        ref_path(src, "data"): (["sub"], ["a.csv", "empty.txt", "same.csv"]),
        ref_path(src, "data/sub"): ([], ["b.bin"]),
    }
    assert fs.du(ref_path(src, "data")) == 2 * len(CSV) + 5000
    assert fs.du(ref_path(src)) == 2 * len(CSV) + 5000 + (4 << 20)

    missing = ref_path(src, "data/nope.csv")
    with pytest.raises(FileNotFoundError):
        fs.info(missing)
    with pytest.raises(SnapshotPathNotFound):
        fs.ls(ref_path(src, "data/a.csv/below"))
    assert not fs.exists(missing)
    assert not fs.exists("ffffffffff/tmp")
    with pytest.raises(FileNotFoundError):
        fs.ls("ffffffffff")


def check_reads(fs: SnapshotFileSystem, src: Path, out: Path, options: dict[str, Any]) -> None:
    """cat_file, cat_ranges, fsspec.open with seek and read, get: the source's bytes."""
    big = (src / "big.bin").read_bytes()
    big_path = ref_path(src, "big.bin")
    assert fs.cat_file(ref_path(src, "data/a.csv")) == CSV.encode()
    assert fs.cat_file(ref_path(src, "data/empty.txt")) == b""
    for start, end in [(0, 10), (100_000, 300_000), (-5000, None), (4_000_000, 10 << 20), (None, -1), (50, 50)]:
        assert fs.cat_file(big_path, start, end) == big[start:end], (start, end)
    assert fs.read_block(big_path, 1000, 64) == big[1000:1064]

    got = fs.cat_ranges(
        [big_path, big_path, ref_path(src, "data/sub/b.bin"), ref_path(src, "data/gone")],
        [0, 2_000_000, 10, 0],
        [100, 2_100_000, 20, 5],
    )
    assert got[:3] == [big[:100], big[2_000_000:2_100_000], (src / "data" / "sub" / "b.bin").read_bytes()[10:20]]
    assert isinstance(got[3], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges([ref_path(src, "data/gone")], [0], [1], on_error="raise")

    with fsspec.open(f"snapvault://{big_path}", mode="rb", **options) as f:
        assert f.seekable()
        assert f.size == len(big)
        f.seek(3_000_000)
        assert f.read(4096) == big[3_000_000:3_004_096]
        assert f.tell() == 3_004_096
        f.seek(-10, 2)
        assert f.read() == big[-10:]
        f.seek(5)
        assert f.read(3) == big[5:8]
    with fsspec.open(f"snapvault://{ref_path(src, 'data/a.csv')}", mode="rt", **options) as t:
        assert t.readlines() == CSV.splitlines(keepends=True)

    fs.get(f"snapvault://{ref_path(src, 'data')}", str(out), recursive=True)
    copied = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    source = {p.relative_to(src / "data").as_posix(): p.read_bytes() for p in (src / "data").rglob("*") if p.is_file()}
    assert copied == source
    assert (out / "sub").is_dir()


def count_data_reads(url: str, options: dict[str, Any]) -> tuple[sv.Repository, list[str]]:
    """The repository at ``url`` opened through a store that records every key read under data/."""
    reads: list[str] = []

    class Counting(_Wrapper):
        def get(self, key: str) -> bytes:
            if key.startswith("data/"):
                reads.append(key)
            return super().get(key)

        def get_range(self, key: str, offset: int, length: int) -> bytes:
            if key.startswith("data/"):
                reads.append(key)
            return super().get_range(key, offset, length)

    repo = sv.Repository.open(url, PASSWORD, store=Counting(open_store(url, storage_options=options or None)))
    return repo, reads


def check_one_chunk_per_range(
    url: str, options: dict[str, Any], src: Path, manifest: sv.Manifest, *, sequential: bool = True
) -> None:
    """A 4 KiB read inside one chunk of a large file fetches that chunk and no other (and, with
    ``sequential``, reading the file through fetches each chunk once)."""
    repo, reads = count_data_reads(url, options)
    node = next(n for n in repo.read_tree(tree_at(repo, manifest, src)) if n.name == "big.bin")
    lengths = [repo.locate(bytes.fromhex(c)).raw_length for c in node.content]
    assert len(lengths) > 10, "the file must span many chunks for this test to mean anything"
    # A chunk in the middle that holds the whole 4 KiB range.
    k = next(i for i in range(len(lengths) // 2, len(lengths)) if lengths[i] > 4096 + 100)
    offset = sum(lengths[:k]) + 100
    big = (src / "big.bin").read_bytes()

    fs = fsspec.filesystem("snapvault", repository=repo, skip_instance_cache=True)
    with fs.open(ref_path(src, "big.bin"), "rb") as f:
        reads.clear()  # resolving the path read tree blobs, which live in packs under data/ too
        f.seek(offset)
        assert f.read(4096) == big[offset : offset + 4096]
        assert len(reads) == 1
        f.seek(offset + 1000)
        assert f.read(100) == big[offset + 1000 : offset + 1100]
        assert len(reads) == 1  # the file keeps the chunk it read

    fs.info(ref_path(src, "big.bin"))
    reads.clear()
    assert fs.cat_file(ref_path(src, "big.bin"), offset, offset + 4096) == big[offset : offset + 4096]
    assert len(reads) == 1

    if not sequential:
        return
    reads.clear()
    with fs.open(ref_path(src, "big.bin"), "rb") as f:
        assert b"".join(iter(lambda: f.read(50_000), b"")) == big
    assert len(reads) == len(lengths)  # a sequential read fetches each chunk once


# -- the shared local repository ---------------------------------------------------------


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, sv.Manifest]:
    """One repository with one snapshot of make_source(); the tests only read it."""
    root = tmp_path_factory.mktemp("snapfs")
    url = str(root / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, chunker=SMALL_CHUNKS)
    src = make_source(root)
    manifest = sv.Engine(repo).backup([src])
    # Module scope runs before the per-test read-back check (tests/conftest.py): check here.
    report = repo.check(read_data=True)
    assert report.ok, report.problems
    return url, src, manifest


@pytest.fixture
def fs(vault: tuple[str, Path, sv.Manifest]) -> SnapshotFileSystem:
    return fsspec.filesystem("snapvault", repo=vault[0], password=PASSWORD, skip_instance_cache=True)


def test_the_entry_point_registers_the_protocol_without_an_import(vault: tuple[str, Path, sv.Manifest]) -> None:
    url, src, manifest = vault
    # A fresh interpreter: nothing this test process imported can have registered it.
    child = (
        "import json, sys, fsspec\n"
        "before = sorted(m for m in sys.modules if m.startswith('snapvault'))\n"
        "fs = fsspec.filesystem('snapvault', repo=sys.argv[1], password=sys.argv[2])\n"
        "print(json.dumps({'before': before, 'class': type(fs).__module__ + '.' + type(fs).__name__,\n"
        "                  'csv': fs.cat_file(sys.argv[3]).decode()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, url, PASSWORD, ref_path(src, "data/a.csv", manifest.short_id)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(done.stdout)
    assert result == {"before": [], "class": "snapvault.snapfs.SnapshotFileSystem", "csv": CSV}


def test_listing_info_find_glob_walk_du(fs: SnapshotFileSystem, vault: tuple[str, Path, sv.Manifest]) -> None:
    check_listing(fs, vault[1], vault[2])


def test_reads_and_get_give_the_source_bytes(
    fs: SnapshotFileSystem, vault: tuple[str, Path, sv.Manifest], tmp_path: Path
) -> None:
    check_reads(fs, vault[1], tmp_path / "out", {"repo": vault[0], "password": PASSWORD})


def test_a_4k_read_inside_a_large_file_fetches_exactly_one_chunk(vault: tuple[str, Path, sv.Manifest]) -> None:
    check_one_chunk_per_range(vault[0], {}, vault[1], vault[2])


def test_directories_links_and_special_entries_give_no_bytes(
    fs: SnapshotFileSystem, vault: tuple[str, Path, sv.Manifest], tmp_path: Path
) -> None:
    src = vault[1]
    with pytest.raises(IsADirectoryError):
        fs.open(ref_path(src, "data"))
    with pytest.raises(SnapshotIsADirectory):
        fs.cat_file("latest")
    with pytest.raises(NotARegularFile, match=r"symlink to data/a\.csv"):
        fs.cat_file(ref_path(src, "link"))
    # get copies files and directories; a link is refused, not followed and not recreated.
    with pytest.raises(NotARegularFile, match="link"):
        fs.get(ref_path(src), str(tmp_path / "all"), recursive=True)


def test_writes_are_refused_and_write_nothing(fs: SnapshotFileSystem, vault: tuple[str, Path, sv.Manifest]) -> None:
    url, src, _ = vault
    before = sorted(p for p in Path(url).rglob("*"))
    target = ref_path(src, "data/new.csv")
    existing = ref_path(src, "data/a.csv")
    local = src / "data" / "a.csv"
    writes: list[Callable[[], object]] = [
        lambda: fs.open(target, "wb"),
        lambda: fs.open(existing, "ab"),
        lambda: fs.pipe(target, b"x"),
        lambda: fs.pipe_file(existing, b"x"),
        lambda: fs.write_text(target, "x"),
        lambda: fs.touch(target),
        lambda: fs.rm(existing),
        lambda: fs.rm(ref_path(src), recursive=True),
        lambda: fs.rm_file(existing),
        lambda: fs.rmdir(ref_path(src, "data/sub")),
        lambda: fs.mkdir(ref_path(src, "new")),
        lambda: fs.makedirs(ref_path(src, "new/deeper"), exist_ok=True),
        lambda: fs.mv(existing, target),
        lambda: fs.copy(existing, target),
        lambda: fs.cp_file(existing, target),
        lambda: fs.put(str(local), target),
        lambda: fs.put_file(str(local), target),
        lambda: fsspec.open(f"snapvault://{target}", "wb", repo=url, password=PASSWORD).open(),
    ]
    for attempt in writes:
        with pytest.raises(ReadOnlySnapshotError, match=r"^snapvault:// is read-only") as caught:
            attempt()
        assert isinstance(caught.value, PermissionError)
    assert sorted(p for p in Path(url).rglob("*")) == before
    assert fs.cat_file(existing) == CSV.encode()


def test_checksum_and_ukey_are_stable_across_instances_and_follow_content(
    vault: tuple[str, Path, sv.Manifest],
) -> None:
    url, src, manifest = vault
    one = fsspec.filesystem("snapvault", repo=url, password=PASSWORD, skip_instance_cache=True)
    two = fsspec.filesystem("snapvault", repo=url, password=PASSWORD, skip_instance_cache=True)
    a, same, other = (ref_path(src, f"data/{n}") for n in ("a.csv", "same.csv", "sub/b.bin"))
    assert one is not two
    assert one.checksum(a) == two.checksum(ref_path(src, "data/a.csv", manifest.id))
    assert one.ukey(a) == two.ukey(a)
    # Content, not name or metadata: a copy has the checksum of its original.
    assert one.checksum(a) == one.checksum(same)
    assert one.checksum(a) != one.checksum(other)
    assert one.checksum(ref_path(src, "data")) != one.checksum(ref_path(src, "data/sub"))


def test_modified_is_the_file_mtime_in_utc(fs: SnapshotFileSystem, vault: tuple[str, Path, sv.Manifest]) -> None:
    src, manifest = vault[1], vault[2]
    assert fs.modified(ref_path(src, "data/a.csv")) == datetime(2026, 2, 25, 6, 13, 20, 123456, tzinfo=UTC)
    assert fs.modified("latest") == manifest.time
    with pytest.raises(NotImplementedError):
        fs.created(ref_path(src, "data/a.csv"))


def test_password_sources(vault: tuple[str, Path, sv.Manifest], tmp_path: Path) -> None:
    url, src, _ = vault
    path = ref_path(src, "data/a.csv")
    pw_file = write(tmp_path / "pw", PASSWORD + "\n")
    by_file = SnapshotFileSystem(repo=url, password_file=str(pw_file), skip_instance_cache=True)
    by_env = SnapshotFileSystem(repo=url, password_env="VAULT_PW", env={"VAULT_PW": PASSWORD}, skip_instance_cache=True)
    opened = SnapshotFileSystem(repository=sv.Repository.open(url, PASSWORD), skip_instance_cache=True)
    assert {by_file.cat_file(path), by_env.cat_file(path), opened.cat_file(path)} == {CSV.encode()}
    assert by_file.fsid == opened.fsid

    refused: list[dict[str, Any]] = [
        {"repo": url, "password_env": "VAULT_PW"},  # the library never reads os.environ
        {"repo": url, "password_env": "OTHER", "env": {"VAULT_PW": PASSWORD}},
        {"repo": url, "password": PASSWORD, "password_file": str(pw_file)},
        {"repo": url, "password_file": str(tmp_path / "missing")},
        {"repository": opened.repository, "password": PASSWORD},
        {},
    ]
    for kwargs in refused:
        with pytest.raises(sv.ConfigError):
            SnapshotFileSystem(**kwargs, skip_instance_cache=True)
    with pytest.raises(sv.WrongPassword):
        SnapshotFileSystem(repo=url, password="wrong", skip_instance_cache=True)


def test_refs_pick_the_snapshot_by_policy_and_time(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    src = tmp_path / "src"
    nightly = sv.Policy(name="nightly", sources=[str(src)])
    made = {}
    for label, when, policy in [
        ("n1", datetime(2026, 2, 28, 2, tzinfo=UTC), nightly),
        ("n2", datetime(2026, 3, 1, 2, tzinfo=UTC), nightly),
        ("adhoc", datetime(2026, 3, 1, 6, tzinfo=UTC), None),
        ("n3", datetime(2026, 3, 2, 2, tzinfo=UTC), nightly),
    ]:
        write(src / "version.txt", label)
        engine = sv.Engine(repo)
        made[label] = engine.run_policy(policy, now=when) if policy else engine.backup([src], now=when)
    opts = {"repo": url, "password": PASSWORD}
    fs = fsspec.filesystem("snapvault", **opts)

    def version(ref: str) -> bytes:
        return fs.cat_file(ref_path(src, "version.txt", ref))

    assert version("nightly@2026-03-01T12:00:00+00:00") == b"n2"
    assert fs.snapshot("snapvault://nightly@2026-03-01T12:00:00+00:00").id == made["n2"].id
    assert version("nightly@2026-03-01T02:00:00Z") == b"n2"  # at the time counts
    assert version("nightly@2026-03-01T03:30:00+02:00") == b"n1"  # 01:30 UTC
    # No offset means UTC, not the machine's zone (-08:00 here would make it 09:59Z, after n2).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", "America/Los_Angeles")
        time.tzset()
        try:
            assert version("nightly@2026-03-01T01:59:59") == b"n1"
        finally:
            mp.undo()
            time.tzset()
    assert version("@2026-03-01T12:00:00+00:00") == b"adhoc"  # any snapshot
    assert version("latest@nightly") == b"n3"
    assert version("latest") == b"n3"
    assert version(made["adhoc"].id[:6]) == b"adhoc"
    with fsspec.open(f"snapvault://{ref_path(src, 'version.txt', 'nightly@2026-03-01T12:00:00+00:00')}", **opts) as f:
        assert f.read() == b"n2"
    assert sorted(fs.ls("", detail=False)) == sorted(m.short_id for m in made.values())

    with pytest.raises(FileNotFoundError):
        version("nightly@2026-02-01T00:00:00Z")  # before the first
    with pytest.raises(FileNotFoundError):
        version("latest@weekly")
    with pytest.raises(sv.ConfigError, match="not an ISO time"):
        version("nightly@yesterday")


def test_new_snapshots_appear_after_invalidate_cache(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    src = write(tmp_path / "src" / "v.txt", "1").parent
    sv.Engine(repo).backup([src])
    fs = SnapshotFileSystem(repo=url, password=PASSWORD, skip_instance_cache=True)
    assert fs.cat_file(ref_path(src, "v.txt")) == b"1"
    write(src / "v.txt", "2")
    sv.Engine(repo).backup([src])
    # The snapshot list is read once per instance, as fsspec's listings are cached.
    assert fs.cat_file(ref_path(src, "v.txt")) == b"1"
    fs.invalidate_cache()
    assert fs.cat_file(ref_path(src, "v.txt")) == b"2"


def test_short_names_grow_where_ids_share_eight_digits() -> None:
    # Two real snapshots sharing 8 hex digits would take ~2**16 backups to make.
    ids = ["ab12cd34" + "0" * 56, "ab12cd35" + "0" * 56, "ab12cd34f" + "1" * 55]
    assert _short_names(ids) == {ids[0]: "ab12cd340", ids[1]: "ab12cd35", ids[2]: "ab12cd34f"}


def test_pandas_reads_csv_through_the_url(vault: tuple[str, Path, sv.Manifest]) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is not installed in the test environment")
    url, src, _ = vault
    df = pd.read_csv(f"snapvault://{ref_path(src, 'data/a.csv')}", storage_options={"repo": url, "password": PASSWORD})
    assert df.to_dict("list") == {"name": ["alpha", "beta", "gamma"], "size": [1, 22, 333]}


def test_pandas_reads_parquet_through_the_url(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is not installed in the test environment")
    pytest.importorskip("pyarrow", reason="pyarrow is not installed in the test environment")
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    table = pd.DataFrame({"n": list(range(1000)), "s": [f"row {i}" for i in range(1000)]})
    (tmp_path / "src").mkdir()
    table.to_parquet(tmp_path / "src" / "t.parquet")
    sv.Engine(repo).backup([tmp_path / "src"])
    got = pd.read_parquet(
        f"snapvault://{ref_path(tmp_path / 'src', 't.parquet')}", storage_options={"repo": url, "password": PASSWORD}
    )
    assert got.equals(table)
