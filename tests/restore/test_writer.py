"""The confined writer on its own: temporary names, metadata, and never a step outside the target."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapvault.errors import UnsafePathError
from snapvault.pipeline.restore_plan import PlannedDir
from snapvault.pipeline.tree import Node
from snapvault.restore.writer import OPEN_PATH, TEMP_PREFIX, TargetWriter

T = 1_700_000_000_123_456_789


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[TargetWriter]:
    w = TargetWriter(str(tmp_path / "target"), as_root=False)
    yield w
    w.close()


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_a_committed_file_appears_whole_with_its_metadata(writer: TargetWriter, tmp_path: Path) -> None:
    node = Node("f.txt", "file", mode=0o640, mtime_ns=T)
    with writer.new_file(writer.root.fd) as f:
        f.write(b"hello ")
        # Mid-write only the temporary name exists.
        assert [n.startswith(TEMP_PREFIX) for n in names(tmp_path / "target")] == [True]
        f.write(memoryview(b"world"))
        f.commit(node)
    target = tmp_path / "target"
    assert names(target) == ["f.txt"]
    assert (target / "f.txt").read_bytes() == b"hello world"
    st = os.stat(target / "f.txt")
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == T


def test_a_file_not_committed_leaves_the_old_content_and_no_temporary(writer: TargetWriter, tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "f.txt").write_bytes(b"before")
    with writer.new_file(writer.root.fd) as f:
        f.write(b"damaged half")

    def fail_mid_file() -> None:
        with writer.new_file(writer.root.fd) as f:
            f.write(b"x")
            raise RuntimeError("the restore failed mid-file")

    with pytest.raises(RuntimeError):
        fail_mid_file()
    assert names(target) == ["f.txt"]
    assert (target / "f.txt").read_bytes() == b"before"


def test_a_file_replaces_a_symlink_and_never_writes_through_it(writer: TargetWriter, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"canary")
    os.symlink(outside, tmp_path / "target" / "f")
    with writer.new_file(writer.root.fd) as f:
        f.write(b"restored")
        f.commit(Node("f", "file", mode=0o600))
    assert outside.read_bytes() == b"canary"
    assert not (tmp_path / "target" / "f").is_symlink()
    assert (tmp_path / "target" / "f").read_bytes() == b"restored"


@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_a_directory_is_never_entered_through_a_symlink_or_a_file(
    writer: TargetWriter, tmp_path: Path, planted: str
) -> None:
    (tmp_path / "outside").mkdir()
    if planted == "symlink":
        os.symlink(tmp_path / "outside", tmp_path / "target" / "d")
    else:
        (tmp_path / "target" / "d").write_bytes(b"")
    with pytest.raises(UnsafePathError):
        writer.subdir(writer.root, "d")
    assert writer.dirs == 0
    assert list((tmp_path / "outside").iterdir()) == []


def test_subdirectories_are_made_private_and_counted(writer: TargetWriter, tmp_path: Path) -> None:
    d = writer.subdir(writer.root, "d")
    try:
        inner = writer.subdir(d, "e")
        inner.release()
    finally:
        d.release()
    assert writer.dirs == 2
    assert stat.S_IMODE(os.stat(tmp_path / "target" / "d" / "e").st_mode) == 0o700


def test_directory_metadata_is_set_deepest_first(writer: TargetWriter, tmp_path: Path) -> None:
    d, e = Node("d", "dir", mode=0o555, mtime_ns=T), Node("e", "dir", mode=0o750, mtime_ns=T + 1000)
    plan = PlannedDir(None, "", [], [PlannedDir(d, "d", [], [PlannedDir(e, "d/e", [], [], [])], [])], [])
    writer.subdir(writer.root, "d").release()
    (tmp_path / "target" / "d" / "e").mkdir()
    writer.dir_metadata(plan)
    # d is read-only now: its child was done before it.
    assert stat.S_IMODE(os.stat(tmp_path / "target" / "d").st_mode) == 0o555
    assert os.stat(tmp_path / "target" / "d" / "e").st_mtime_ns == T + 1000
    assert os.stat(tmp_path / "target" / "d").st_mtime_ns == T
    os.chmod(tmp_path / "target" / "d", 0o755)  # let tmp_path be cleaned up


def _chain_plan(levels: int, mode: int = 0o750) -> PlannedDir:
    plan = leaf = PlannedDir(None, "", [], [], [])
    for i in range(levels):
        sub = PlannedDir(Node("d", "dir", mode=mode, mtime_ns=T + i), "/".join(["d"] * (i + 1)), [], [], [])
        leaf.dirs.append(sub)
        leaf = sub
    return plan


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_walk_deeper_than_the_open_path_holds_a_bounded_number_of_directories(
    writer: TargetWriter, tmp_path: Path
) -> None:
    # Three times the window deep, with a sibling at the bottom of each level so the walk must
    # climb back through directories it let go of and open them again as "..".
    plan = _chain_plan(3 * OPEN_PATH)
    levels, level = [], plan
    while level.dirs:
        level = level.dirs[0]
        levels.append(level)
    for level in levels:
        level.dirs.append(PlannedDir(Node("s", "dir", mode=0o700, mtime_ns=T), level.rel + "/s", [], [], []))
    baseline = _open_fds()
    peak = 0
    seen: list[str] = []

    def enter(d: PlannedDir, _handle: object) -> None:
        nonlocal peak
        peak = max(peak, _open_fds() - baseline)
        seen.append(d.rel)

    writer.walk(plan, create=True, enter=enter)
    assert peak <= OPEN_PATH + 1
    assert _open_fds() == baseline
    assert len(seen) == 1 + 2 * 3 * OPEN_PATH
    assert (tmp_path / "target").joinpath(*["d"] * (3 * OPEN_PATH), "s").is_dir()
    assert (tmp_path / "target" / "d" / "s").is_dir()
    writer.dir_metadata(plan)
    deepest = (tmp_path / "target").joinpath(*["d"] * (3 * OPEN_PATH))
    assert os.stat(deepest).st_mtime_ns == T + 3 * OPEN_PATH - 1
    assert stat.S_IMODE(os.stat(tmp_path / "target" / "d").st_mode) == 0o750


def test_a_directory_moved_away_during_a_deep_walk_stops_it(writer: TargetWriter, tmp_path: Path) -> None:
    # Something moves the deep part of the tree out of the target mid-walk: climbing back
    # through ".." would now lead outside, so the walk must notice and refuse.
    plan = _chain_plan(OPEN_PATH + 4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = False

    def enter(d: PlannedDir, _handle: object) -> None:
        nonlocal moved
        if d.rel.count("/") == OPEN_PATH + 3 and not moved:
            os.rename(tmp_path / "target" / "d" / "d", elsewhere / "d")
            moved = True

    with pytest.raises(UnsafePathError, match="moved"):
        writer.walk(plan, create=True, enter=enter)
    assert moved


def test_special_entries(writer: TargetWriter, tmp_path: Path) -> None:
    target = tmp_path / "target"
    assert writer.makes("symlink")
    assert writer.makes("fifo")
    assert not writer.makes("socket")
    assert not writer.makes("chardev")  # only as root
    assert writer.special(writer.root.fd, Node("l", "symlink", target="../../outside", mtime_ns=T)) is None
    assert writer.special(writer.root.fd, Node("p", "fifo", mode=0o604, mtime_ns=T)) is None
    assert os.readlink(target / "l") == "../../outside"
    assert stat.S_ISFIFO(os.lstat(target / "p").st_mode)
    assert stat.S_IMODE(os.lstat(target / "p").st_mode) == 0o604
    assert (writer.symlinks, writer.other) == (1, 1)
    # A name the target will not give up (a directory that is not empty) is refused, not raised.
    (target / "busy").mkdir()
    (target / "busy" / "x").write_bytes(b"")
    refused = writer.special(writer.root.fd, Node("busy", "symlink", target="x"))
    assert isinstance(refused, OSError)
    assert sorted(n for n in names(target) if n.startswith(TEMP_PREFIX)) == []


def test_hardlinks_are_made_between_paths_below_the_target(writer: TargetWriter, tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "a").mkdir()
    (target / "b").mkdir()
    (target / "a" / "f").write_bytes(b"shared")
    (target / "b" / "g").write_bytes(b"old")
    assert writer.hardlink("a/f", "b/g") is None
    assert os.stat(target / "b" / "g").st_ino == os.stat(target / "a" / "f").st_ino
    assert writer.hardlink("a/missing", "b/h") is not None
    assert writer.hardlinks == 1


def test_a_hardlink_never_goes_through_a_symlinked_directory(writer: TargetWriter, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "target" / "f").write_bytes(b"x")
    os.symlink(tmp_path / "outside", tmp_path / "target" / "d")
    with pytest.raises(UnsafePathError):
        writer.hardlink("f", "d/g")
    assert list((tmp_path / "outside").iterdir()) == []


AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.parametrize("as_root", [False, True])
@pytest.mark.parametrize("devices", [False, True])
def test_device_nodes_are_made_only_when_asked_for_and_as_root(tmp_path: Path, as_root: bool, devices: bool) -> None:
    w = TargetWriter(str(tmp_path / "target"), as_root=as_root, devices=devices)
    try:
        assert w.makes("chardev") == w.makes("blockdev") == (as_root and devices)
        assert w.makes("fifo")
    finally:
        w.close()


@pytest.mark.parametrize(("setuid", "kept"), [(False, 0o1755), (True, 0o7755)])
def test_setuid_and_setgid_bits_are_kept_only_when_asked_for(tmp_path: Path, setuid: bool, kept: int) -> None:
    w = TargetWriter(str(tmp_path / "target"), as_root=False, setuid=setuid)
    try:
        with w.new_file(w.root.fd) as f:
            f.commit(Node("f", "file", mode=0o7755))
        assert w.special(w.root.fd, Node("p", "fifo", mode=0o7755)) is None
        with w.new_file(w.root.fd) as f:
            f.commit(Node("plain", "file", mode=0o1755))
    finally:
        w.close()
    target = tmp_path / "target"
    assert stat.S_IMODE(os.lstat(target / "f").st_mode) == kept
    assert stat.S_IMODE(os.lstat(target / "p").st_mode) == kept
    assert stat.S_IMODE(os.lstat(target / "plain").st_mode) == 0o1755
    assert w.setuid_dropped == (0 if setuid else 2)


@pytest.mark.skipif(not AS_ROOT, reason="device nodes are made only as root")
def test_a_device_node_is_private_until_it_has_its_owner_and_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    mknod = os.mknod

    def spy(path: str, mode: int = 0o600, device: int = 0, *, dir_fd: int | None = None) -> None:
        made.append(stat.S_IMODE(mode))
        mknod(path, mode, device, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mknod", spy)
    w = TargetWriter(str(tmp_path / "target"), as_root=True, devices=True)
    try:
        assert w.special(w.root.fd, Node("null", "chardev", mode=0o666, rdev=os.makedev(1, 3))) is None
    finally:
        w.close()
    st = os.lstat(tmp_path / "target" / "null")
    assert stat.S_ISCHR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert made == [0o600]
