"""Trees as a whole (docs/format.md, "Trees", "Limits"), through the CLI.

- A root tree the format refuses (not JSON, another version, a data blob, missing): there is
  nothing to restore, so ``restore`` and ``ls`` are refused with one line; ``check`` reports it.
- Depth: a chain of 5,000 directories, past the limit of 4,096 levels. The restore makes the
  4,095 directories within the limit and lists the one whose tree lies past it; ``ls`` stops
  there and ``check`` reports it, each naming that directory; no reader recurses per level.
- Sharing: 64 levels of two directories that share one subtree, 2^64 paths from 65 tree blobs.
  ``check`` reads each tree once.
- Size: a legal tree at the 32 MiB bound, of the smallest nodes (780,000 entries).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.hostile.conftest import (
    ALL_COMMANDS,
    Runs,
    Sandbox,
    Watch,
    assert_ok,
    assert_refused,
    outcome,
    remove_deep,
    run_batch,
    snapvault,
)
from tests.hostile.forge import DATA, TREE, Forge, canonical, tree_bytes, zstd_frame
from tests.test_hostile import Scene, dir_node, file_node

pytestmark = pytest.mark.commits_damage

MAX_DEPTH = 4096
DEEP = 5000


def _root_cases(f: Forge) -> dict[str, str]:
    """Snapshots whose root tree is refused, by the tree ID their manifest names."""
    return {
        "root-not-json": f.tree(b"\xff\xfe not json"),
        "root-version-2": f.tree(b'{"nodes":[],"v":2}'),
        "root-no-version": f.tree(b'{"nodes":[]}'),
        "root-nodes-not-a-list": f.tree(b'{"nodes":{"name":"a","type":"fifo"},"v":1}'),
        "root-a-list": f.tree(b"[]"),
        "root-is-a-data-blob": f.data(b'{"nodes":[],"v":1}'),
        "root-not-indexed": "ef" * 32,
        "root-not-hex": "z" * 64,
        "root-sealed-as-data": f.add(
            f.blob(TREE, tree_bytes([{"links": 1, "name": "x", "type": "fifo"}]), ad_type=DATA)
        ),
    }


@dataclass(frozen=True)
class World:
    root: Path
    repo: Path
    ids: dict[str, str]
    deep: str
    shared: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("trees")
    repo = sv.Repository.init(str(root / "repo"), PASSWORD, kdf=FAST_KDF, random=random.Random(71).randbytes)
    f = Forge(repo, seed=71)
    roots = _root_cases(f)

    tid = f.tree([file_node("f", [f.data(b"at the bottom")], size=13)])
    for _ in range(DEEP):
        tid = f.tree([dir_node("d", tid)])
    roots["deep"] = tid

    tid = f.tree([file_node("leaf", [f.data(b"leaf")], size=4)])
    for _ in range(64):
        tid = f.tree([dir_node("a", tid), dir_node("b", tid)])
    roots["shared"] = tid

    f.flush()
    ids = {name: f.manifest(tree) for name, tree in roots.items()}
    return World(root, root / "repo", ids, ids.pop("deep"), ids.pop("shared"))


@pytest.fixture(scope="module")
def runs(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Every command of this module, side by side: a restore of each snapshot, ``ls`` of the
    deep one (of every one, in the long run), ``check`` and ``snapshots``."""
    repo = str(world.repo)
    jobs: dict[str, tuple[tuple[str, ...], Path]] = {}
    boxes: dict[str, Sandbox] = {}
    for name, sid in [*world.ids.items(), ("deep", world.deep)]:
        place = tmp_path_factory.mktemp(name)
        scene = Scene(place)
        boxes[name] = Sandbox(scene, Watch([place], target=scene.target))
        jobs[f"restore {name}"] = (("-r", repo, "restore", sid, "--target", str(scene.target)), place)
        if ALL_COMMANDS or name == "deep":
            jobs[f"ls {name}"] = (("-r", repo, "ls", sid), world.root)
    jobs["check"] = (("-r", repo, "check", "--json"), world.root)
    jobs["snapshots"] = (("-r", repo, "snapshots", "--json"), world.root)
    watch = Watch([world.root])
    yield Runs(run_batch(jobs), boxes, watch)
    # Deeper than shutil.rmtree (and so pytest's clean-up) can recurse.
    remove_deep(boxes["deep"].scene.target)


@pytest.fixture(scope="module")
def checked(runs: Runs) -> list[dict[str, Any]]:
    run = outcome(runs.results["check"])
    assert run.code == 1, run
    return list(run.json()["problems"])


def test_no_command_changed_the_repository(runs: Runs) -> None:
    runs.repo.check()


ROOT_CASES = [
    "root-not-json",
    "root-version-2",
    "root-no-version",
    "root-nodes-not-a-list",
    "root-a-list",
    "root-is-a-data-blob",
    "root-not-indexed",
    "root-not-hex",
    "root-sealed-as-data",
]


@pytest.mark.parametrize("name", ROOT_CASES)
def test_root_tree(runs: Runs, world: World, checked: list[dict[str, Any]], name: str) -> None:
    box = runs.boxes[name]
    box.watch.check()
    box.scene.assert_confined()
    assert_refused(outcome(runs.results[f"restore {name}"]), "tree", "blob")
    assert list(box.scene.target.iterdir()) == []
    if ALL_COMMANDS:
        assert_refused(outcome(runs.results[f"ls {name}"]), "tree", "blob")
    assert [p for p in checked if p["snapshot"] == world.ids[name] and p["kind"] == "tree"], checked


def _depth(target: Path) -> int:
    """How many directories ``d`` nest under ``target`` (paths past PATH_MAX: by descriptor)."""
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    depth = 0
    try:
        while True:
            try:
                child = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                return depth
            os.close(fd)
            fd, depth = child, depth + 1
    finally:
        os.close(fd)


def test_deep_tree_restore(runs: Runs) -> None:
    box = runs.boxes["deep"]
    box.watch.check()
    box.scene.assert_confined()
    run = outcome(runs.results["restore deep"])
    too_deep = "/".join(["d"] * MAX_DEPTH)
    assert run.code == 1, run
    assert run.lines[0].startswith(f"error: {too_deep}: directory cannot be read: "), run.stderr[-300:]
    assert "4096 levels" in run.lines[0]
    assert len(run.lines) == 2, run
    assert run.fatal == [run.lines[1]], run
    assert _depth(box.scene.target) == MAX_DEPTH - 1


def test_deep_tree_ls(runs: Runs) -> None:
    run = outcome(runs.results["ls deep"])
    assert_refused(run, "/".join(["d"] * MAX_DEPTH) + " is nested deeper")
    # Listed down to the limit: the directory itself, then the error.
    assert run.stdout.splitlines()[-1] == "/" + "/".join(["d"] * MAX_DEPTH)


def test_deep_tree_check(world: World, checked: list[dict[str, Any]]) -> None:
    mine = [p for p in checked if p["snapshot"] == world.deep]
    assert [(p["kind"], p["path"]) for p in mine] == [("tree", "/".join(["d"] * MAX_DEPTH))], mine


def test_shared_subtrees_check_reads_each_tree_once(world: World, checked: list[dict[str, Any]]) -> None:
    """2^64 paths, 65 trees: check is bounded by the trees, not the paths."""
    assert not [p for p in checked if p["snapshot"] == world.shared], checked


def test_snapshots_lists_every_one(runs: Runs) -> None:
    run = outcome(runs.results["snapshots"])
    assert_ok(run)
    assert len(run.json()) == len(ROOT_CASES) + 2


def test_a_tree_at_the_bound_of_the_smallest_nodes(tmp_path: Path) -> None:
    """780,000 FIFOs in one 32 MiB tree: check and ls walk it a node at a time, under the bound."""
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, random=random.Random(73).randbytes)
    f = Forge(repo, seed=73)
    node = canonical({"links": 1, "name": "0000000", "type": "fifo"})
    count = ((32 << 20) - len(b'{"nodes":[],"v":1}')) // (len(node) + 1)
    raw = b'{"nodes":[' + b",".join(node.replace(b"0000000", b"%07d" % i) for i in range(count)) + b'],"v":1}'
    assert len(raw) <= 32 << 20
    big = f.add(f.blob(TREE, raw, frame=b"\x01" + zstd_frame(raw)))
    sid = f.commit(f.tree([dir_node("big", big)]))
    assert_ok(snapvault("-r", str(tmp_path / "repo"), "check", cwd=tmp_path))
    if ALL_COMMANDS:
        run = snapvault("-r", str(tmp_path / "repo"), "ls", sid, cwd=tmp_path)
        assert_ok(run)
        assert len(run.stdout.splitlines()) == count + 1
