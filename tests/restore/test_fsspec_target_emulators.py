"""A restore into S3 and Azure Blob (their emulators) puts every file's bytes in the bucket.

The objects under the prefix are compared byte for byte with the source; a file larger than
the in-memory spool goes up from a local temporary file. An object store keeps no empty
directory, and that is counted in ``metadata_dropped``; a damaged file is never uploaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.restore.fsspec_target import SPOOL_LIMIT
from tests.backends.servers import Bucket
from tests.conftest import write
from tests.test_hostile import Hostile, file_node


def objects_under(bucket: Bucket, prefix: str) -> dict[str, bytes]:
    root = bucket.path(prefix)
    return {p[len(root) + 1 :]: bucket.fs.cat_file(p) for p in bucket.fs.find(root)}


def source(root: Path) -> tuple[Path, dict[str, bytes]]:
    src = root / "src"
    write(src / "empty", b"")
    write(src / "large.bin", os.urandom(SPOOL_LIMIT + 12_345))
    write(src / "docs" / "a.md", "a")
    write(src / "docs" / "名前 ✓.txt", "unicode name")
    write(src / "glob [*?]" / "x*", "glob characters")
    (src / "nothing_here").mkdir()
    os.link(src / "docs" / "a.md", src / "hard_a.md")
    os.symlink("docs/a.md", src / "link")
    files = {os.path.relpath(p, "/"): p.read_bytes() for p in src.rglob("*") if p.is_file() and not p.is_symlink()}
    return src, files


@pytest.fixture(params=["s3", "azure"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    fixture = "s3_bucket" if request.param == "s3" else "azure_container"
    b: Bucket = request.getfixturevalue(fixture)
    return b


def test_a_restore_into_a_bucket_is_byte_exact(local_repo: sv.Repository, tmp_path: Path, bucket: Bucket) -> None:
    src, files = source(tmp_path)
    m = sv.Engine(local_repo).backup([src])
    options: dict[str, Any] = bucket.storage_options
    result = sv.Restorer(local_repo, workers=4).restore(m.id, bucket.url_for("out"), target_options=options)
    assert result.errors == []
    assert objects_under(bucket, "out") == files
    assert result.target == bucket.url_for("out")
    assert result.metadata_dropped["empty_dirs"] == 1
    assert result.metadata_dropped["hardlinks"] == 1
    assert result.metadata_dropped["symlinks"] == 1


@pytest.mark.commits_damage
def test_a_damaged_file_is_not_uploaded_to_a_bucket(local_repo: sv.Repository, bucket: Bucket) -> None:
    h = Hostile(local_repo)
    good = file_node("ok", [h.data(b"good")], size=4)
    short = file_node("short", [h.data(b"four")], size=9)
    m = h.commit(h.tree([good, short]))
    bucket.fs.pipe_file(bucket.path("out", "short"), b"before")
    result = sv.Restorer(local_repo).restore(m.id, bucket.url_for("out"), target_options=bucket.storage_options)
    assert [(e.path, e.kind) for e in result.errors] == [("short", "damaged")]
    assert objects_under(bucket, "out") == {"ok": b"good", "short": b"before"}


def test_a_missing_bucket_is_its_own_error(local_repo: sv.Repository, tmp_path: Path, bucket: Bucket) -> None:
    src = write(tmp_path / "src" / "a", "a").parent
    m = sv.Engine(local_repo).backup([src])
    url = f"{bucket.emulator.protocol}://no-such-bucket-{bucket.name[-8:]}/out"
    with pytest.raises(sv.BucketNotFound):
        sv.Restorer(local_repo).restore(m.id, url, target_options=bucket.storage_options)
