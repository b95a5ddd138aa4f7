"""Backups of S3 (moto), Azure (Azurite) and GCS (fake-gcs-server) prefixes: restore, and
change detection by each backend's ETag (and GCS's generation).

Reads are counted as in ``test_fsspec_source``: a subclass of s3fs's, adlfs's and gcsfs's
filesystem classes, registered as ``counts3://``, ``countaz://`` and ``countgs://``, records
each object read.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import pytest
from adlfs import AzureBlobFileSystem
from gcsfs import GCSFileSystem
from s3fs import S3FileSystem

import snapvault as sv
from tests.archiver.test_fsspec_source import counting
from tests.backends.servers import Bucket

COUNTING = {
    "s3": counting(S3FileSystem, "counts3"),
    "azure": counting(AzureBlobFileSystem, "countaz"),
    "gcs": counting(GCSFileSystem, "countgs"),
}
# The listing field holding each backend's ETag, and the identity a node records.
ETAG = {"s3": "ETag", "azure": "etag", "gcs": "etag"}
IDENTITY = {
    "s3": ["user.snapvault.etag"],
    "azure": ["user.snapvault.etag"],
    "gcs": ["user.snapvault.etag", "user.snapvault.generation"],
}


@pytest.fixture(params=["s3", "azure", "gcs"])
def source(request: pytest.FixtureRequest) -> tuple[str, Bucket, Any]:
    """A fresh bucket on each emulator, and the counting filesystem class that reads it."""
    kind = request.param
    bucket: Bucket = request.getfixturevalue({"s3": "s3_bucket", "azure": "azure_container", "gcs": "gcs_bucket"}[kind])
    counter = COUNTING[kind]
    counter.reads.clear()
    return kind, bucket, counter


def _restored(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_prefix_backs_up_and_unchanged_objects_are_not_read(
    source: tuple[str, Bucket, Any], memory_repo: sv.Repository, tmp_path: Path
) -> None:
    kind, bucket, counter = source
    rng = random.Random(7)
    objects = {"a.txt": b"alpha\n", "sub/b.bin": rng.randbytes(200_000), "sub/c.bin": rng.randbytes(3000)}
    for key, data in objects.items():
        bucket.fs.pipe_file(bucket.path("data", key), data)
    url = f"count{bucket.emulator.protocol}://{bucket.name}/data"
    engine = sv.Engine(memory_repo)
    opts = bucket.storage_options

    first = engine.backup([url], source_options=opts)
    assert first.paths == [url]
    assert first.errors == []
    assert len(counter.reads) == len(objects)
    sv.Restorer(memory_repo).restore(first.id, target=str(tmp_path / "one"))
    assert _restored(tmp_path / "one") == {f"{bucket.name}/data/{k}": v for k, v in objects.items()}
    # The change key recorded is the listing's ETag, verbatim.
    data_tree = next(n for n in memory_repo.read_tree(first.tree) if n.name == bucket.name).subtree
    assert data_tree is not None
    sub = next(n for n in memory_repo.read_tree(data_tree) if n.name == "data").subtree
    assert sub is not None
    a = next(n for n in memory_repo.read_tree(sub) if n.name == "a.txt")
    etag = bucket.fs.info(bucket.path("data", "a.txt"))[ETAG[kind]]
    assert [name for name, _ in a.xattrs] == IDENTITY[kind]
    assert dict(a.xattrs)["user.snapvault.etag"] == base64.b64encode(etag.encode()).decode()
    assert a.mtime_ns > 0

    counter.reads.clear()
    second = engine.backup([url], source_options=opts)
    assert counter.reads == []
    assert (second.stats.files_unchanged, second.stats.bytes_read) == (len(objects), 0)
    assert second.tree == first.tree

    # Same size, new content: a new ETag (moto's times have whole seconds; the ETag still moves).
    bucket.fs.pipe_file(bucket.path("data", "sub/c.bin"), b"z" * 3000)
    third = engine.backup([url], source_options=opts)
    assert [r[0].rsplit("/", 2)[-2:] for r in counter.reads] == [["sub", "c.bin"]]
    assert (third.stats.files_changed, third.stats.files_unchanged) == (1, len(objects) - 1)
    sv.Restorer(memory_repo).restore(third.id, target=str(tmp_path / "three"))
    assert (tmp_path / "three" / bucket.name / "data" / "sub" / "c.bin").read_bytes() == b"z" * 3000


def test_a_missing_prefix_is_one_source_error(source: tuple[str, Bucket, Any], memory_repo: sv.Repository) -> None:
    _, bucket, _ = source
    url = bucket.url_for("nothing-here")
    with pytest.raises(sv.SourceError) as e:
        sv.Engine(memory_repo).backup([url], source_options=bucket.storage_options)
    assert str(e.value) == f"cannot read source {url}: no such object or prefix"
    assert list(memory_repo.snapshots()) == []


def test_a_job_hands_its_source_options_to_the_source(s3_bucket: Bucket, memory_repo: sv.Repository) -> None:
    s3_bucket.fs.pipe_file(s3_bucket.path("data", "a"), b"12345")
    # Without the emulator's endpoint in the options the URL would not resolve to this bucket.
    job = sv.Engine(memory_repo).submit([s3_bucket.url_for("data")], source_options=s3_bucket.storage_options)
    m = job.result(timeout=60)
    assert (m.paths, m.stats.bytes_read) == ([s3_bucket.url_for("data")], 5)
