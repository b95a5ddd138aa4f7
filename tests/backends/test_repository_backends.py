"""End to end on every backend: local folder, memory, and S3, Azure and GCS emulators.

Backup, check --read-data, exact restore; kill -9 during a backup to S3; a copy from S3 to Azure;
distinct one-line errors for bad credentials, a missing bucket and an unreachable endpoint;
transient failures injected through the store interface.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest

import snapvault as sv
from snapvault.storage import FaultyStore, ReadOnlyStore, RetryingStore, open_store
from tests.backends.servers import HOST, closed_port, moto_iam_credentials
from tests.cli.test_main import assert_one_line_error, run
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.restore.test_restorer import make_tricky_tree
from tests.treecompare import assert_same_tree

KINDS = ["local", "memory", "s3", "azure", "gcs"]
BUCKET_FIXTURE = {"s3": "s3_bucket", "azure": "azure_container", "gcs": "gcs_bucket"}


def location(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A fresh repository URL on ``kind`` and the storage options it needs."""
    if kind == "local":
        return str(tmp_path / "repo"), {}
    if kind == "memory":
        url = f"memory://repo-{uuid.uuid4().hex}"
        request.addfinalizer(lambda: fsspec.filesystem("memory").rm(url, recursive=True))
        return url, {}
    bucket = request.getfixturevalue(BUCKET_FIXTURE[kind])
    return bucket.url_for("vault"), bucket.storage_options


@pytest.mark.parametrize("kind", KINDS)
def test_backup_check_restore_on_every_backend(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    url, opts = location(request, kind, tmp_path)
    src = make_tricky_tree(tmp_path)
    repo = sv.Repository.init(url, PASSWORD, storage_options=opts, kdf=FAST_KDF, pack_size=1 << 20)
    first = sv.Engine(repo).backup([src])
    again = sv.Engine(repo).backup([src])
    assert again.stats.bytes_read == 0
    assert again.stats.data_blobs_added == 0
    repo = sv.Repository.open(url, PASSWORD, storage_options=opts)
    report = repo.check(read_data=True)
    assert report.ok, report.problems
    assert report.warnings == []
    assert [m.id for m in repo.snapshots()] == [first.id, again.id]
    sv.Restorer(repo).restore(first.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out" / os.path.relpath(src, "/"))


_CHILD = """
import json, sys
import snapvault as sv
repo = sv.Repository.open(sys.argv[1], sys.argv[2], storage_options=json.loads(sys.argv[3]))
print(sv.Engine(repo, workers=2).backup([sys.argv[4]]).id)
"""


def test_kill_9_during_a_backup_to_s3(s3_bucket: Any, tmp_path: Path) -> None:
    url, opts = s3_bucket.url_for("vault"), s3_bucket.storage_options
    sv.Repository.init(url, PASSWORD, storage_options=opts, kdf=FAST_KDF, pack_size=1 << 20)
    src = tmp_path / "src"
    for i in range(24):
        write(src / f"f{i}.bin", os.urandom(1 << 20))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, PASSWORD, json.dumps(opts), str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 120
    data = s3_bucket.path("vault", "data")
    while child.poll() is None and time.monotonic() < deadline:
        if len(s3_bucket.fs.find(data)) >= 5:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    repo = sv.Repository.open(url, PASSWORD, storage_options=opts)
    if child.returncode == -signal.SIGKILL:
        # Killed mid-way (the usual case): nothing was committed.
        assert repo.snapshot_ids() == []
    report = repo.check(read_data=True)
    assert report.ok, report.problems
    m = sv.Engine(repo).backup([src])
    assert sv.Repository.open(url, PASSWORD, storage_options=opts).check(read_data=True).ok
    sv.Restorer(repo).restore(m.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out" / os.path.relpath(src, "/"))


def test_copy_from_s3_to_azure_then_restore_from_azure(s3_bucket: Any, azure_container: Any, tmp_path: Path) -> None:
    src = make_tricky_tree(tmp_path)
    s3 = sv.Repository.init(
        s3_bucket.url_for("vault"), PASSWORD, storage_options=s3_bucket.storage_options, kdf=FAST_KDF
    )
    m = sv.Engine(s3).backup([src], tags=["dr"])
    az_url, az_opts = azure_container.url_for("replica"), azure_container.storage_options
    az = sv.Repository.init(az_url, "another password", storage_options=az_opts, kdf=FAST_KDF)
    first = s3.copy_snapshots(az)
    assert [src_id for src_id, _ in first.copied] == [m.id]
    assert first.blobs_uploaded > 0
    az = sv.Repository.open(az_url, "another password", storage_options=az_opts)
    (copied,) = az.snapshots()
    assert copied.copied_from == m.id
    assert copied.tags == ["dr"]
    assert az.check(read_data=True).ok
    sv.Restorer(az).restore("latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out" / os.path.relpath(src, "/"))
    second = s3.copy_snapshots(az)
    assert second.copied == []
    assert second.skipped == [m.id]
    assert second.blobs_uploaded == 0
    assert second.bytes_uploaded == 0


def test_copy_is_resumable_and_keeps_dedup_with_shared_params(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(6):
        write(src / f"f{i}", os.urandom(600_000))
    a = sv.Repository.init(str(tmp_path / "a"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    m = sv.Engine(a).backup([src])
    b = sv.Repository.init(str(tmp_path / "b"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20, copy_params_from=a)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(sv.JobCancelled):
        a.copy_snapshots(b, should_stop=stop)
    b = sv.Repository.open(str(tmp_path / "b"), PASSWORD)
    assert b.snapshot_ids() == []
    assert b.check().ok
    resumed = a.copy_snapshots(b)
    assert resumed.copied[0][0] == m.id
    full = a.copy_snapshots(sv.Repository.init(str(tmp_path / "c"), PASSWORD, kdf=FAST_KDF, copy_params_from=a))
    assert resumed.blobs_uploaded < full.blobs_uploaded
    # Shared parameters: b's own backup of the same files finds every chunk already there.
    assert sv.Engine(b).backup([src], parent=None).stats.data_blobs_added == 0


def _cli_opts(opts: dict[str, Any]) -> list[str]:
    return [arg for k, v in opts.items() for arg in ("-o", f"{k}={json.dumps(v) if not isinstance(v, str) else v}")]


def test_cli_copy_and_init_copy_params_from(s3_bucket: Any, tmp_path: Path) -> None:
    src_repo = str(tmp_path / "local")
    assert run("-r", src_repo, "init").returncode == 0
    data = write(tmp_path / "src" / "a.txt", "replicate me").parent
    assert run("-r", src_repo, "backup", str(data)).returncode == 0
    dst = s3_bucket.url_for("copy")
    opts = _cli_opts(s3_bucket.storage_options)
    env = {"SNAPVAULT_FROM_PASSWORD": "cli password"}
    init = run("-r", dst, *opts, "init", "--copy-params-from", src_repo, env=env)
    assert init.returncode == 0, init.stderr
    first = run("-r", dst, *opts, "copy", "--from", src_repo, "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert len(json.loads(first.stdout)["copied"]) == 1
    again = json.loads(run("-r", dst, *opts, "copy", "--from", src_repo, "--json", env=env).stdout)
    assert (again["copied"], again["blobs_uploaded"]) == ([], 0)
    out = tmp_path / "out"
    assert run("-r", dst, *opts, "restore", "latest", "--target", str(out)).returncode == 0
    assert (out / os.path.relpath(data, "/") / "a.txt").read_text() == "replicate me"


def test_distinct_one_line_errors_on_s3(s3_server: Any, s3_bucket: Any, tmp_path: Path) -> None:
    url, opts = s3_bucket.url_for("vault"), s3_bucket.storage_options
    assert run("-r", url, *_cli_opts(opts), "init").returncode == 0
    missing = assert_one_line_error(
        run("-r", f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/v", *_cli_opts(opts), "snapshots")
    )
    assert "does not exist" in missing
    unreachable_opts = {**opts, "client_kwargs": {"endpoint_url": f"http://{HOST}:{closed_port()}"}}
    unreachable_opts["config_kwargs"] = {"retries": {"max_attempts": 1}}
    unreachable = assert_one_line_error(run("-r", url, *_cli_opts(unreachable_opts), "snapshots"))
    assert "cannot reach" in unreachable
    with moto_iam_credentials(s3_server):
        denied = assert_one_line_error(
            run("-r", url, *_cli_opts({**opts, "key": "wrong", "secret": "wrong"}), "snapshots")
        )
    assert "access denied" in denied
    assert len({missing.split(":")[2], unreachable.split(":")[2], denied.split(":")[2]}) == 3


def test_distinct_typed_errors_on_azure(azure_server: Any, azure_container: Any) -> None:
    from tests.backends.servers import azurite_connection_string

    url, opts = azure_container.url_for("vault"), azure_container.storage_options
    sv.Repository.init(url, PASSWORD, storage_options=opts, kdf=FAST_KDF)
    with pytest.raises(sv.BucketNotFound):
        sv.Repository.open(f"az://missing-{uuid.uuid4().hex[:8]}/v", PASSWORD, storage_options=opts)
    bad_key = {"connection_string": azurite_connection_string(azure_server.endpoint, key="d3Jvbmcga2V5")}
    with pytest.raises(sv.AccessDenied):
        sv.Repository.open(url, PASSWORD, storage_options=bad_key)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_backup_survives_five_percent_transient_failures(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    url, opts = location(request, kind, tmp_path)
    sv.Repository.init(url, PASSWORD, storage_options=opts, kdf=FAST_KDF, pack_size=1 << 20)
    faulty = FaultyStore(
        open_store(url, storage_options=opts, retries=1),
        transient_rate=0.05,
        short_read_rate=0.02,
        fail_after_write_rate=0.02,
        seed=7,
    )
    store = RetryingStore(faulty, attempts=8, sleep=lambda _: None, seed=1)
    repo = sv.Repository.open(url, PASSWORD, store=store)
    src = tmp_path / "src"
    # About 40 packs, so backup, check and restore make a few hundred store calls between them:
    # the seeded draws then inject failures however the encode threads order those calls.
    for i in range(40):
        write(src / f"d{i % 4}" / f"f{i}.bin", os.urandom(1_000_000 + i))
    m = sv.Engine(repo).backup([src])
    report = repo.check(read_data=True)
    assert report.ok, report.problems
    sv.Restorer(repo).restore(m.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out" / os.path.relpath(src, "/"))
    assert faulty.injected > 0
    # Each injected fault was met by a retry, except those a retry cannot see: a ranged read
    # cut short at the object's end is a complete read.
    assert store.retries > 0


def test_permanent_failures_fail_fast(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    store = RetryingStore(ReadOnlyStore(open_store(url)), attempts=8, sleep=lambda _: None)
    repo = sv.Repository.open(url, PASSWORD, store=store)
    src = write(tmp_path / "src" / "f", "x").parent
    with pytest.raises(sv.AccessDenied):
        sv.Engine(repo).backup([src])
    assert store.retries == 0


def test_storage_secrets_are_never_written_into_the_repository(s3_bucket: Any, tmp_path: Path) -> None:
    # An unencrypted repository, so a leaked secret would be visible in the stored bytes.
    marker = f"SECRET-{uuid.uuid4().hex}"
    opts = {**s3_bucket.storage_options, "key": marker + "-key", "secret": marker}
    url = s3_bucket.url_for("plain")
    repo = sv.Repository.init(url, storage_options=opts, encryption="none")
    src = write(tmp_path / "src" / "f", "data").parent
    policy = sv.Policy(name="p", sources=[str(src)])
    repo.save_policy(policy)
    sv.Engine(repo).backup(policy)
    stored = [s3_bucket.fs.cat_file(p) for p in s3_bucket.fs.find(s3_bucket.path("plain"))]
    assert stored
    assert not any(marker.encode() in blob for blob in stored)


def test_abfs_and_az_urls_name_the_same_repository(azure_container: Any, tmp_path: Path) -> None:
    opts = azure_container.storage_options
    abfs_url = f"abfs://{azure_container.path('vault')}"
    repo = sv.Repository.init(abfs_url, PASSWORD, storage_options=opts, kdf=FAST_KDF)
    assert repo.url.startswith("abfs://")
    src = write(tmp_path / "src" / "f", "via abfs").parent
    m = sv.Engine(repo).backup([src])
    same = sv.Repository.open(azure_container.url_for("vault"), PASSWORD, storage_options=opts)
    assert same.url.startswith("az://")
    assert same.snapshot_ids() == [m.id]
    assert same.check(read_data=True).ok
