"""distributed_restore on a LocalCluster of two processes: the snapshot back, exactly."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.archiver.session import BackupOptions, run_backup
from snapvault.errors import ConfigError, JobCancelled
from snapvault.pipeline.patterns import PathFilter
from tests.conftest import FAST_KDF, PASSWORD
from tests.distributed.common import Recorder, cluster_with_a_killer, source_tree
from tests.treecompare import assert_same_tree

distributed = pytest.importorskip("distributed")

from snapvault.distributed import distributed_restore  # noqa: E402 - after the skip
from snapvault.distributed.restore import directory_excludes  # noqa: E402


def _odd_names(src: Path) -> None:
    """Names that are pattern syntax: each must still be restored as itself."""
    for name in ("we*ird[1]", "#hash", "!bang", "trailing ", "back\\slash", "q?"):
        d = src / "odd" / name
        d.mkdir(parents=True)
        (d / name).write_bytes(name.encode() * 100)


def test_directory_excludes_leave_exactly_one_directory() -> None:
    flt = PathFilter(exclude=directory_excludes(("a", "we*ird[1]"), ("linked",)))
    kept = [
        ("a", True),
        ("a/we*ird[1]", True),
        ("a/we*ird[1]/f", False),
    ]
    gone = [
        ("x", False),
        ("b", True),
        ("a/f", False),
        ("a/weXird1", True),
        ("a/we*ird[1]/sub", True),
        ("a/we*ird[1]/sub/f", False),
        ("a/we*ird[1]/linked", False),
    ]
    assert [rel for rel, d in kept if flt.excluded(rel, d)] == []
    assert [rel for rel, d in gone if not flt.excluded(rel, d)] == []


def test_local_target_restores_the_snapshot_exactly(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    _odd_names(src)
    m = run_backup(local_repo, BackupOptions(paths=[str(src)])).manifest
    target = tmp_path / "out"
    cb = Recorder()
    result = distributed_restore(local_repo, m.id, target, client, task_files=3, callback=cb)
    assert result.errors == []
    assert_same_tree(src, target / str(src).lstrip("/"))
    single = sv.Restorer(local_repo).restore(m.id, tmp_path / "single")
    assert (result.files, result.hardlinks, result.symlinks, result.bytes_written) == (
        single.files,
        single.hardlinks,
        single.symlinks,
        single.bytes_written,
    )
    assert result.files_skipped == 0
    assert cb.size == cb.value == single.bytes_written
    # Again into the same place: every file is found in place, as a restore on one machine finds it.
    again = distributed_restore(local_repo, m.id, target, client)
    single_again = sv.Restorer(local_repo).restore(m.id, tmp_path / "single")
    assert (again.files, again.files_skipped) == (single_again.files, single_again.files_skipped)


def test_excludes_apply(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    m = run_backup(local_repo, BackupOptions(paths=[str(src)])).manifest
    result = distributed_restore(local_repo, m, tmp_path / "out", client, exclude=["*.bin", "d2/"])
    single = sv.Restorer(local_repo).restore(m, tmp_path / "single", exclude=["*.bin", "d2/"])
    assert result.files == single.files
    assert_same_tree(tmp_path / "single", tmp_path / "out")
    with pytest.raises(ConfigError):
        distributed_restore(local_repo, m, tmp_path / "x", client, exclude=["*.bin", "!f1.bin"])


def test_s3_target(client: Any, s3_bucket: Any, tmp_path: Path) -> None:
    opts = s3_bucket.storage_options
    repo = sv.Repository.init(s3_bucket.url_for("repo"), PASSWORD, kdf=FAST_KDF, storage_options=opts)
    rnd = random.Random(3)
    src = tmp_path / "src"
    files = {f"d{d}/f{i}": rnd.randbytes(rnd.choice([0, 50, 90_000])) for d in range(3) for i in range(5)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    m = run_backup(repo, BackupOptions(paths=[str(src)])).manifest
    result = distributed_restore(repo, m, s3_bucket.url_for("out"), client, target_options=opts, task_files=4)
    assert result.errors == []
    assert result.files == len(files)
    for rel, data in files.items():
        assert s3_bucket.fs.cat_file(s3_bucket.path("out", str(src).lstrip("/"), rel)) == data


def test_cancelling_stops_the_workers(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    m = run_backup(local_repo, BackupOptions(paths=[str(src)])).manifest
    stop = threading.Event()
    cb = Recorder(lambda rec: stop.set() if sum(rec.updates) > 0 else None)
    with pytest.raises(JobCancelled):
        distributed_restore(local_repo, m, tmp_path / "out", client, task_files=1, callback=cb, should_stop=stop.is_set)
    running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
    assert not any(k.startswith("snapvault-restore") for keys in running.values() for k in keys)
    # No file is left half-written under its name: what is there is whole.
    for p in (tmp_path / "out").rglob("*"):
        if p.is_file() and not p.is_symlink():
            rel = p.relative_to(tmp_path / "out" / str(src).lstrip("/"))
            assert p.read_bytes() == (src / rel).read_bytes()


def test_a_worker_killed_mid_restore_leaves_no_trace(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    for i in range(8):
        (src / "large" / str(i)).parent.mkdir(exist_ok=True)
        (src / "large" / str(i)).write_bytes(random.Random(i).randbytes(3 << 20))
    m = run_backup(local_repo, BackupOptions(paths=[str(src)])).manifest
    with cluster_with_a_killer() as (_, client, killer, killed):
        result = distributed_restore(local_repo, m, tmp_path / "out", client, task_files=1, callback=killer)
        assert killed
    assert result.errors == []
    # Every file whole, and no temporary file of the lost task left behind.
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_unreadable_directory_is_reported_and_the_rest_restored(
    client: Any, local_repo: sv.Repository, tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    src = tmp_path / "src"
    (src / "kept").mkdir(parents=True)
    (src / "lost").mkdir()
    (src / "kept" / "a").write_bytes(b"kept")
    (src / "lost" / "b").write_bytes(b"lost")
    first = run_backup(local_repo, BackupOptions(paths=[str(src)])).manifest
    (src / "kept" / "c").write_bytes(b"new")
    second = run_backup(local_repo, BackupOptions(paths=[str(src)], parent=first)).manifest
    # "lost" did not change: the second snapshot reuses its tree, stored by the first backup in
    # a pack of its own. Deleting that pack damages that directory alone.
    lost_tree = _tree_of(local_repo, second.tree, [*src.parts[1:], "lost"])
    pack = local_repo.locate(bytes.fromhex(lost_tree)).pack_id.hex()
    os.unlink(Path(local_repo.url) / "data" / pack[:2] / pack)
    if where == "local":
        target, options, read = str(tmp_path / "out"), None, lambda rel: (tmp_path / "out" / rel).read_bytes()
    else:
        bucket = request.getfixturevalue("s3_bucket")
        target, options = bucket.url_for("out"), bucket.storage_options
        read = lambda rel: bucket.fs.cat_file(bucket.path("out", rel))  # noqa: E731
    result = distributed_restore(local_repo, second, target, client, target_options=options)
    base = str(src).lstrip("/")
    assert [(e.path, e.kind, e.type) for e in result.errors] == [(f"{base}/lost", "damaged", "dir")]
    assert read(f"{base}/kept/a") == b"kept"
    assert read(f"{base}/kept/c") == b"new"


def _tree_of(repo: sv.Repository, tree: str, parts: list[str]) -> str:
    for name in parts:
        tree = next(n.subtree for n in repo.read_tree(tree) if n.name == name and n.subtree is not None)
    return tree
