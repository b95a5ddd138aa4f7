"""Hostile index files and pack headers (docs/format.md, "Pack files", "Index files", "Limits").

An index file the format refuses leaves a reader no way to know where any blob it lists is:
every command that needs the index (``restore``, ``ls``) is refused with one line naming the
file, while ``check`` reports it and goes on, and ``snapshots`` (which needs no index) works.
Among the refusals: a few kilobytes that decompress to a gigabyte, with and without saying so,
sizes that lie, repeats, and a file over the format's stored limit. Memory stays bounded.

A pack header is read only by ``check --read-data`` (restores read the blob ranges the index
gives); every header the format refuses is reported naming its pack, and the blobs of those
packs still restore.
"""

from __future__ import annotations

import random
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.hostile.conftest import ALL_COMMANDS, Run, Watch, assert_ok, assert_refused, outcome, run_batch, snapvault
from tests.hostile.forge import (
    AD_INDEX,
    AD_PACK_HEADER,
    AD_SNAPSHOT,
    DATA,
    Entry,
    Forge,
    with_content_size,
    zstd_frame,
    zstd_zeros,
)
from tests.test_hostile import Scene, file_node

pytestmark = pytest.mark.commits_damage

MiB = 1 << 20
GOOD = b"the good file's bytes"


# -- index files ----------------------------------------------------------------------------


def _entries(f: Forge) -> tuple[bytes, list[Entry]]:
    """A pack of its own with one blob, for an index file to list."""
    return f.pack([f.blob(DATA, b"listed by a hostile index")])


def _plain(f: Forge, packs: list[tuple[bytes, list[Entry]]]) -> bytes:
    return f.index_plain(packs)


INDEX_CASES: dict[str, Callable[[Forge], str]] = {
    "sealed-with-foreign-key": lambda f: f.put("index", f.seal(zstd_frame(_plain(f, [])), AD_INDEX, key=bytes(32))),
    "sealed-as-snapshot": lambda f: f.put("index", f.seal(zstd_frame(_plain(f, [])), AD_SNAPSHOT)),
    "name-not-its-hash": lambda f: f.put("index", f.seal(zstd_frame(_plain(f, [])), AD_INDEX), name="ab" * 32),
    "empty-object": lambda f: f.put("index", b""),
    "not-zstd": lambda f: f.index(compressed=b"SVI1\0\0\0\0"),
    "size-not-declared": lambda f: f.index(compressed=zstd_frame(_plain(f, [_entries(f)]), content_size=False)),
    # A few kilobytes stored, a gigabyte when decompressed.
    "declares-1-gib": lambda f: f.index(compressed=zstd_zeros(1 << 30)),
    "declares-100-holds-1-gib": lambda f: f.index(compressed=with_content_size(zstd_zeros(1 << 30), 100)),
    "declares-more-than-it-holds": lambda f: f.index(
        compressed=with_content_size(zstd_frame(_plain(f, [_entries(f)])), 1000)
    ),
    "two-frames": lambda f: f.index(compressed=zstd_frame(_plain(f, [])) + zstd_frame(_plain(f, []))),
    "wrong-magic": lambda f: f.index(plain=b"SVI2" + _plain(f, [])[4:]),
    "pack-count-4-billion": lambda f: f.index(plain=b"SVI1" + struct.pack("<I", 2**32 - 1)),
    "entry-count-4-billion": lambda f: f.index(
        plain=b"SVI1" + struct.pack("<I", 1) + bytes(32) + struct.pack("<I", 2**32 - 1)
    ),
    "truncated-entry": lambda f: f.index(plain=_plain(f, [_entries(f)])[:-3]),
    "trailing-bytes": lambda f: f.index(plain=_plain(f, [_entries(f)]) + b"\0"),
    "pack-twice": lambda f: f.index(plain=_plain(f, [(p := _entries(f)), (p[0], [])])),
    "blob-twice": lambda f: f.index(plain=_plain(f, [(p := _entries(f)), (bytes(32), p[1])])),
    "blob-type-7": lambda f: f.index(
        plain=_plain(f, [(bytes(32), [Entry(7, bytes(32), 0, 100, 100)])]),
    ),
    # Over the stored limit (33 MiB), refused after reading one byte past it.
    "stored-34-mib": lambda f: f.put("index", random.Random(5).randbytes(34 * MiB)),
}


@dataclass(frozen=True)
class Base:
    root: Path
    repo: Path
    snapshot: str


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """A repository with one good snapshot; each index case adds one file to a copy of it."""
    root = tmp_path_factory.mktemp("index-base")
    repo = sv.Repository.init(str(root / "repo"), PASSWORD, kdf=FAST_KDF, random=random.Random(41).randbytes)
    f = Forge(repo, seed=41)
    sid = f.commit(f.tree([file_node("good", [f.data(GOOD)], size=len(GOOD))]))
    return Base(root, root / "repo", sid)


@pytest.fixture(scope="module")
def all_bad(base: Base, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One repository holding every hostile index file at once, for one ``check``."""
    root = tmp_path_factory.mktemp("index-all")
    shutil.copytree(base.repo, root / "repo")
    f = Forge(sv.Repository.open(str(root / "repo"), PASSWORD), seed=43)
    return root, {name: make(f) for name, make in INDEX_CASES.items()}


@dataclass(frozen=True)
class Sandbox:
    """One case's copy of the repository, its restore target and the watch on everything else."""

    root: Path
    key: str
    scene: Scene
    watch: Watch
    runs: dict[str, Run | AssertionError]


@pytest.fixture(scope="module")
def index_runs(
    base: Base, all_bad: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Sandbox]:
    """Each hostile index file in its own copy of the repository, and all of them in one more
    (``all``: ``check`` and ``snapshots``); the commands run side by side."""
    root, _ = all_bad
    boxes = {"all": Sandbox(root, "", Scene(root), Watch([root]), {})}
    jobs = {
        "all check": (("-r", str(root / "repo"), "check", "--read-data", "--json"), root),
        "all snapshots": (("-r", str(root / "repo"), "snapshots"), root),
    }
    for name, make in INDEX_CASES.items():
        root = tmp_path_factory.mktemp(f"index-{name}")
        shutil.copytree(base.repo, root / "repo")
        key = make(Forge(sv.Repository.open(str(root / "repo"), PASSWORD), seed=47))
        scene = Scene(root)
        boxes[name] = Sandbox(root, key, scene, Watch([root], target=scene.target), {})
        repo = str(root / "repo")
        jobs[f"{name} restore"] = (("-r", repo, "restore", base.snapshot, "--target", str(scene.target)), root)
        if ALL_COMMANDS:
            jobs[f"{name} ls"] = (("-r", repo, "ls", base.snapshot), root)
            jobs[f"{name} snapshots"] = (("-r", repo, "snapshots", "--json"), root)
    for job, result in run_batch(jobs).items():
        name, command = job.rsplit(" ", 1)
        boxes[name].runs[command] = result
    return boxes


@pytest.mark.parametrize("name", list(INDEX_CASES))
def test_index_file(index_runs: dict[str, Sandbox], base: Base, name: str) -> None:
    """One hostile index file: a restore is refused with one line naming it, nothing written."""
    box = index_runs[name]
    box.watch.check()
    box.scene.assert_confined()
    short = box.key.rsplit("/", 1)[1][:16]
    assert_refused(outcome(box.runs["restore"]), short)
    assert list(box.scene.target.iterdir()) == []
    if ALL_COMMANDS:
        assert_refused(outcome(box.runs["ls"]), short)
        snaps = outcome(box.runs["snapshots"])
        assert_ok(snaps)
        assert [s["id"] for s in snaps.json()] == [base.snapshot]


def test_check_reports_every_hostile_index_and_goes_on(
    index_runs: dict[str, Sandbox], all_bad: tuple[Path, dict[str, str]], base: Base
) -> None:
    _, keys = all_bad
    index_runs["all"].watch.check()
    run = outcome(index_runs["all"].runs["check"])
    assert run.code == 1, run
    problems = run.json()["problems"]
    reported = {p["key"] for p in problems if p["kind"] == "index"}
    assert reported == set(keys.values()), problems
    # The good snapshot's manifest is read; its trees are as unreadable as a restore finds them
    # (the repository's index cannot be loaded), and each such problem names the index file.
    assert run.json()["snapshots"] == 1
    for p in problems:
        assert p["kind"] == "index" or any(key in p["message"] for key in keys.values()), p
    # Every stderr line is one problem, and says which file.
    assert len([line for line in run.lines if line.startswith("error: index: ")]) == len(keys), run


def test_snapshots_needs_no_index(index_runs: dict[str, Sandbox], base: Base) -> None:
    run = outcome(index_runs["all"].runs["snapshots"])
    assert_ok(run)
    assert base.snapshot[:8] in run.stdout


def test_five_hundred_index_files(base: Base, tmp_path: Path) -> None:
    """Many small index files (each legal) cost time in proportion, and no more."""
    shutil.copytree(base.repo, tmp_path / "repo")
    f = Forge(sv.Repository.open(str(tmp_path / "repo"), PASSWORD), seed=53)
    for i in range(500):
        f.index([(blake3.blake3(b"%d" % i).digest(), [Entry(DATA, blake3.blake3(b"b%d" % i).digest(), 0, 64, 19)])])
    scene = Scene(tmp_path)
    run = snapvault("-r", str(tmp_path / "repo"), "restore", base.snapshot, "--target", str(scene.target), cwd=tmp_path)
    assert_ok(run)
    assert (scene.target / "good").read_bytes() == GOOD


def test_a_blob_in_two_index_files(base: Base, tmp_path: Path) -> None:
    """Two writers stored one blob in two packs: either copy may be used, both are good."""
    shutil.copytree(base.repo, tmp_path / "repo")
    f = Forge(sv.Repository.open(str(tmp_path / "repo"), PASSWORD), seed=59)
    blob = f.blob(DATA, b"stored twice")
    for _ in range(2):
        f.index([f.pack([blob])])
    sid = f.commit(f.tree([file_node("twice", [blob.hex], size=12)]))
    scene = Scene(tmp_path)
    run = snapvault("-r", str(tmp_path / "repo"), "restore", sid, "--target", str(scene.target), cwd=tmp_path)
    assert_ok(run)
    assert (scene.target / "twice").read_bytes() == b"stored twice"
    assert_ok(snapvault("-r", str(tmp_path / "repo"), "check", "--read-data", cwd=tmp_path))


# -- pack headers ---------------------------------------------------------------------------


def _header(f: Forge, entries: list[Entry], version: int = 1, count: int | None = None) -> bytes:
    n = len(entries) if count is None else count
    return struct.pack("<BI", version, n) + b"".join(e.pack() for e in entries)


def _shifted(entries: list[Entry], **change: int) -> list[Entry]:
    e = entries[0]
    fields = {"type": e.type, "id": e.id, "offset": e.offset, "length": e.length, "raw_length": e.raw_length}
    fields.update(change)
    return [Entry(**fields), *entries[1:]]


def _listed(f: Forge, blobs: list[Any]) -> list[Entry]:
    out, offset = [], 0
    for b in blobs:
        out.append(Entry(b.type, b.id, offset, len(b.sealed), b.raw_length))
        offset += len(b.sealed)
    return out


# Each makes a pack of ``blobs`` whose header or trailer is hostile; the blobs are intact.
PACK_CASES: dict[str, Callable[[Forge, list[Any]], bytes]] = {
    "trailer-magic": lambda f, b: f.pack(b, trailer=struct.pack("<I", 100) + b"SVP2")[0],
    "header-length-zero": lambda f, b: f.pack(b, trailer=struct.pack("<I", 0) + b"SVP1")[0],
    "header-length-past-pack": lambda f, b: f.pack(b, trailer=struct.pack("<I", 10 * MiB) + b"SVP1")[0],
    "header-length-4-gib": lambda f, b: f.pack(b, trailer=struct.pack("<I", 2**32 - 1) + b"SVP1")[0],
    "header-over-16-mib": lambda f, b: f.pack(
        b, header=random.Random(7).randbytes(16 * MiB + 1), trailer=struct.pack("<I", 16 * MiB + 1) + b"SVP1"
    )[0],
    "header-sealed-as-index": lambda f, b: f.pack(b, header=f.seal(_header(f, _listed(f, b)), AD_INDEX))[0],
    "header-foreign-key": lambda f, b: f.pack(
        b, header=f.seal(_header(f, _listed(f, b)), AD_PACK_HEADER, key=bytes(32))
    )[0],
    "header-version-2": lambda f, b: f.pack(b, header_plain=_header(f, _listed(f, b), version=2))[0],
    "header-count-4-billion": lambda f, b: f.pack(b, header_plain=_header(f, _listed(f, b), count=2**32 - 1))[0],
    "header-truncated": lambda f, b: f.pack(b, header_plain=_header(f, _listed(f, b))[:-1])[0],
    "entries-out-of-order": lambda f, b: f.pack(b, entries=_listed(f, b)[::-1])[0],
    "entries-overlap": lambda f, b: f.pack(b, entries=[_listed(f, b)[0], _shifted(_listed(f, b)[1:], offset=1)[0]])[0],
    "entry-shorter-than-a-blob": lambda f, b: f.pack(b, entries=_shifted(_listed(f, b), length=10))[0],
    "entry-into-header": lambda f, b: f.pack(b, entries=_shifted(_listed(f, b), length=10 * MiB))[0],
    "entry-type-7": lambda f, b: f.pack(b, entries=_shifted(_listed(f, b), type=7))[0],
    "header-disagrees-with-index": lambda f, b: f.pack(b, entries=_shifted(_listed(f, b), raw_length=1, id=bytes(32)))[
        0
    ],
}


@dataclass(frozen=True)
class Packs:
    root: Path
    repo: Path
    snapshot: str
    packs: dict[str, str]


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Packs:
    """Every hostile pack in one repository, indexed truthfully, each holding two files' blobs."""
    root = tmp_path_factory.mktemp("packs")
    repo = sv.Repository.init(str(root / "repo"), PASSWORD, kdf=FAST_KDF, random=random.Random(61).randbytes)
    f = Forge(repo, seed=61)
    nodes, ids = [], {}
    for name in [*PACK_CASES, "name-not-its-hash"]:
        plain = [f"{name} {i}".encode() for i in range(2)]
        blobs = [f.blob(DATA, p) for p in plain]
        if name == "name-not-its-hash":
            pid, _ = f.pack(blobs)
            old = f.root / "data" / pid.hex()[:2] / pid.hex()
            pid = bytes(reversed(pid))
            new = f.root / "data" / pid.hex()[:2] / pid.hex()
            new.parent.mkdir(exist_ok=True)
            old.rename(new)
        else:
            pid = PACK_CASES[name](f, blobs)
        f.index([(pid, _listed(f, blobs))])
        ids[name] = pid.hex()
        nodes += [
            file_node(f"{name}-{i}", [b.hex], size=len(p)) for i, (b, p) in enumerate(zip(blobs, plain, strict=True))
        ]
    sid = f.commit(f.tree(sorted(nodes, key=lambda n: n["name"])))
    return Packs(root, root / "repo", sid, ids)


@pytest.fixture(scope="module")
def pack_runs(packs: Packs, tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """``check --read-data``, ``check`` and a restore of the hostile packs, side by side."""
    place = tmp_path_factory.mktemp("packs-restore")
    scene = Scene(place)
    box = Sandbox(place, "", scene, Watch([packs.root, place], target=scene.target), {})
    repo = str(packs.repo)
    jobs = {
        "check --read-data": (("-r", repo, "check", "--read-data", "--json"), packs.root),
        "check": (("-r", repo, "check"), packs.root),
        "restore": (("-r", repo, "restore", packs.snapshot, "--target", str(scene.target)), place),
    }
    box.runs.update(run_batch(jobs))
    return box


@pytest.fixture(scope="module")
def pack_problems(pack_runs: Sandbox) -> list[dict[str, Any]]:
    run = outcome(pack_runs.runs["check --read-data"])
    assert run.code == 1, run
    return list(run.json()["problems"])


@pytest.mark.parametrize("name", [*PACK_CASES, "name-not-its-hash"])
def test_pack_header(pack_problems: list[dict[str, Any]], packs: Packs, name: str) -> None:
    mine = [p for p in pack_problems if p["pack"] == packs.packs[name]]
    assert mine, f"check --read-data passed the pack of {name}"
    assert all(p["kind"] in ("pack", "blob") for p in mine), mine


def test_check_without_read_data_reads_no_header(pack_runs: Sandbox) -> None:
    # Structure alone: the index is truthful and every pack is as long as it says.
    assert_ok(outcome(pack_runs.runs["check"]))


def test_restore_reads_blobs_not_headers(pack_runs: Sandbox, packs: Packs) -> None:
    pack_runs.watch.check()
    pack_runs.scene.assert_confined()
    assert_ok(outcome(pack_runs.runs["restore"]))
    for name in packs.packs:
        assert (pack_runs.scene.target / f"{name}-1").read_bytes() == f"{name} 1".encode()


def test_check_read_data_of_a_300_mib_pack(tmp_path: Path) -> None:
    """A pack far over ``pack_size`` (only a hostile writer makes one), its one blob at the end
    of 300 MiB that are a hole in the file."""
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, random=random.Random(67).randbytes)
    f = Forge(repo, seed=67)
    blob = f.blob(DATA, GOOD)
    hole = 300 * MiB
    entry = Entry(DATA, blob.id, hole, len(blob.sealed), len(GOOD))
    header = f.seal(struct.pack("<BI", 1, 1) + entry.pack(), AD_PACK_HEADER)
    tail = blob.sealed + header + struct.pack("<I", len(header)) + b"SVP1"
    digest = blake3.blake3(bytes(hole))
    digest.update(tail)
    name = digest.hexdigest()
    path = f.root / "data" / name[:2] / name
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fh:
        fh.seek(hole)
        fh.write(tail)
    f.index([(digest.digest(), [entry])])
    f.commit(f.tree([file_node("good", [blob.hex], size=len(GOOD))]))
    scene = Scene(tmp_path)
    assert_ok(snapvault("-r", str(tmp_path / "repo"), "restore", "latest", "--target", str(scene.target), cwd=tmp_path))
    assert (scene.target / "good").read_bytes() == GOOD
    run = snapvault("-r", str(tmp_path / "repo"), "check", "--read-data", cwd=tmp_path)
    assert_ok(run)
