"""Every tree node type and field of docs/format.md ("Trees"), given hostile values, through the CLI.

Each case is a directory whose tree holds the case's nodes. One snapshot holds every case that
does not stop a restore as a whole, each in a directory named after the case next to a
harmless file ``aaa-ok``; it is restored once, and each case then reads its own lines of that
restore. Every case also has a snapshot of its own (``aaa-ok`` and ``sub``), which the cases that
refuse a restore outright, and ``ls``, use (and every command, with SNAPVAULT_HOSTILE_ALL=1).

What the format says a reader does with each value decides the expected outcome:

- ``OK``: the value is legal; the entry is restored as stored.
- ``WARNED``: legal, but not made as stored (a device, a setuid bit): a warning, exit 0.
- ``TREE``: the format refuses the value, so the case's tree is malformed: the restore lists
  that directory as unreadable and restores the rest (exit 1); ``check`` reports the snapshot.
- ``FILE``: the tree is legal but an entry is damage (sizes that lie, data that is missing or
  not file data, a name or target the file system refuses): that entry alone is listed and
  left out.
- ``UNSAFE``: a name that could leave the target (``..``, ``/``, NUL, too long, a duplicate):
  the restore is refused with one line and writes nothing.

Every command stays under the memory and time bounds, exits with a documented code, writes no
traceback, and changes nothing outside the target (the repository included).
"""

from __future__ import annotations

import base64
import os
import random
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.hostile.conftest import (
    ALL_COMMANDS,
    Run,
    Runs,
    Sandbox,
    Watch,
    assert_ok,
    assert_refused,
    outcome,
    run_batch,
)
from tests.test_hostile import PWNED, Hostile, Scene, dir_node, file_node, link_node

pytestmark = pytest.mark.commits_damage

OK, WARNED, TREE, FILE, UNSAFE = "ok", "warned", "tree", "file", "unsafe"
N = len(PWNED)


def fifo(name: Any = "p", **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "fifo", "mode": 0o600, **kw}


def dev(kind: str, rdev: int = (1 << 8) | 3, **kw: Any) -> dict[str, Any]:
    return {"name": "dev", "type": kind, "mode": 0o666, "rdev": rdev, **kw}


def file_with(h: Hostile, **kw: Any) -> dict[str, Any]:
    return file_node("f", [h.data()], **kw)


# A file capability (struct vfs_cap_data, revision 2) granting CAP_SETUID, permitted and
# effective: what `setcap cap_setuid+ep` writes. As much a privilege as the setuid bit.
CAP_SETUID = base64.b64encode(struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0)).decode()


@dataclass(frozen=True)
class Case:
    nodes: Callable[[Hostile], list[dict[str, Any]]]
    kind: str
    #: What ``check --read-data`` says of the snapshot: True (a problem names it), False (none
    #: does), None (the format leaves it to the restore, which is what is asserted).
    check: bool | None
    #: A further assertion on the restored case directory.
    verify: Callable[[Path], None] | None = None
    #: Entries of the case directory the restore lists (FILE cases; default: some).
    damaged: tuple[str, ...] = ()
    #: ``ls`` of the case's own snapshot (every case with SNAPVAULT_HOSTILE_ALL=1).
    ls: bool = False
    xfail: str | None = None
    #: What the one line of a refused restore must hold (UNSAFE: the name, as the tree has it).
    says: str = ""


def _has(name: bytes) -> Callable[[Path], None]:
    def verify(d: Path) -> None:
        assert name in os.listdir(os.fsencode(d))

    return verify


def _mode(name: str, mode: int) -> Callable[[Path], None]:
    def verify(d: Path) -> None:
        assert stat.S_IMODE(os.lstat(d / name).st_mode) == mode

    return verify


def _link(name: str, target: str) -> Callable[[Path], None]:
    def verify(d: Path) -> None:
        assert os.readlink(d / name) == target

    return verify


def _absent(*names: str) -> Callable[[Path], None]:
    def verify(d: Path) -> None:
        for name in names:
            assert not os.path.lexists(d / name), name

    return verify


def _fifo(d: Path) -> None:
    assert stat.S_ISFIFO(os.lstat(d / "p").st_mode)


def _no_capability(d: Path) -> None:
    assert (d / "f").read_bytes() == PWNED
    assert "security.capability" not in os.listxattr(d / "f", follow_symlinks=False)


def _xattr(d: Path) -> None:
    assert os.getxattr(d / "f", "user.note") == b"hi"


def _hardlinked(d: Path) -> None:
    assert os.stat(d / "f").st_ino == os.stat(d / "g").st_ino
    assert (d / "g").read_bytes() == PWNED


def _not_linked(d: Path) -> None:
    inodes = {os.lstat(d / n).st_ino for n in ("f", "p", "d")}
    assert len(inodes) == 3


def _empty_file(d: Path) -> None:
    assert (d / "f").read_bytes() == b""


def _many(d: Path) -> None:
    assert (d / "f").stat().st_size == 10_000 * N


def _linked_10000(d: Path) -> None:
    assert os.stat(d / "f00000").st_nlink == 10_000


CASES: dict[str, Case] = {
    # -- name ------------------------------------------------------------------------------
    "name-empty": Case(lambda h: [file_node("", [h.data()])], UNSAFE, True, ls=True, says="''"),
    "name-dot": Case(lambda h: [fifo(".")], UNSAFE, True, says="'.'"),
    "name-dotdot": Case(lambda h: [file_node("..", [h.data()])], UNSAFE, True, says="'..'"),
    "name-with-slashes": Case(
        lambda h: [file_node("../../outside/victim/x", [h.data()])], UNSAFE, True, says="'../../outside/victim/x'"
    ),
    "name-absolute": Case(lambda h: [file_node("/etc/passwd", [h.data()])], UNSAFE, True, says="'/etc/passwd'"),
    "name-nul": Case(lambda h: [fifo("a\0b")], UNSAFE, True, says=repr("a\0b")),
    "name-not-text": Case(lambda h: [fifo(5)], UNSAFE, True, says="tree: 5"),
    "name-null": Case(lambda h: [fifo(None)], UNSAFE, True, says="None"),
    "name-over-1024-bytes": Case(lambda h: [fifo("n" * 1025)], UNSAFE, True, says="'nnnnnnnn"),
    "name-lone-surrogate": Case(lambda h: [fifo("a\ud800")], UNSAFE, True, says=repr("a\ud800")),
    "name-twice": Case(lambda h: [fifo("a"), file_node("a", [h.data()])], UNSAFE, True, says="'a'"),
    "name-symlink-and-dir": Case(
        lambda h: [link_node("a", "../../outside/victim"), dir_node("a", h.tree([file_node("x", [h.data()])]))],
        UNSAFE,
        True,
        says="'a'",
    ),
    "name-missing": Case(lambda h: [{"type": "fifo", "mode": 0o600}], TREE, True),
    # Legal: any bytes but "/" and NUL, decoded with surrogateescape, up to 1,024 bytes.
    "name-not-utf8": Case(lambda h: [fifo("\udcff\udcfe")], OK, False, _has(b"\xff\xfe"), ls=True),
    "name-control-chars": Case(lambda h: [fifo("a\nb\tc\x1b[2J")], OK, False, _has(b"a\nb\tc\x1b[2J")),
    "name-255-bytes": Case(lambda h: [fifo("n" * 255)], OK, False, _has(b"n" * 255)),
    "name-past-name-max": Case(
        lambda h: [file_node("n" * 300, [h.data()]), fifo("p")],
        FILE,
        False,
        _fifo,
        ("n" * 300,),
    ),
    "nodes-unsorted": Case(lambda h: [fifo("b"), fifo("a")], OK, False, _has(b"a")),
    # -- type ------------------------------------------------------------------------------
    "type-unknown": Case(lambda h: [{"name": "d", "type": "door"}], TREE, True, ls=True),
    "type-not-text": Case(lambda h: [{"name": "d", "type": 1}], TREE, True),
    "type-fifo": Case(lambda h: [fifo()], OK, False, _fifo),
    "type-socket": Case(lambda h: [{"name": "s", "type": "socket", "mode": 0o755}], WARNED, False, _absent("s")),
    "type-chardev": Case(lambda h: [dev("chardev")], WARNED, False, _absent("dev"), ls=True),
    "type-blockdev": Case(lambda h: [dev("blockdev", rdev=8 << 8)], WARNED, False, _absent("dev")),
    "keys-unknown-ignored": Case(lambda h: [fifo(evil={"deep": [1, 2, 3]}, future=True)], OK, False, _fifo),
    # -- mode ------------------------------------------------------------------------------
    "mode-over-7777": Case(lambda h: [fifo(mode=0o10000)], TREE, True),
    "mode-negative": Case(lambda h: [fifo(mode=-1)], TREE, True),
    "mode-text": Case(lambda h: [fifo(mode="644")], TREE, True),
    "mode-bool": Case(lambda h: [fifo(mode=True)], TREE, True),
    "mode-float": Case(lambda h: [fifo(mode=420.0)], TREE, True),
    "mode-setuid-dropped": Case(lambda h: [file_with(h, mode=0o6755)], WARNED, False, _mode("f", 0o755)),
    "mode-dir-000": Case(
        lambda h: [dir_node("locked", h.tree([file_node("f", [h.data()])]), mode=0)], OK, False, _mode("locked", 0)
    ),
    # -- uid, gid --------------------------------------------------------------------------
    "uid-over-32-bits": Case(lambda h: [fifo(uid=2**32)], TREE, True),
    "gid-negative": Case(lambda h: [fifo(gid=-1)], TREE, True),
    "uid-gid-largest": Case(lambda h: [file_with(h, uid=2**32 - 1, gid=2**32 - 1)], OK, False),
    # -- times -----------------------------------------------------------------------------
    "mtime-past-bound": Case(lambda h: [fifo(mtime_ns=2**62 + 1)], TREE, True),
    "ctime-past-bound": Case(lambda h: [fifo(ctime_ns=-(2**62) - 1)], TREE, True),
    "mtime-upper-bound": Case(lambda h: [file_with(h, mtime_ns=2**62)], OK, False),
    "mtime-lower-bound": Case(lambda h: [file_with(h, mtime_ns=-(2**62))], OK, False),
    # -- size ------------------------------------------------------------------------------
    "size-negative": Case(lambda h: [file_with(h, size=-1)], TREE, True),
    "size-past-bound": Case(lambda h: [file_with(h, size=2**62 + 1)], TREE, True),
    "size-2e62-one-chunk": Case(lambda h: [file_with(h, size=2**62)], FILE, None, damaged=("f",), ls=True),
    "size-smaller-than-content": Case(lambda h: [file_with(h, size=5)], FILE, None, damaged=("f",)),
    "size-larger-than-content": Case(lambda h: [file_with(h, size=N + 1)], FILE, None, damaged=("f",)),
    "size-on-dir": Case(lambda h: [dir_node("d", h.tree([]), size=7)], TREE, True),
    "size-on-symlink": Case(lambda h: [link_node("l", "x", size=1)], TREE, True),
    "size-zero-on-dir": Case(lambda h: [dir_node("d", h.tree([]), size=0)], OK, False),
    # -- content ---------------------------------------------------------------------------
    "content-not-a-list": Case(lambda h: [file_node("f", h.data())], TREE, True),  # type: ignore[arg-type]
    "content-uppercase-hex": Case(lambda h: [file_node("f", [h.data().upper()])], TREE, True),
    "content-63-hex": Case(lambda h: [file_node("f", [h.data()[:63]])], TREE, True),
    "content-not-text": Case(lambda h: [file_node("f", [12345])], TREE, True),
    "content-on-fifo": Case(lambda h: [fifo(content=[h.data()])], TREE, True),
    "content-unknown-blob": Case(lambda h: [file_node("f", ["ab" * 32])], FILE, True, damaged=("f",)),
    "content-names-a-tree": Case(
        lambda h: [file_node("f", [h.tree([])], size=len(b'{"nodes":[],"v":1}'))], FILE, True, damaged=("f",)
    ),
    "content-empty-file": Case(lambda h: [file_node("f", [], size=0)], OK, False, _empty_file),
    "content-one-blob-10000-times": Case(
        lambda h: [file_node("f", [h.data()] * 10_000, size=10_000 * N)], OK, False, _many
    ),
    # -- subtree ---------------------------------------------------------------------------
    "subtree-missing": Case(lambda h: [{"name": "d", "type": "dir", "mode": 0o755}], TREE, True),
    "subtree-null": Case(lambda h: [dir_node("d", None)], TREE, True),  # type: ignore[arg-type]
    "subtree-not-hex": Case(lambda h: [dir_node("d", "z" * 64)], TREE, True),
    "subtree-on-file": Case(lambda h: [file_with(h, subtree=h.tree([]))], TREE, True),
    "subtree-unknown": Case(lambda h: [dir_node("d", "cd" * 32)], FILE, True, damaged=("d",), ls=True),
    "subtree-names-data": Case(lambda h: [dir_node("d", h.data())], FILE, True, damaged=("d",), ls=True),
    # -- target ----------------------------------------------------------------------------
    "target-empty": Case(lambda h: [link_node("l", "")], TREE, True),
    "target-nul": Case(lambda h: [link_node("l", "/etc\0x")], TREE, True),
    "target-missing": Case(lambda h: [{"name": "l", "type": "symlink", "mode": 0o777}], TREE, True),
    "target-not-text": Case(lambda h: [link_node("l", 5)], TREE, True),  # type: ignore[arg-type]
    "target-on-file": Case(lambda h: [file_with(h, target="/etc/passwd")], TREE, True),
    "target-over-4096-bytes": Case(lambda h: [link_node("l", "t/" * 2049)], TREE, True),
    "target-lone-surrogate": Case(lambda h: [link_node("l", "a\udfff")], TREE, True),
    # Legal: a link may point anywhere; it is made, never followed.
    "target-outside": Case(
        lambda h: [link_node("l", "../../../outside/canary")], OK, False, _link("l", "../../../outside/canary")
    ),
    "target-absolute": Case(lambda h: [link_node("l", "/etc/shadow")], OK, False, _link("l", "/etc/shadow")),
    # 4,096 bytes is the format's limit; Linux takes 4,095: the file system refuses that link.
    "target-4096-bytes": Case(lambda h: [link_node("l", "t" * 4096), fifo()], FILE, False, _fifo, ("l",)),
    # -- inode, dev, links -----------------------------------------------------------------
    "links-zero": Case(lambda h: [fifo(links=0)], TREE, True),
    "links-past-bound": Case(lambda h: [fifo(links=2**32)], TREE, True),
    "inode-past-bound": Case(lambda h: [fifo(inode=2**64)], TREE, True),
    "dev-negative": Case(lambda h: [fifo(dev=-1)], TREE, True),
    "hardlink-pair": Case(
        lambda h: [file_with(h, inode=11, dev=1, links=2), file_node("g", [h.data()], inode=11, dev=1, links=2)],
        OK,
        False,
        _hardlinked,
    ),
    # Only files are linked: a FIFO and a directory sharing the inode stay apart.
    "hardlink-file-fifo-dir": Case(
        lambda h: [
            file_with(h, inode=12, dev=1, links=3),
            fifo("p", inode=12, dev=1, links=3),
            dir_node("d", h.tree([]), inode=12, dev=1, links=3),
        ],
        OK,
        False,
        _not_linked,
    ),
    # The second member's own content is not read: it is the first's, linked.
    "hardlink-second-lies": Case(
        lambda h: [
            file_with(h, inode=13, dev=1, links=2),
            file_node("g", ["ef" * 32], size=1, inode=13, dev=1, links=2),
        ],
        OK,
        None,
        _hardlinked,
    ),
    "hardlink-first-damaged": Case(
        lambda h: [
            file_node("f", ["ab" * 32], inode=14, dev=1, links=2),
            file_node("g", [h.data()], inode=14, dev=1, links=2),
        ],
        FILE,
        True,
        _absent("f", "g"),
        damaged=("f", "g"),
    ),
    "hardlink-10000-names": Case(
        lambda h: [file_node(f"f{i:05}", [h.data()], inode=15, dev=1, links=10_000) for i in range(10_000)],
        OK,
        False,
        _linked_10000,
    ),
    # -- rdev ------------------------------------------------------------------------------
    "rdev-on-file": Case(lambda h: [file_with(h, rdev=(1 << 8) | 3)], TREE, True),
    "rdev-on-fifo": Case(lambda h: [fifo(rdev=1)], TREE, True),
    "rdev-past-bound": Case(lambda h: [dev("chardev", rdev=2**64)], TREE, True),
    # -- xattrs ----------------------------------------------------------------------------
    "xattr-not-canonical": Case(lambda h: [file_with(h, xattrs=[["user.a", "QR=="]])], TREE, True),
    "xattr-not-base64": Case(lambda h: [file_with(h, xattrs=[["user.a", "%%%"]])], TREE, True),
    "xattr-urlsafe-base64": Case(lambda h: [file_with(h, xattrs=[["user.a", "-_8="]])], TREE, True),
    "xattr-not-a-list": Case(lambda h: [file_with(h, xattrs=7)], TREE, True),
    "xattr-not-a-pair": Case(lambda h: [file_with(h, xattrs=[["user.a", "QQ==", "x"]])], TREE, True),
    "xattr-name-empty": Case(lambda h: [file_with(h, xattrs=[["", "QQ=="]])], TREE, True),
    "xattr-name-nul": Case(lambda h: [file_with(h, xattrs=[["user.a\0b", "QQ=="]])], TREE, True),
    "xattr-user": Case(lambda h: [file_with(h, xattrs=[["user.note", "aGk="]])], OK, False, _xattr),
    "xattr-file-capability": Case(
        lambda h: [file_with(h, mode=0o755, xattrs=[["security.capability", CAP_SETUID]])],
        WARNED,
        False,
        _no_capability,
    ),
}

# What stops a restore as a whole cannot share a snapshot with the other cases.
ALONE = [name for name, c in CASES.items() if c.kind == UNSAFE]
TOGETHER = [name for name in CASES if name not in ALONE]


@dataclass(frozen=True)
class World:
    root: Path
    repo: Path
    ids: dict[str, str]
    together: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("nodes")
    rng = random.Random(17)
    repo = sv.Repository.init(str(root / "repo"), PASSWORD, kdf=FAST_KDF, random=rng.randbytes)
    h = Hostile(repo)
    ok = file_node("aaa-ok", [h.data(b"fine")], size=4)
    trees = {name: h.tree(case.nodes(h)) for name, case in CASES.items()}
    roots = {name: h.tree([ok, dir_node("sub", tree)]) for name, tree in trees.items()}
    roots["together"] = h.tree([ok] + [dir_node(name, trees[name]) for name in TOGETHER])
    h.sink.flush()
    h.sink.close()
    ids = {}
    for name, tree in roots.items():
        m = sv.Manifest(time="2026-01-02T03:04:05+00:00", hostname="hostile", paths=["/x"], tree=tree, tags=[name])
        ids[name] = repo.save_manifest(m).id
    return World(root, root / "repo", ids, ids.pop("together"))


LS = [n for n, c in CASES.items() if c.ls or ALL_COMMANDS]


@pytest.fixture(scope="module")
def runs(world: World, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Every command of this module, run side by side once: the restore of the snapshot of
    every case, each case that is restored alone, ``ls`` of some, ``check``, ``snapshots``."""
    repo = str(world.repo)
    jobs: dict[str, tuple[tuple[str, ...], Path]] = {}
    boxes: dict[str, Sandbox] = {}

    def restore(label: str, sid: str) -> None:
        place = tmp_path_factory.mktemp(label)
        scene = Scene(place)
        boxes[label] = Sandbox(scene, Watch([place], target=scene.target))
        jobs[label] = (("-r", repo, "restore", sid, "--target", str(scene.target)), place)

    restore("together", world.together)
    for name in CASES if ALL_COMMANDS else ALONE:
        restore(f"alone {name}", world.ids[name])
    for name in LS:
        jobs[f"ls {name}"] = (("-r", repo, "ls", world.ids[name], "--long"), world.root)
    jobs["check"] = (("-r", repo, "check", "--read-data", "--json"), world.root)
    jobs["snapshots"] = (("-r", repo, "snapshots", "--json"), world.root)
    watch = Watch([world.root])
    return Runs(run_batch(jobs), boxes, watch)


@dataclass(frozen=True)
class Restored:
    run: Run
    target: Path


@pytest.fixture(scope="module")
def restored(runs: Runs) -> Restored:
    """The snapshot of every case that does not stop a restore, restored once."""
    box = runs.boxes["together"]
    box.watch.check()
    box.scene.assert_confined()
    run = outcome(runs.results["together"])
    assert run.code == 1, run  # some cases are damage
    assert run.fatal == [run.lines[-1]], run
    assert "could not be restored" in run.fatal[0], run
    assert (box.scene.target / "aaa-ok").read_bytes() == b"fine"
    return Restored(run, box.scene.target)


@pytest.fixture(scope="module")
def checked(runs: Runs, world: World) -> dict[str, list[dict[str, Any]]]:
    """One ``check --read-data`` of the whole repository: the problems naming each snapshot."""
    run = outcome(runs.results["check"])
    assert run.code == 1, run
    report = run.json()
    by_snapshot: dict[str, list[dict[str, Any]]] = {}
    for p in report["problems"]:
        by_snapshot.setdefault(p["snapshot"], []).append(p)
    assert set(by_snapshot) <= {*world.ids.values(), world.together}, report["problems"]
    return by_snapshot


def test_no_command_changed_the_repository(runs: Runs) -> None:
    runs.repo.check()


def _param(name: str, *, xfail: bool = True) -> Any:
    reason = CASES[name].xfail
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason and xfail else []
    return pytest.param(name, marks=marks, id=name)


def _assert_case(case: Case, lines: list[str], where: Path, prefix: str) -> None:
    """``lines`` are the restore's stderr lines about the case directory ``prefix``."""
    errors = [line for line in lines if line.startswith("error: ")]
    warnings = [line for line in lines if line.startswith("warning: ")]
    if case.kind == OK:
        assert not errors, lines
        assert not warnings, lines
    elif case.kind == WARNED:
        assert warnings, lines
        assert not errors, lines
    elif case.kind == TREE:
        assert len(errors) == 1, lines
        assert errors[0].startswith(f"error: {prefix}: directory cannot be read: "), lines
        assert not os.path.lexists(where) or not os.listdir(where)
    else:
        assert errors, lines
        listed = sorted(line.split(": ", 2)[1] for line in errors)
        expected = case.damaged or tuple(line.split(": ", 2)[1][len(prefix) + 1 :] for line in errors)
        assert listed == sorted(f"{prefix}/{d}" for d in expected), lines
        for name in expected:
            assert not os.path.lexists(where / name), f"a damaged entry appeared: {name}"
    if case.verify is not None:
        case.verify(where)


@pytest.mark.parametrize("name", [_param(n) for n in TOGETHER])
def test_node(restored: Restored, name: str) -> None:
    """Each case's own lines of the shared restore, and what it left in its directory."""
    case = CASES[name]
    lines = [
        line
        for line in restored.run.lines
        if line.startswith((f"error: {name}/", f"error: {name}: ", f"warning: {name}/"))
    ]
    if case.kind == WARNED:
        # Counts of skipped devices and dropped bits are one line each for the whole restore.
        lines += [line for line in restored.run.lines if line.startswith("warning: ") and ":" not in line[9:]]
    _assert_case(case, lines, restored.target / name, name)


@pytest.mark.parametrize("name", [_param(n) for n in (CASES if ALL_COMMANDS else ALONE)])
def test_node_alone(runs: Runs, name: str) -> None:
    """The case's own snapshot, restored on its own (by default, only the unsafe names)."""
    case = CASES[name]
    box = runs.boxes[f"alone {name}"]
    box.watch.check()
    box.scene.assert_confined()
    run = outcome(runs.results[f"alone {name}"])
    target = box.scene.target
    if case.kind == UNSAFE:
        # The name, as the tree holds it (or its start), is what the line points at.
        assert_refused(run, case.says)
        assert os.listdir(target) == [], "an unsafe snapshot was partly restored"
        return
    if case.kind in (OK, WARNED):
        assert_ok(run)
    else:
        assert run.code == 1, run
        assert run.fatal == [run.lines[-1]], run
    assert (target / "aaa-ok").read_bytes() == b"fine"
    lines = [line for line in run.lines if not line.startswith("snapvault: ")]
    _assert_case(case, lines, target / "sub", "sub")


@pytest.mark.parametrize("name", LS)
def test_ls(runs: Runs, world: World, name: str) -> None:
    """``ls`` reads trees only: a malformed or unsafe one stops it with one line naming where."""
    case = CASES[name]
    run = outcome(runs.results[f"ls {name}"])
    if case.kind == UNSAFE:
        assert_refused(run, case.says)
    elif case.kind == TREE:
        assert_refused(run, "sub", world.ids[name][:16])
    elif name.startswith("subtree-"):
        # The directory's own tree is missing or not a tree: ls stops there, naming its blob.
        assert_refused(run, "sub/d", "blob ")
        assert "/sub/d" in run.stdout
    else:
        assert_ok(run)
        assert "/sub" in run.stdout


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.check is not None])
def test_check(checked: dict[str, list[dict[str, Any]]], world: World, name: str) -> None:
    """``check --read-data`` reports exactly the cases the format calls damaged.

    Each damaged tree is reported once, under the first snapshot that reaches it: the case's
    own (its tree is ``sub``) or the one holding every case (its tree is the case's directory).
    """
    own = [p for p in checked.get(world.ids[name], []) if (p["path"] or "").startswith("sub")]
    shared = [p for p in checked.get(world.together, []) if (p["path"] or "").split("/")[0] == name]
    problems = own + shared
    if CASES[name].check:
        assert problems, f"check --read-data passed {name}"
        assert all(p["kind"] in ("tree", "data", "blob") for p in problems), problems
    else:
        assert not problems, problems


def test_snapshots_lists_every_case(runs: Runs, world: World) -> None:
    # Every manifest is well formed: damage inside the trees hides no snapshot.
    run = outcome(runs.results["snapshots"])
    assert_ok(run)
    assert sorted(s["id"] for s in run.json()) == sorted([*world.ids.values(), world.together])
