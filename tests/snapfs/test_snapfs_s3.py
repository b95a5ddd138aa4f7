"""``snapvault://`` over a repository on S3 (moto's emulator): the same calls as on a local
folder, with the storage options nested in ``repo_options``, and a 4 KiB read in a large
file fetching one ranged GET."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.snapfs.test_snapfs import (
    SMALL_CHUNKS,
    check_listing,
    check_one_chunk_per_range,
    check_reads,
    make_source,
    ref_path,
)


def test_the_everyday_calls_on_s3(s3_bucket: Any, tmp_path: Path) -> None:
    url, opts = s3_bucket.url_for("vault"), s3_bucket.storage_options
    repo = sv.Repository.init(url, PASSWORD, storage_options=opts, kdf=FAST_KDF, chunker=SMALL_CHUNKS)
    src = make_source(tmp_path)
    manifest = sv.Engine(repo).backup([src])
    options = {"repo": url, "repo_options": opts, "password": PASSWORD}
    fs = fsspec.filesystem("snapvault", **options, skip_instance_cache=True)
    check_listing(fs, src, manifest)
    check_reads(fs, src, tmp_path / "out", options)
    # The whole-file read (one GET per chunk) is proven on the local folder; here it would
    # only add a second of emulator round trips.
    check_one_chunk_per_range(url, opts, src, manifest, sequential=False)
    df = pd.read_csv(f"snapvault://{ref_path(src, 'data/a.csv')}", storage_options=options)
    assert df.to_dict("list") == {"name": ["alpha", "beta", "gamma"], "size": [1, 22, 333]}
