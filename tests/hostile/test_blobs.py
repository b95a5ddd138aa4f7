"""Blobs that lie (docs/format.md, "Blobs", "Pack files", "Index files", "Limits"), through the CLI.

Each case is a directory of a snapshot whose file (or subdirectory) uses one hand-made blob:
a codec frame the format refuses, a zstd frame whose declared size is not the index's
``raw_length`` or that holds far more than it declares, sizes over a type's bound, a blob
sealed for another type or ID or key, or stored where the index does not point. The format
makes each such blob unreadable, and so the file (or directory) using it damaged: the restore
lists it, writes nothing under its name, restores the rest and exits 1; ``check --read-data``
reports it. Memory stays bounded though the frames declare or hold up to 4 GiB.

A legal blob of the largest size, all zeros (a few kilobytes stored), referenced many times by
one file, is restored within the same memory bound.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.hostile.conftest import ALL_COMMANDS, Run, Runs, Sandbox, Watch, assert_ok, outcome, run_batch
from tests.hostile.forge import DATA, TREE, Blob, Entry, Forge, tree_bytes, with_content_size, zstd_frame, zstd_zeros
from tests.test_hostile import PWNED, Scene, dir_node, file_node

pytestmark = pytest.mark.commits_damage

MiB = 1 << 20
#: The format's bounds on a blob's plaintext, by type ("Limits").
MAX_DATA, MAX_TREE = 16 * MiB, 32 * MiB
FOREIGN_KEY = bytes(range(32))


def zeros_id(f: Forge, size: int) -> bytes:
    """The keyed ID of ``size`` zero bytes, hashed in steps (never held at once)."""
    hasher = blake3.blake3(key=f.id_key)
    step = bytes(8 * MiB)
    left = size
    while left:
        n = min(left, len(step))
        hasher.update(step[:n])
        left -= n
    return hasher.digest()


def one_file(f: Forge, blob: Blob, size: int | None = None) -> list[dict[str, Any]]:
    """The case directory: a file ``f`` made of ``blob``, and a good file ``g``."""
    size = blob.raw_length if size is None else size
    return [file_node("f", [f.add(blob)], size=size), file_node("g", [f.data(b"good")], size=4)]


def own_pack(f: Forge, blob: Blob, size: int, **entry: int) -> list[dict[str, Any]]:
    """``blob`` alone in a pack, indexed with the entry fields given changed."""
    pid, [e] = f.pack([blob])
    fields = {"type": e.type, "id": e.id, "offset": e.offset, "length": e.length, "raw_length": e.raw_length}
    fields.update(entry)
    f.index([(pid, [Entry(**fields)])])
    return [file_node("f", [blob.hex], size=size), file_node("g", [f.data(b"good")], size=4)]


def missing_pack(f: Forge, p: bytes) -> list[dict[str, Any]]:
    blob = f.blob(DATA, p)
    f.index([(bytes(32), [Entry(DATA, blob.id, 0, len(blob.sealed), len(p))])])
    return [file_node("f", [blob.hex], size=len(p)), file_node("g", [f.data(b"good")], size=4)]


def truncated_pack(f: Forge, p: bytes) -> list[dict[str, Any]]:
    blob = f.blob(DATA, p * 100)
    pid, entries = f.pack([blob])
    path = f.root / "data" / pid.hex()[:2] / pid.hex()
    path.write_bytes(path.read_bytes()[: len(blob.sealed) // 2])
    f.index([(pid, entries)])
    return [file_node("f", [blob.hex], size=100 * len(p)), file_node("g", [f.data(b"good")], size=4)]


def flipped(f: Forge, p: bytes) -> Blob:
    b = f.blob(DATA, p)
    sealed = bytearray(b.sealed)
    sealed[40] ^= 1
    return Blob(b.type, b.id, bytes(sealed), b.raw_length)


def foreign(f: Forge, p: bytes) -> Blob:
    bid = f.blob_id(p)
    return Blob(DATA, bid, f.seal(b"\x00" + p, bytes([DATA]) + bid, key=FOREIGN_KEY), len(p))


def one_dir(f: Forge, blob: Blob) -> list[dict[str, Any]]:
    """The case directory: a subdirectory ``d`` whose tree is ``blob``, and a good file ``g``."""
    return [dir_node("d", f.add(blob)), file_node("g", [f.data(b"good")], size=4)]


def small_tree(p: bytes) -> bytes:
    """A legal tree of its own for each case: one FIFO named after it."""
    return tree_bytes([{"links": 1, "name": p.decode(), "type": "fifo"}])


def padded_tree(size: int) -> bytes:
    """A legal tree of ``size`` bytes: one FIFO with an unknown key (ignored) padding it out."""
    head = tree_bytes([{"links": 1, "name": "p", "pad": "", "type": "fifo"}])
    return head.replace(b'"pad":""', b'"pad":"' + b"x" * (size - len(head)) + b'"')


def nested_tree(depth: int) -> bytes:
    return tree_bytes([{"links": 1, "name": "p", "pad": "@", "type": "fifo"}]).replace(
        b'"@"', b"[" * depth + b"]" * depth
    )


@dataclass(frozen=True)
class Case:
    build: Callable[[Forge, bytes], list[dict[str, Any]]]
    #: Entries of the case directory the restore lists as damaged (none: it is restored).
    damaged: tuple[str, ...] = ("f",)
    #: Packs ``check`` may name instead of a blob (a pack that is not there).
    packs: tuple[str, ...] = ()
    xfail: str | None = None


CASES: dict[str, Case] = {
    # -- codec frames ----------------------------------------------------------------------
    "frame-unknown-codec": Case(lambda f, p: one_file(f, f.blob(DATA, p, frame=b"\x07" + p))),
    "frame-empty": Case(lambda f, p: one_file(f, f.blob(DATA, p, frame=b""))),
    "frame-raw-longer-than-raw-length": Case(lambda f, p: one_file(f, f.blob(DATA, p, frame=b"\x00" + p * 9))),
    "zstd-size-not-declared": Case(
        lambda f, p: one_file(f, f.blob(DATA, p, frame=b"\x01" + zstd_frame(p, content_size=False)))
    ),
    "zstd-declares-4-gib": Case(
        lambda f, p: one_file(f, f.blob(DATA, p, frame=b"\x01" + with_content_size(zstd_frame(p), 4 << 30)))
    ),
    "zstd-declares-less": Case(
        lambda f, p: one_file(f, f.blob(DATA, p, frame=b"\x01" + with_content_size(zstd_frame(p), 10)))
    ),
    "zstd-garbage": Case(
        lambda f, p: one_file(f, f.blob(DATA, p, frame=b"\x01\x28\xb5\x2f\xfd" + random.Random(3).randbytes(200)))
    ),
    # A bomb: the frame says (and the index says) 29 bytes, and holds 512 MiB of zeros.
    "zstd-holds-512-mib": Case(
        lambda f, p: one_file(f, f.blob(DATA, p, frame=b"\x01" + with_content_size(zstd_zeros(512 * MiB), len(p))))
    ),
    # Honest about its 300 MiB, all of it, which is over the bound of a data blob.
    "zstd-300-mib-honest": Case(
        lambda f, p: one_file(
            f,
            f.blob(DATA, b"", bid=zeros_id(f, 300 * MiB), frame=b"\x01" + zstd_zeros(300 * MiB), raw_length=300 * MiB),
            size=300 * MiB,
        )
    ),
    # -- sizes the index gives -------------------------------------------------------------
    "raw-length-4-gib": Case(lambda f, p: one_file(f, f.blob(DATA, p, raw_length=2**32 - 1))),
    "raw-length-over-data-bound": Case(lambda f, p: one_file(f, f.blob(DATA, p, raw_length=MAX_DATA + 1))),
    "raw-length-smaller": Case(lambda f, p: one_file(f, f.blob(DATA, p, raw_length=5))),
    "raw-length-zero": Case(lambda f, p: one_file(f, f.blob(DATA, p, raw_length=0))),
    "length-4-gib": Case(lambda f, p: own_pack(f, f.blob(DATA, p), len(p), length=2**32 - 1)),
    "length-too-short": Case(lambda f, p: own_pack(f, f.blob(DATA, p), len(p), length=10)),
    "offset-past-pack-end": Case(lambda f, p: own_pack(f, f.blob(DATA, p), len(p), offset=2**31)),
    "offset-into-header": Case(lambda f, p: own_pack(f, f.blob(DATA, p), len(p), offset=20)),
    "index-says-tree": Case(lambda f, p: own_pack(f, f.blob(DATA, p), len(p), type=TREE)),
    # -- what the blob is sealed as --------------------------------------------------------
    "id-of-other-content": Case(lambda f, p: one_file(f, f.blob(DATA, p, bid=f.blob_id(b"other")))),
    "sealed-as-tree": Case(lambda f, p: one_file(f, f.blob(DATA, p, ad_type=TREE))),
    "sealed-with-foreign-key": Case(lambda f, p: one_file(f, foreign(f, p))),
    "ciphertext-altered": Case(lambda f, p: one_file(f, flipped(f, p))),
    "pack-missing": Case(missing_pack, packs=("00" * 32,)),
    "pack-truncated": Case(truncated_pack),
    # -- tree blobs ------------------------------------------------------------------------
    "tree-raw-length-over-bound": Case(
        lambda f, p: one_dir(f, f.blob(TREE, small_tree(p), raw_length=MAX_TREE + 1)), damaged=("d",)
    ),
    "tree-over-bound-honest": Case(
        lambda f, p: one_dir(f, f.blob(TREE, (t := padded_tree(MAX_TREE + 1)), frame=b"\x01" + zstd_frame(t))),
        damaged=("d",),
    ),
    "tree-bomb-512-mib": Case(
        lambda f, p: one_dir(
            f, f.blob(TREE, small_tree(p), frame=b"\x01" + with_content_size(zstd_zeros(512 * MiB), len(small_tree(p))))
        ),
        damaged=("d",),
    ),
    "tree-json-nested-100000": Case(
        lambda f, p: one_dir(f, f.blob(TREE, (t := nested_tree(100_000)), frame=b"\x01" + zstd_frame(t))),
        damaged=("d",),
    ),
    "tree-sealed-as-data": Case(lambda f, p: one_dir(f, f.blob(TREE, small_tree(p), ad_type=DATA)), damaged=("d",)),
    # Legal: a tree of exactly the bound (an unknown key pads it), restored within memory.
    "tree-at-bound": Case(
        lambda f, p: one_dir(f, f.blob(TREE, (t := padded_tree(MAX_TREE)), frame=b"\x01" + zstd_frame(t))), damaged=()
    ),
    # Legal: a data blob of exactly the bound, all zeros.
    "data-at-bound": Case(
        lambda f, p: one_file(
            f,
            f.blob(DATA, b"", bid=zeros_id(f, MAX_DATA), frame=b"\x01" + zstd_zeros(MAX_DATA), raw_length=MAX_DATA),
            size=MAX_DATA,
        ),
        damaged=(),
    ),
}

#: The legal big blob: 16 MiB of zeros, referenced this many times by one file.
REFERENCES = 64 if ALL_COMMANDS else 16


@dataclass(frozen=True)
class World:
    root: Path
    repo: Path
    ids: dict[str, str]
    together: str
    big: str
    blobs: dict[str, set[str]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("blobs")
    rng = random.Random(29)
    repo = sv.Repository.init(str(root / "repo"), PASSWORD, kdf=FAST_KDF, random=rng.randbytes)
    f = Forge(repo, seed=29)
    ok = file_node("aaa-ok", [f.data(b"fine")], size=4)
    trees, blobs = {}, {}
    for name, case in CASES.items():
        nodes = case.build(f, PWNED + name.encode())
        blobs[name] = {c for n in nodes for c in [*n.get("content", []), n.get("subtree")] if c}
        trees[name] = f.tree(nodes)
    roots = {name: f.tree([ok, dir_node("sub", tree)]) for name, tree in trees.items()}
    roots["together"] = f.tree([ok, *(dir_node(name, tree) for name, tree in trees.items())])
    big = f.blob(DATA, b"", bid=zeros_id(f, MAX_DATA), frame=b"\x01" + zstd_zeros(MAX_DATA), raw_length=MAX_DATA)
    roots["big"] = f.tree([file_node("big", [f.add(big)] * REFERENCES, size=REFERENCES * MAX_DATA)])
    f.flush()
    ids = {name: f.manifest(tree, tags=[name]) for name, tree in roots.items()}
    return World(root, root / "repo", ids, ids.pop("together"), ids.pop("big"), blobs)


@pytest.fixture(scope="module")
def runs(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Every command of this module, side by side: the restore of the snapshot of every case,
    of the big file (and of each case alone, in the long run), ``ls``, ``check --read-data``."""
    repo = str(world.repo)
    jobs: dict[str, tuple[tuple[str, ...], Path]] = {}
    boxes: dict[str, Sandbox] = {}
    restores = {"together": world.together, "big": world.big}
    if ALL_COMMANDS:
        restores.update({f"alone {name}": world.ids[name] for name in CASES})
    for label, sid in restores.items():
        place = tmp_path_factory.mktemp(label)
        scene = Scene(place)
        boxes[label] = Sandbox(scene, Watch([place], target=scene.target))
        jobs[label] = (("-r", repo, "restore", sid, "--target", str(scene.target)), place)
    jobs["check"] = (("-r", repo, "check", "--read-data", "--json"), world.root)
    jobs["ls big"] = (("-r", repo, "ls", world.big, "--long"), world.root)
    watch = Watch([world.root])
    yield Runs(run_batch(jobs), boxes, watch)
    shutil.rmtree(boxes["big"].scene.target)  # 256 MiB


@pytest.fixture(scope="module")
def restored(runs: Runs) -> tuple[Run, Path]:
    box = runs.boxes["together"]
    box.watch.check()
    box.scene.assert_confined()
    run = outcome(runs.results["together"])
    assert run.code == 1, run
    assert run.fatal == [run.lines[-1]], run
    assert (box.scene.target / "aaa-ok").read_bytes() == b"fine", run
    return run, box.scene.target


@pytest.fixture(scope="module")
def checked(runs: Runs) -> list[dict[str, Any]]:
    run = outcome(runs.results["check"])
    assert run.code == 1, run
    return list(run.json()["problems"])


def test_no_command_changed_the_repository(runs: Runs) -> None:
    runs.repo.check()


def _params() -> list[Any]:
    return [
        pytest.param(n, id=n, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for n, c in CASES.items()
    ]


def _assert_case(case: Case, lines: list[str], where: Path, prefix: str) -> None:
    errors = sorted(line for line in lines if line.startswith("error: "))
    assert [line.split(": ", 2)[1] for line in errors] == [f"{prefix}/{d}" for d in case.damaged], lines
    for name in case.damaged:
        assert not (where / name).exists(), f"a damaged entry appeared: {name}"
    assert (where / "g").read_bytes() == b"good"


@pytest.mark.parametrize("name", _params())
def test_blob(restored: tuple[Run, Path], name: str) -> None:
    run, target = restored
    lines = [line for line in run.lines if line.startswith((f"error: {name}/", f"error: {name}: "))]
    _assert_case(CASES[name], lines, target / name, name)


@pytest.mark.parametrize("name", _params())
def test_check_reads_every_blob(checked: list[dict[str, Any]], world: World, name: str) -> None:
    mine = [
        p
        for p in checked
        if p["blob"] in world.blobs[name] or p["pack"] in CASES[name].packs or (p["path"] or "").split("/")[0] == name
    ]
    if CASES[name].damaged:
        assert mine, f"check --read-data passed {name}"
    else:
        assert not mine, mine


@pytest.mark.skipif(not ALL_COMMANDS, reason="the long run restores every case on its own")
@pytest.mark.parametrize("name", _params())
def test_blob_alone(runs: Runs, name: str) -> None:
    box = runs.boxes[f"alone {name}"]
    box.watch.check()
    box.scene.assert_confined()
    run = outcome(runs.results[f"alone {name}"])
    lines = [line for line in run.lines if not line.startswith("snapvault: ")]
    if CASES[name].damaged:
        assert run.code == 1, run
    else:
        assert_ok(run)
    _assert_case(CASES[name], lines, box.scene.target / "sub", "sub")


def test_one_big_blob_many_times_in_one_file(runs: Runs) -> None:
    """16 MiB of zeros (a legal blob, a few kilobytes stored), 16 times in one 256 MiB file."""
    box = runs.boxes["big"]
    box.watch.check()
    box.scene.assert_confined()
    assert_ok(outcome(runs.results["big"]))
    big = box.scene.target / "big"
    assert big.stat().st_size == REFERENCES * MAX_DATA
    with open(big, "rb") as fh:
        while chunk := fh.read(8 * MiB):
            assert not chunk.strip(b"\0"), "the restored file is not all zeros"


def test_ls_of_the_big_file(runs: Runs) -> None:
    run = outcome(runs.results["ls big"])
    assert_ok(run)
    assert f"{REFERENCES * MAX_DATA:>12}" in run.stdout
