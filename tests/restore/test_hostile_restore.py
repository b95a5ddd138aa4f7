"""Validly sealed snapshots that lie: a restore finds the lie and gives nothing false a name.

The snapshots are built with the library's own write path (``tests.test_hostile.Hostile``), so
every blob authenticates; what is hostile is what the trees say:

- a file's content names a tree blob (type confusion): the file is damaged;
- a file's declared size disagrees with its content: the file is damaged, and a size of 2^62
  never reaches the restore's totals;
- device nodes and setuid/setgid bits: made only when asked for (``devices=True``,
  ``setuid=True``), each skipped device listed and each file's dropped bits counted.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.test_hostile import TMP_PREFIX, Hostile, dir_node, file_node

pytestmark = pytest.mark.commits_damage

NINE = b"nine byte"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(params=["local", "memory"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sv.Repository]:
    """A local repository (packs read as needed) and an object store (pack windows, read-ahead)."""
    if request.param == "local":
        yield sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
        return
    url = f"memory://hostile-{uuid.uuid4().hex}"
    yield sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    fsspec.filesystem("memory").rm(url, recursive=True)


def commit(repo: sv.Repository, nodes: Any) -> sv.Manifest:
    """Commit a snapshot whose root tree holds ``nodes(hostile)``, and a good file ``ok``."""
    h = Hostile(repo)
    good = file_node("ok", [h.data(b"good")], size=4)
    return h.commit(h.tree(sorted([good, *nodes(h)], key=lambda n: n["name"])))


def restore(repo: sv.Repository, m: sv.Manifest, target: Path, **kw: Any) -> sv.RestoreResult:
    return sv.Restorer(repo, workers=2).restore(m.id, target, **kw)


def listing(target: Path) -> list[str]:
    return sorted(str(p.relative_to(target)) for p in target.rglob("*"))


def assert_only_good(result: sv.RestoreResult, target: Path, damaged: set[str]) -> None:
    assert {e.path for e in result.errors} == damaged
    assert all(e.kind == "damaged" for e in result.errors), result.errors
    assert not result.ok
    assert listing(target) == ["ok"]
    assert (target / "ok").read_bytes() == b"good"
    assert not [n for n in os.listdir(target) if n.startswith(TMP_PREFIX)]


# -- 2. sizes the index declares --------------------------------------------------------------


def _forged_blob(repo: sv.Repository, plain: bytes, raw_length: int) -> str:
    """Store ``plain`` as a data blob in its own pack, indexed with a lying ``raw_length``."""
    from snapvault.archiver.sink import PackWriter
    from snapvault.pipeline.ids import BlobType

    bid = repo.blob_id(plain)
    w = PackWriter()
    w.add(BlobType.DATA, bid, repo.seal_blob(BlobType.DATA, bid, plain), raw_length)
    pack_id, data, entries = repo.finish_pack(w)
    repo.write_pack(pack_id, data)
    repo.write_index([(pack_id, entries)])
    return bid.hex()


@pytest.mark.parametrize("declared", [(16 << 20) + 1, (1 << 32) - 1])
def test_a_blob_the_index_says_is_over_the_limit_is_damage_and_never_read(
    repo: sv.Repository, tmp_path: Path, declared: int
) -> None:
    # A blob that decompresses to far more than the format allows, announced as such by its
    # index entry: refused on the numbers before a byte is fetched or allocated.
    bomb = bytes(20 << 20)
    m = commit(repo, lambda h: [file_node("f", [_forged_blob(repo, bomb, declared)], size=16 << 20)])
    target = tmp_path / "t"
    result = restore(repo, m, target)
    assert_only_good(result, target, {"f"})
    assert "over the format's limit" in result.errors[0].error
    report = repo.check(read_data=True)
    assert any("over the format's limit" in p.message for p in report.problems), report.problems


def test_a_blob_larger_than_its_index_entry_says_is_damage(repo: sv.Repository, tmp_path: Path) -> None:
    # The index promises 9 bytes; decompression stops there instead of at the blob's real size.
    m = commit(repo, lambda h: [file_node("f", [_forged_blob(repo, bytes(8 << 20), 9)], size=9)])
    target = tmp_path / "t"
    assert_only_good(restore(repo, m, target), target, {"f"})


# -- 3. type confusion ----------------------------------------------------------------------


def _tree_blob(h: Hostile) -> str:
    return h.tree([file_node("inner", [h.data(NINE)], size=9)])


TYPE_CONFUSED = {
    # One chunk: read in a span with the directory's other single-chunk files.
    "only-chunk": lambda h: [file_node("f", [_tree_blob(h)], size=len(b"x"))],
    # Several chunks: read on its own, chunk by chunk.
    "first-of-two": lambda h: [file_node("f", [_tree_blob(h), h.data(NINE)], size=9)],
    "second-of-two": lambda h: [file_node("f", [h.data(NINE), _tree_blob(h)], size=9)],
}


@pytest.mark.parametrize("case", sorted(TYPE_CONFUSED))
def test_a_tree_blob_named_as_file_content_is_damage(repo: sv.Repository, tmp_path: Path, case: str) -> None:
    m = commit(repo, TYPE_CONFUSED[case])
    target = tmp_path / "t"
    result = restore(repo, m, target)
    assert_only_good(result, target, {"f"})
    assert "type" in result.errors[0].error


def test_type_confusion_with_the_size_of_the_tree_is_damage_too(repo: sv.Repository, tmp_path: Path) -> None:
    """A size that agrees with the tree's JSON does not make the tree file data."""
    h = Hostile(repo)
    inner = [file_node("inner", [h.data(NINE)], size=9)]
    tree = h.tree(inner)
    raw = json.dumps({"nodes": inner, "v": 1}, sort_keys=True, separators=(",", ":")).encode()
    m = h.commit(h.tree([file_node("f", [tree], size=len(raw)), file_node("ok", [h.data(b"good")], size=4)]))
    target = tmp_path / "t"
    result = restore(repo, m, target)
    assert_only_good(result, target, {"f"})


def test_type_confusion_stops_a_restore_with_stop_on_error(repo: sv.Repository, tmp_path: Path) -> None:
    m = commit(repo, TYPE_CONFUSED["only-chunk"])
    with pytest.raises(sv.IntegrityError) as e:
        restore(repo, m, tmp_path / "t", stop_on_error=True)
    assert e.value.path == "f"


def test_a_data_blob_named_as_a_subtree_is_an_unreadable_directory(repo: sv.Repository, tmp_path: Path) -> None:
    m = commit(repo, lambda h: [dir_node("d", h.data(NINE))])
    target = tmp_path / "t"
    result = restore(repo, m, target)
    assert [(e.path, e.kind, e.type) for e in result.errors] == [("d", "damaged", "dir")]
    assert listing(target) == ["ok"]


# -- 4. sizes that lie ----------------------------------------------------------------------

LYING_SIZES = {
    "2^40": lambda h: [file_node("f", [h.data(NINE)], size=2**40)],
    "2^62": lambda h: [file_node("f", [h.data(NINE)], size=2**62)],
    "one-more": lambda h: [file_node("f", [h.data(NINE)], size=10)],
    "one-less": lambda h: [file_node("f", [h.data(NINE)], size=8)],
    "zero": lambda h: [file_node("f", [h.data(NINE)], size=0)],
    "no-content": lambda h: [file_node("f", [], size=9)],
    "two-chunks-short": lambda h: [file_node("f", [h.data(NINE), h.data(b"x" * 9)], size=17)],
    "two-chunks-long": lambda h: [file_node("f", [h.data(NINE), h.data(b"x" * 9)], size=19)],
    "two-chunks-2^62": lambda h: [file_node("f", [h.data(NINE), h.data(b"x" * 9)], size=2**62)],
}


@pytest.mark.parametrize("case", sorted(LYING_SIZES))
def test_a_size_that_disagrees_with_the_content_is_damage(repo: sv.Repository, tmp_path: Path, case: str) -> None:
    m = commit(repo, LYING_SIZES[case])
    target = tmp_path / "t"
    plans: list[tuple[int, int]] = []
    progress: list[int] = []
    done: list[str] = []
    result = restore(
        repo,
        m,
        target,
        on_plan=lambda files, nbytes: plans.append((files, nbytes)),
        progress=lambda n, _path: progress.append(n),
        on_file=done.append,
    )
    assert_only_good(result, target, {"f"})
    assert "size" in result.errors[0].error
    # The lie never reaches the totals, and progress still adds up to them.
    [(files, nbytes)] = plans
    assert nbytes < 1 << 30
    assert sum(progress) == nbytes
    assert len(done) == files
    assert result.bytes_written == 4


def test_a_lying_size_over_an_existing_file_leaves_it_as_it_was(repo: sv.Repository, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "f").write_bytes(b"before")
    m = commit(repo, LYING_SIZES["one-more"])
    result = restore(repo, m, target)
    assert [e.path for e in result.errors] == ["f"]
    assert (target / "f").read_bytes() == b"before"


@pytest.mark.parametrize("case", ["2^62", "one-less"])
def test_a_lying_size_stops_a_restore_with_stop_on_error(repo: sv.Repository, tmp_path: Path, case: str) -> None:
    m = commit(repo, LYING_SIZES[case])
    with pytest.raises(sv.IntegrityError) as e:
        restore(repo, m, tmp_path / "t", stop_on_error=True)
    assert e.value.path == "f"
    assert not (tmp_path / "t" / "f").exists()


def test_a_lying_size_in_a_job_keeps_progress_within_its_totals(repo: sv.Repository, tmp_path: Path) -> None:
    m = commit(repo, LYING_SIZES["2^62"])
    job = sv.Restorer(repo, workers=2).submit(m.id, tmp_path / "t")
    result = job.result(60)
    assert [e.path for e in result.errors] == ["f"]
    p = job.progress
    assert p.bytes_total is not None
    assert p.bytes_total < 1 << 30
    assert (p.files_done, p.bytes_done) == (p.files_total, p.bytes_total)


# -- 9. device nodes and setuid/setgid bits -------------------------------------------------

NULL_DEV = os.makedev(1, 3)
LOOP_DEV = os.makedev(7, 0)


def special_nodes(h: Hostile) -> list[dict[str, Any]]:
    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    sticky = h.tree([])
    return [
        {"name": "chr", "type": "chardev", "mode": 0o666, "rdev": NULL_DEV},
        {"name": "blk", "type": "blockdev", "mode": 0o666, "rdev": LOOP_DEV},
        file_node("suid", [h.data(NINE)], size=9, mode=0o4755, uid=uid),
        file_node("sgid", [h.data(b"sgid")], size=4, mode=0o2750, uid=uid),
        file_node("both", [h.data(b"both")], size=4, mode=0o6711, uid=uid),
        {"name": "fifo", "type": "fifo", "mode": 0o640},
        dir_node("sticky", sticky, mode=0o1777),
        dir_node("shared", h.tree([]), mode=0o2775),
    ]


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_by_default_devices_are_skipped_and_setuid_bits_dropped(repo: sv.Repository, tmp_path: Path) -> None:
    m = commit(repo, special_nodes)
    target = tmp_path / "t"
    result = restore(repo, m, target)
    assert [(e.path, e.kind, e.type) for e in result.errors] == [
        ("blk", "skipped", "blockdev"),
        ("chr", "skipped", "chardev"),
    ]
    assert result.ok
    assert result.devices_skipped == 2
    assert result.setuid_dropped == 3
    assert not (target / "chr").exists()
    assert not (target / "blk").exists()
    assert (mode(target / "suid"), mode(target / "sgid"), mode(target / "both")) == (0o755, 0o750, 0o711)
    assert (target / "suid").read_bytes() == NINE
    # Everything else as stored: FIFOs, the sticky bit, a directory's setgid (group inheritance).
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
    assert mode(target / "fifo") == 0o640
    assert mode(target / "sticky") == 0o1777
    assert mode(target / "shared") == 0o2775
    assert result.other == 1


@pytest.mark.skipif(not AS_ROOT, reason="device nodes are made only as root")
def test_devices_and_setuid_bits_are_restored_when_asked_for(repo: sv.Repository, tmp_path: Path) -> None:
    m = commit(repo, special_nodes)
    target = tmp_path / "t"
    result = restore(repo, m, target, devices=True, setuid=True)
    assert result.errors == []
    assert (result.devices_skipped, result.setuid_dropped) == (0, 0)
    chr_st, blk_st = os.lstat(target / "chr"), os.lstat(target / "blk")
    assert stat.S_ISCHR(chr_st.st_mode)
    assert chr_st.st_rdev == NULL_DEV
    assert mode(target / "chr") == 0o666
    assert stat.S_ISBLK(blk_st.st_mode)
    assert blk_st.st_rdev == LOOP_DEV
    assert mode(target / "blk") == 0o666
    assert (mode(target / "suid"), mode(target / "sgid"), mode(target / "both")) == (0o4755, 0o2750, 0o6711)
    assert result.other == 3


@pytest.mark.parametrize(("devices", "setuid"), [(True, False), (False, True)])
def test_devices_and_setuid_are_asked_for_apart(
    repo: sv.Repository, tmp_path: Path, devices: bool, setuid: bool
) -> None:
    m = commit(repo, special_nodes)
    target = tmp_path / "t"
    result = restore(repo, m, target, devices=devices, setuid=setuid)
    made = devices and AS_ROOT
    assert result.devices_skipped == (0 if made else 2)
    assert (target / "chr").exists() == made
    assert result.setuid_dropped == (0 if setuid else 3)
    assert mode(target / "suid") == (0o4755 if setuid else 0o755)


def test_a_skipped_device_says_how_to_restore_it(repo: sv.Repository, tmp_path: Path) -> None:
    m = commit(repo, lambda h: [{"name": "chr", "type": "chardev", "mode": 0o666, "rdev": NULL_DEV}])
    result = restore(repo, m, tmp_path / "t")
    [err] = result.errors
    assert "devices" in err.error


# -- names longer than the target's file system allows ---------------------------------------


def test_a_name_the_target_refuses_is_reported_and_the_rest_restored(repo: sv.Repository, tmp_path: Path) -> None:
    # Within the format's 1,024 bytes, over Linux's 255: each such file, symlink and directory
    # is one error (the directory with all below it), never the end of the restore.
    from tests.test_hostile import link_node

    def nodes(h: Hostile) -> list[dict[str, Any]]:
        sub = h.tree([file_node("inner", [h.data(NINE)], size=9)])
        return [
            file_node("f" * 300, [h.data(NINE)], size=9),
            link_node("l" * 300, "t"),
            {"name": "d" * 300, "type": "dir", "mode": 0o755, "subtree": sub},
        ]

    m = commit(repo, nodes)
    target = tmp_path / "t"
    result = restore(repo, m, target)
    assert sorted((e.path[0], e.type) for e in result.errors) == [("d", "dir"), ("f", "file"), ("l", "symlink")]
    assert all("too long" in e.error for e in result.errors)
    assert listing(target) == ["ok"]
    assert (target / "ok").read_bytes() == b"good"
