"""A restore into an fsspec URL (here ``memory://``) writes the same bytes as a local one.

- every file comes back byte for byte under ``prefix/<absolute path>``, include and exclude
  select as they do locally, and a hardlink comes back as a copy;
- what the target cannot hold (mode, owner, mtime, symlinks, FIFOs, devices, hardlinks) is
  counted once per kind in ``RestoreResult.metadata_dropped``, never listed per file;
- a damaged file is never uploaded (an object already under its name keeps its bytes), the
  rest is;
- a hostile name is refused with ``UnsafePathError`` and nothing lands outside the prefix;
- on a filesystem that is neither an object store nor ``memory://`` (``plainfs://`` below:
  the memory filesystem under another name) files go to a temporary name and are moved into
  place, and none is left behind.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import snapvault as sv
from snapvault.restore.fsspec_target import FsspecWriter, open_target
from snapvault.restore.writer import TEMP_PREFIX
from tests.conftest import write
from tests.test_hostile import Hostile, dir_node, file_node

MEM = fsspec.filesystem("memory")


class PlainFS(MemoryFileSystem):
    """The memory filesystem (same store) under a protocol the restore knows nothing about."""

    protocol = "plainfs"

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return str(super()._strip_protocol(path.removeprefix("plainfs://")))


fsspec.register_implementation("plainfs", PlainFS, clobber=True)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique path on the (process-wide) memory filesystem, removed afterwards."""
    path = f"/restored-{uuid.uuid4().hex}"
    yield path
    if MEM.exists(path):
        MEM.rm(path, recursive=True)


def files_under(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, bytes]:
    """Every file below ``root`` by its path relative to ``root``."""
    return {p[len(root) + 1 :]: fs.cat_file(p) for p in fs.find(root)}


def source_files(src: Path) -> dict[str, bytes]:
    """Every regular file below ``src`` by its path as a restore lays it out (from ``/``)."""
    out = {}
    for p in src.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[os.path.relpath(p, "/")] = p.read_bytes()
    return out


def make_source(root: Path) -> Path:
    src = root / "src"
    write(src / "empty", b"")
    write(src / "big.bin", os.urandom(300_000))
    write(src / "script.sh", b"#!/bin/sh\necho hi\n", mode=0o4755)
    write(src / "docs" / "a.md", "a")
    write(src / "docs" / "b.txt", "b")
    write(src / "skip" / "c.md", "c")
    write(src / "ünïcødé ✓.txt", "unicode name")
    # fsspec expands glob characters in some of its calls: these must stay literal.
    write(src / "glob [*?]" / "x*", "glob characters")
    (src / "empty_dir").mkdir()
    os.link(src / "docs" / "a.md", src / "hard_a.md")
    os.symlink("docs/a.md", src / "link")
    os.symlink("/nowhere", src / "dangling")
    os.mkfifo(src / "fifo")
    return src


def test_a_memory_target_gets_every_file_bit_exact(local_repo: sv.Repository, tmp_path: Path, prefix: str) -> None:
    src = make_source(tmp_path)
    m = sv.Engine(local_repo).backup([src])
    result = sv.Restorer(local_repo, workers=3).restore(m.id, f"memory://{prefix}")
    assert result.errors == []
    assert result.ok
    assert result.target == f"memory://{prefix}"
    assert files_under(MEM, prefix) == source_files(src)
    assert result.files == len(source_files(src)) - 1  # the hardlink is copied, not re-read
    assert result.hardlinks == 1
    assert result.bytes_written == sum(len(b) for b in source_files(src).values()) - 1
    # Directories exist on the memory filesystem: an empty one comes back.
    assert MEM.isdir(f"{prefix}/{os.path.relpath(src, '/')}/empty_dir")


def test_what_the_target_cannot_hold_is_counted_once_per_kind(
    local_repo: sv.Repository, tmp_path: Path, prefix: str
) -> None:
    src = make_source(tmp_path)
    m = sv.Engine(local_repo).backup([src])
    result = sv.Restorer(local_repo).restore(m.id, f"memory://{prefix}")
    entries = result.files + result.dirs
    assert result.metadata_dropped == {
        "fifos": 1,
        "hardlinks": 1,
        "mode": entries,
        "mtime": entries,
        "owner": entries,
        "symlinks": 2,
    }
    # Counted, not listed: no entry of the result names a symlink or the FIFO.
    assert result.errors == []
    assert result.symlinks == result.other == 0
    assert result.setuid_dropped == 0  # no mode at all reaches the target


@pytest.mark.commits_damage
def test_devices_and_xattrs_are_counted_not_made(local_repo: sv.Repository, prefix: str) -> None:
    h = Hostile(local_repo)
    nodes = [
        {"name": "tty", "type": "chardev", "mode": 0o666, "rdev": 0x0500},
        {"name": "disk", "type": "blockdev", "mode": 0o660, "rdev": 0x0800},
        file_node("tagged", [h.data(b"tagged")], size=6, xattrs=[["user.k", "dg=="]]),
    ]
    m = h.commit(h.tree(nodes))
    result = sv.Restorer(local_repo).restore(m.id, f"memory://{prefix}", devices=True)
    assert result.metadata_dropped["devices"] == 2
    assert result.metadata_dropped["xattrs"] == 1
    assert result.devices_skipped == 0
    assert result.errors == []
    assert files_under(MEM, prefix) == {"tagged": b"tagged"}


def test_include_and_exclude_select_as_locally(local_repo: sv.Repository, tmp_path: Path, prefix: str) -> None:
    src = make_source(tmp_path)
    m = sv.Engine(local_repo).backup([src])
    sv.Restorer(local_repo).restore(m.id, f"memory://{prefix}", include=["*.md"], exclude=["skip/"])
    rel = os.path.relpath(src, "/")
    assert files_under(MEM, prefix) == {f"{rel}/docs/a.md": b"a", f"{rel}/hard_a.md": b"a"}


@pytest.mark.commits_damage
@pytest.mark.parametrize("scheme", ["memory", "plainfs"])
def test_a_damaged_file_is_not_uploaded_and_the_rest_is(local_repo: sv.Repository, prefix: str, scheme: str) -> None:
    h = Hostile(local_repo)
    good = file_node("ok", [h.data(b"good")], size=4)
    # Its chunk holds 4 bytes, its size says 9: found only once its bytes were read.
    short = file_node("short", [h.data(b"four")], size=9)
    confused = file_node("tree-as-data", [h.tree([])], size=3)
    m = h.commit(h.tree([good, short, confused]))
    MEM.pipe_file(f"{prefix}/short", b"what was there before")

    result = sv.Restorer(local_repo, workers=2).restore(m.id, f"{scheme}://{prefix}")
    assert {(e.path, e.kind) for e in result.errors} == {("short", "damaged"), ("tree-as-data", "damaged")}
    assert not result.ok
    assert files_under(MEM, prefix) == {"ok": b"good", "short": b"what was there before"}
    assert result.files == 1


@pytest.mark.commits_damage
@pytest.mark.parametrize("bad", ["..", ".", "a/b", "/abs", "../../escape"])
def test_a_hostile_name_cannot_leave_the_prefix(local_repo: sv.Repository, prefix: str, bad: str) -> None:
    h = Hostile(local_repo)
    inner = h.tree([file_node(bad, [h.data()])])
    m = h.commit(h.tree([file_node("aaa-ok", [h.data(b"fine")], size=4), dir_node("d", inner)]))
    before = set(MEM.store)
    with pytest.raises(sv.UnsafePathError):
        sv.Restorer(local_repo).restore(m.id, f"memory://{prefix}/inner")
    # Nothing written anywhere: the tree is refused while the restore is planned.
    assert set(MEM.store) == before


def test_the_writer_refuses_a_hostile_name_itself(prefix: str) -> None:
    """Trees are validated as they are read; the writer checks every name again."""
    writer = open_target(f"memory://{prefix}")
    assert isinstance(writer, FsspecWriter)
    for bad in ("..", ".", "", "a/b", "x\0y"):
        with pytest.raises(sv.UnsafePathError):
            writer.child(prefix, bad)
    with pytest.raises(sv.UnsafePathError):
        writer.hardlink("a", "b/../../../escape")
    assert writer.child(prefix, "..."), "three dots is an ordinary name"


def test_a_local_target_keeps_the_local_writer(tmp_path: Path) -> None:
    assert open_target(f"file://{tmp_path}/out") == f"{tmp_path}/out"
    assert open_target(tmp_path / "odd://name") == f"{tmp_path}/odd:/name"
    with pytest.raises(sv.ConfigError, match="URL target"):
        open_target(tmp_path / "out", {"anon": True})
    with pytest.raises(sv.ConfigError, match="another host"):
        open_target("file://otherhost/x")
    with pytest.raises(sv.ConfigError):
        open_target("nosuchscheme://x/y")


def test_temporary_names_are_not_left_on_a_filesystem_without_atomic_writes(
    local_repo: sv.Repository, tmp_path: Path, prefix: str
) -> None:
    src = make_source(tmp_path)
    m = sv.Engine(local_repo).backup([src])
    result = sv.Restorer(local_repo).restore(m.id, f"plainfs://{prefix}")
    assert result.errors == []
    restored = files_under(MEM, prefix)
    assert restored == source_files(src)
    assert not [p for p in MEM.find(prefix) if TEMP_PREFIX in p]


def test_a_key_too_long_for_an_object_store_is_refused_by_name() -> None:
    """S3, GCS and Azure keys hold 1024 bytes: a longer path is that entry's error
    (``ENAMETOOLONG``, which a restore lists and goes past), found before any request."""
    writer = open_target("s3://bucket/out", {"endpoint_url": "http://127.0.0.1:9"})
    assert isinstance(writer, FsspecWriter)
    deep = "bucket/out/" + "/".join(["d" * 200] * 4)
    assert writer.child(deep, "f" * 50)
    with pytest.raises(OSError, match="object key") as info:
        writer.child(deep, "f" * 250)
    assert info.value.errno == errno.ENAMETOOLONG


def test_a_cancelled_restore_uploads_no_part_of_a_file(local_repo: sv.Repository, tmp_path: Path, prefix: str) -> None:
    src = make_source(tmp_path)
    m = sv.Engine(local_repo).backup([src])
    stop = False

    def progress(nbytes: int, path: str) -> None:
        nonlocal stop
        # Stop while big.bin is being written: its bytes so far must not reach the target.
        stop = stop or path.endswith("big.bin")

    with pytest.raises(sv.JobCancelled):
        sv.Restorer(local_repo).restore(m.id, f"memory://{prefix}", progress=progress, should_stop=lambda: stop)
    assert stop
    assert not [p for p in MEM.find(prefix) if p.endswith("big.bin")]
