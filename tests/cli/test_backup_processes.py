"""``snapvault backup --processes N``: the same snapshot, backed up by a pool of processes."""

from __future__ import annotations

import random
from pathlib import Path

import snapvault as sv
from snapvault.cli.exits import ExitCode
from tests.cli.conftest import Cli
from tests.treecompare import assert_same_tree


def _tree(root: Path) -> Path:
    rnd = random.Random(11)
    src = root / "src"
    for d in range(5):
        for s in range(3):
            sub = src / f"d{d}" / f"s{s}"
            sub.mkdir(parents=True)
            for f in range(20):
                (sub / f"f{f}").write_bytes(rnd.randbytes(rnd.choice([0, 100, 5000])))
    (src / "top").write_bytes(b"at the top")
    return src


def _source_tree(repo: sv.Repository, m: sv.Manifest, src: Path) -> str:
    tree = m.tree
    for name in src.parts[1:]:
        tree = next(n.subtree for n in repo.read_tree(tree) if n.name == name and n.subtree is not None)
    return tree


def test_backup_with_processes_commits_the_same_tree_and_restores(cli: Cli, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    repo, pooled = cli.backup(str(src), "--processes", "2")
    _, single = cli.backup(str(src), "--full")
    # The source's own tree (the directories above it are the temporary folder's, which
    # tests running alongside touch between the two backups).
    assert _source_tree(repo, pooled, src) == _source_tree(repo, single, src)
    assert pooled.stats.total_files == single.stats.total_files == 301
    code, _, err = cli("restore", pooled.id, "--target", str(tmp_path / "out"))
    assert code == ExitCode.OK, err
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
    assert repo.check(read_data=True).ok


def test_processes_below_one_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    code, out, err = cli("backup", str(src), "--processes", "0")
    assert code == ExitCode.USAGE
    assert "--processes" in err
    assert "Traceback" not in err
    assert out == ""
