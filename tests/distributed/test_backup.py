"""distributed_backup on a LocalCluster of two processes: the single-process snapshot, restored exactly."""

from __future__ import annotations

import base64
import pickle
import random
import threading
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.archiver.session import BackupOptions, run_backup
from snapvault.errors import JobCancelled
from tests.conftest import FAST_KDF, PASSWORD
from tests.distributed.common import Recorder, cluster_with_a_killer, same_source_tree, source_tree
from tests.treecompare import assert_same_tree

distributed = pytest.importorskip("distributed")

from snapvault.distributed import distributed_backup  # noqa: E402 - after the skip


def _single(repo: sv.Repository, paths: list[str], **kw: Any) -> sv.Manifest:
    return run_backup(repo, BackupOptions(paths=paths, **kw)).manifest


def test_local_source_gives_the_single_process_trees_and_restores_exactly(
    client: Any, local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = source_tree(tmp_path)
    m = distributed_backup(local_repo, [str(src)], client, task_files=4, task_bytes=1 << 20)
    assert m.paths == [str(src)]
    assert m.stats.files_new == 3 * 9 + 2
    assert m.stats.total_bytes == sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    # The workers stored the data (more than one task's packs), the driver the trees.
    assert m.stats.data_blobs_added > 0
    assert m.stats.packs_written >= 2
    assert same_source_tree(local_repo, _single(local_repo, [str(src)]), m, src)
    target = tmp_path / "restored"
    result = sv.Restorer(local_repo).restore(m.id, str(target))
    assert not result.errors
    assert_same_tree(src, target / str(src).lstrip("/"))
    assert local_repo.check(read_data=True).ok


def test_incremental_skips_unchanged_files_and_matches_single_process(
    client: Any, local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = source_tree(tmp_path)
    first = distributed_backup(local_repo, [str(src)], client, task_files=5)
    (src / "d1" / "f3.bin").write_bytes(b"changed content")
    (src / "d2" / "new.txt").write_bytes(b"new file")
    (src / "d0" / "f0.bin").unlink()
    second = distributed_backup(local_repo, [str(src)], client, parent=first, task_files=5)
    assert (second.stats.files_new, second.stats.files_changed, second.stats.files_removed) == (1, 1, 1)
    assert second.stats.files_unchanged == 3 * 9 + 2 - 2
    # Only the two new contents were read.
    assert second.stats.bytes_read == len(b"changed content") + len(b"new file")
    single = _single(local_repo, [str(src)], parent=first)
    assert same_source_tree(local_repo, single, second, src)
    assert (single.stats.files_new, single.stats.files_changed, single.stats.files_unchanged) == (
        second.stats.files_new,
        second.stats.files_changed,
        second.stats.files_unchanged,
    )


def test_exclusion_rules_apply_as_in_one_process(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    (src / "d1" / "cache").mkdir()
    (src / "d1" / "cache" / "CACHEDIR.TAG").write_bytes(b"Signature: 8a477f597d28d172789f06886806bc55")
    (src / "d1" / "cache" / "junk").write_bytes(b"junk")
    rules: dict[str, Any] = {"exclude": ["*.bin", "!f1.bin"], "exclude_caches": True, "exclude_larger_than": 1 << 20}
    m = distributed_backup(local_repo, [str(src)], client, task_files=2, **rules)
    single = _single(local_repo, [str(src)], **rules)
    assert same_source_tree(local_repo, single, m, src)
    assert (m.stats.files_new, m.stats.total_bytes) == (single.stats.files_new, single.stats.total_bytes)
    assert m.stats.files_new == 3 + 1  # f1.bin in each directory and the tag (the rest over 1 MiB)


def test_s3_source_into_s3_repository(client: Any, s3_bucket: Any, tmp_path: Path) -> None:
    opts = s3_bucket.storage_options
    repo = sv.Repository.init(s3_bucket.url_for("repo"), PASSWORD, kdf=FAST_KDF, storage_options=opts)
    rnd = random.Random(7)
    objects = {f"src/{d}/o{i}": rnd.randbytes(rnd.choice([0, 100, 70_000, 1_200_000])) for d in "ab" for i in range(6)}
    objects["src/top"] = b"top"
    for key, data in objects.items():
        s3_bucket.fs.pipe_file(s3_bucket.path(key), data)
    url = s3_bucket.url_for("src")
    with distributed.get_task_stream(client) as stream:
        m = distributed_backup(repo, [url], client, source_options=opts, task_files=3)
    # The listing was split: a task listed each of the two prefixes.
    assert sum(1 for t in stream.data if t["key"].startswith("snapvault-list")) == 2
    assert m.paths == [url]
    assert m.stats.files_new == len(objects)
    assert _single(repo, [url], source_options=opts).tree == m.tree
    result = sv.Restorer(repo).restore(m.id, str(tmp_path / "out"))
    assert not result.errors
    for key, data in objects.items():
        assert (tmp_path / "out" / s3_bucket.name / key).read_bytes() == data
    # Unchanged objects are neither listed as work nor read again.
    again = distributed_backup(repo, [url], client, source_options=opts, parent=m)
    assert again.tree == m.tree
    assert again.stats.bytes_read == 0
    assert again.stats.files_unchanged == len(objects)
    assert repo.check().ok


def test_progress_of_the_workers_reaches_one_callback_on_the_driver(
    client: Any, local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = source_tree(tmp_path)
    cb = Recorder()
    reported: list[int] = []
    m = distributed_backup(
        local_repo, [str(src)], client, callback=cb, progress=lambda n, path: reported.append(n), task_files=3
    )
    assert sum(reported) > 0
    # The bytes the workers read came as their events (none are read on the driver).
    assert sum(cb.updates) > 0
    assert max(cb.updates) > 0
    assert cb.size == cb.value == m.stats.total_bytes


def test_no_secret_stays_on_the_workers_after_the_run(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    distributed_backup(local_repo, [str(src)], client)
    plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert all(not any(name.startswith("snapvault") for name in names) for names in plugins.values())


class _GraphRecorder(distributed.diagnostics.plugin.SchedulerPlugin):  # type: ignore[misc]
    """Keeps every task the scheduler is given, pickled as the scheduler holds it."""

    def __init__(self) -> None:
        self.specs: list[bytes] = []

    def update_graph(self, scheduler: Any, *, tasks: list[Any], **kwargs: Any) -> None:
        for key in tasks:
            ts = scheduler.tasks.get(key)
            if ts is not None and str(key).startswith("snapvault"):
                self.specs.append(pickle.dumps(ts.run_spec))


def test_the_task_graph_holds_no_key(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    client.register_plugin(_GraphRecorder(), name="graph-recorder")
    try:
        distributed_backup(local_repo, [str(src)], client, task_files=5)
        specs = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins["graph-recorder"].specs)
    finally:
        client.unregister_scheduler_plugin("graph-recorder")
    assert len(specs) >= 2
    # The recorder sees what the tasks carry (the files' paths)...
    assert all(str(src).encode() in spec for spec in specs)
    # ... and no secret among it.
    keys = local_repo.master_keys
    secrets = [keys.encryption_key, keys.id_key, base64.b64encode(keys.encryption_key), base64.b64encode(keys.id_key)]
    assert not [s for s in secrets for spec in specs if s in spec]
    assert not [spec for spec in specs if PASSWORD.encode() in spec]


def test_cancelling_stops_the_workers_and_commits_nothing(
    client: Any, local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = source_tree(tmp_path)
    stop = threading.Event()
    cb = Recorder(lambda rec: stop.set() if sum(rec.updates) > 0 else None)
    with pytest.raises(JobCancelled):
        distributed_backup(local_repo, [str(src)], client, callback=cb, should_stop=stop.is_set, task_files=1)
    assert local_repo.snapshot_ids() == []
    # The run is over for the cluster too: no task of it is still scheduled or running.
    assert not any(k.startswith("snapvault-read") for keys in client.processing().values() for k in keys)
    running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
    assert not any(k.startswith("snapvault-read") for keys in running.values() for k in keys)
    # What the stopped tasks stored is indexed (the next backup reuses it), and no writer is left.
    assert local_repo.list_keys("writers") == []
    report = local_repo.check()
    assert report.ok
    assert report.packs > 0
    assert report.warnings == []


def test_a_worker_killed_mid_run_is_replaced_and_the_snapshot_commits(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = source_tree(tmp_path)
    with cluster_with_a_killer() as (cluster, client, killer, killed):
        m = distributed_backup(local_repo, [str(src)], client, callback=killer, task_files=1)
        assert killed
        # At least one task was running on the killed worker, and ran again elsewhere.
        lost = [t for t in cluster.scheduler.transition_log if t[1] == "processing" and t[2] == "released"]
        assert any(str(t[0]).startswith("snapvault-read") for t in lost)
    assert same_source_tree(local_repo, _single(local_repo, [str(src)]), m, src)
    sv.Restorer(local_repo).restore(m.id, str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
    assert local_repo.check(read_data=True).ok
