"""The emulators themselves, through fsspec: what snapvault relies on, and how each one fails.

These pin down backend behaviour (not snapvault's): the round trip, create-only writes, listing
past one page, no stale listings, and the exception each client library raises for a missing
object or bucket, bad credentials and an unreachable endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.backends.servers import HOST, Bucket, Emulator, closed_port, moto_iam_credentials

# -- the round trip ------------------------------------------------------------------------


def test_endpoint_is_loopback(emulator: Emulator) -> None:
    assert emulator.endpoint.startswith(f"http://{HOST}:")


def test_write_read_range_list_delete(emulator_bucket: Bucket) -> None:
    fs = emulator_bucket.fs
    data = bytes(range(256)) * 40  # 10240 bytes
    fs.pipe_file(emulator_bucket.path("dir/obj"), data)
    fs.pipe_file(emulator_bucket.path("dir/sub/other"), b"other")
    fs.pipe_file(emulator_bucket.path("top"), b"")

    assert fs.cat_file(emulator_bucket.path("dir/obj")) == data
    assert fs.cat_file(emulator_bucket.path("top")) == b""
    assert fs.size(emulator_bucket.path("dir/obj")) == len(data)
    assert fs.cat_file(emulator_bucket.path("dir/obj"), start=100, end=1100) == data[100:1100]
    assert fs.cat_file(emulator_bucket.path("dir/obj"), start=10000) == data[10000:]
    # An end past the object's size is cut short, not refused.
    assert fs.cat_file(emulator_bucket.path("dir/obj"), start=10200, end=20000) == data[10200:]
    with fs.open(emulator_bucket.path("dir/obj"), "rb") as f:
        f.seek(5000)
        assert f.read(10) == data[5000:5010]

    assert sorted(fs.find(emulator_bucket.name)) == sorted(
        emulator_bucket.path(p) for p in ("dir/obj", "dir/sub/other", "top")
    )
    found = fs.find(emulator_bucket.path("dir"), detail=True)
    assert {k: v["size"] for k, v in found.items()} == {
        emulator_bucket.path("dir/obj"): len(data),
        emulator_bucket.path("dir/sub/other"): 5,
    }
    assert sorted(fs.ls(emulator_bucket.path("dir"), detail=False)) == [
        emulator_bucket.path("dir/obj"),
        emulator_bucket.path("dir/sub"),
    ]

    fs.rm_file(emulator_bucket.path("dir/obj"))
    assert not fs.exists(emulator_bucket.path("dir/obj"))
    with pytest.raises(FileNotFoundError):
        fs.cat_file(emulator_bucket.path("dir/obj"))
    assert fs.find(emulator_bucket.path("dir")) == [emulator_bucket.path("dir/sub/other")]


def test_overwrite_is_the_default(emulator_bucket: Bucket) -> None:
    fs = emulator_bucket.fs
    fs.pipe_file(emulator_bucket.path("k"), b"one")
    fs.pipe_file(emulator_bucket.path("k"), b"two")
    assert fs.cat_file(emulator_bucket.path("k")) == b"two"


# -- create-only writes --------------------------------------------------------------------


def test_create_only_write_refuses_to_overwrite(emulator_bucket: Bucket) -> None:
    if not emulator_bucket.emulator.enforces_create_only:
        pytest.skip(f"{emulator_bucket.emulator.kind}: the emulator ignores create-only preconditions")
    fs = emulator_bucket.fs
    path = emulator_bucket.path("config")
    fs.pipe_file(path, b"first", mode="create")
    with pytest.raises(FileExistsError):
        fs.pipe_file(path, b"second", mode="create")
    assert fs.cat_file(path) == b"first"
    # An empty object exists as much as any other.
    fs.pipe_file(emulator_bucket.path("empty"), b"", mode="create")
    with pytest.raises(FileExistsError):
        fs.pipe_file(emulator_bucket.path("empty"), b"x", mode="create")


def test_create_only_race_has_exactly_one_winner(emulator_bucket: Bucket) -> None:
    """Concurrent create-only writes from separate clients: one wins, the rest get FileExistsError."""
    if not emulator_bucket.emulator.enforces_create_only:
        pytest.skip(f"{emulator_bucket.emulator.kind}: the emulator ignores create-only preconditions")
    if emulator_bucket.emulator.kind == "s3":
        # moto checks If-None-Match and then stores, without a lock between: on a loaded machine
        # (a parallel test run) two writers can both win. S3 itself decides atomically; the
        # precondition itself is checked one writer at a time by the other create-only tests.
        pytest.skip("s3: moto's conditional PUT is not atomic under concurrency (S3's is)")
    writers = 6
    clients = [emulator_bucket.emulator.filesystem() for _ in range(writers)]
    for rnd in range(10):
        path = emulator_bucket.path(f"race/{rnd}")
        barrier = threading.Barrier(writers)

        def attempt(i: int, path: str = path, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            try:
                clients[i].pipe_file(path, f"writer {i} ".encode() * 500, mode="create")
            except FileExistsError:
                return -1
            return i

        with ThreadPoolExecutor(writers) as ex:
            results = list(ex.map(attempt, range(writers)))
        winners = [r for r in results if r >= 0]
        assert len(winners) == 1, f"round {rnd}: winners {winners}"
        assert emulator_bucket.fs.cat_file(path) == f"writer {winners[0]} ".encode() * 500


# -- listings ------------------------------------------------------------------------------


def test_listing_goes_past_one_page(emulator_bucket: Bucket) -> None:
    """More keys under one prefix than a single list call returns (1000 on all three)."""
    fs = emulator_bucket.fs
    n = 1100
    fs.pipe({emulator_bucket.path(f"many/{i:05d}"): str(i).encode() for i in range(n)})
    expected = [emulator_bucket.path(f"many/{i:05d}") for i in range(n)]
    assert sorted(fs.find(emulator_bucket.path("many"))) == expected
    assert sorted(fs.ls(emulator_bucket.path("many"), detail=False)) == expected
    # A pattern within the prefix.
    assert sorted(fs.glob(emulator_bucket.path("many/010*"))) == expected[1000:1100]


def test_no_stale_listing_with_the_cache_off(emulator_bucket: Bucket) -> None:
    reader = emulator_bucket.emulator.filesystem(use_listings_cache=False)
    writer = emulator_bucket.emulator.filesystem()
    prefix = emulator_bucket.path("p")
    writer.pipe_file(emulator_bucket.path("p/a"), b"a")
    assert reader.ls(prefix, detail=False) == [emulator_bucket.path("p/a")]
    assert reader.find(prefix) == [emulator_bucket.path("p/a")]

    writer.pipe_file(emulator_bucket.path("p/b"), b"b")
    assert sorted(reader.ls(prefix, detail=False)) == [emulator_bucket.path("p/a"), emulator_bucket.path("p/b")]
    assert sorted(reader.find(prefix)) == [emulator_bucket.path("p/a"), emulator_bucket.path("p/b")]
    assert reader.exists(emulator_bucket.path("p/b"))

    writer.rm_file(emulator_bucket.path("p/a"))
    assert reader.ls(prefix, detail=False) == [emulator_bucket.path("p/b")]
    assert reader.find(prefix) == [emulator_bucket.path("p/b")]
    assert not reader.exists(emulator_bucket.path("p/a"))
    assert reader.info(emulator_bucket.path("p/b"))["size"] == 1


# -- errors: missing objects and buckets ---------------------------------------------------


def test_missing_object(emulator_bucket: Bucket) -> None:
    fs = emulator_bucket.fs
    missing = emulator_bucket.path("no/such/object")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(missing)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(missing, start=0, end=10)
    with pytest.raises(FileNotFoundError):
        fs.size(missing)
    with pytest.raises(FileNotFoundError), fs.open(missing, "rb") as f:
        f.read()
    with pytest.raises(FileNotFoundError):
        fs.ls(emulator_bucket.path("no/such"))
    assert not fs.exists(missing)
    assert not fs.isfile(missing)
    assert fs.find(emulator_bucket.path("no/such")) == []
    if emulator_bucket.emulator.kind == "s3":
        fs.rm_file(missing)  # S3's DeleteObject is idempotent: no error for a missing key
    else:
        with pytest.raises(FileNotFoundError):
            fs.rm_file(missing)


def _missing_bucket_write_error(kind: str) -> type[BaseException]:
    if kind == "azure":
        # adlfs lets the SDK's error through when the container is missing (not an OSError).
        from azure.core.exceptions import ResourceNotFoundError

        return ResourceNotFoundError
    return FileNotFoundError


def test_missing_bucket(emulator: Emulator) -> None:
    fs = emulator.filesystem()
    name = "svtest-never-created-" + emulator.kind
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{name}/k")
    with pytest.raises(FileNotFoundError):
        fs.ls(name)
    with pytest.raises(FileNotFoundError):
        fs.info(name)
    assert not fs.exists(f"{name}/k")
    assert not fs.exists(name)
    with pytest.raises(_missing_bucket_write_error(emulator.kind)):
        fs.pipe_file(f"{name}/k", b"x")
    with pytest.raises(_missing_bucket_write_error(emulator.kind)):
        fs.pipe_file(f"{name}/k", b"x", mode="create")
    if emulator.kind == "azure":
        assert fs.find(f"{name}/p") == []  # adlfs: an empty listing, not an error
    else:
        with pytest.raises(FileNotFoundError):
            fs.find(f"{name}/p")


def test_range_starting_past_the_end(emulator_bucket: Bucket) -> None:
    """A ranged read that starts at or after the end of the object (HTTP 416)."""
    fs = emulator_bucket.fs
    path = emulator_bucket.path("small")
    fs.pipe_file(path, b"0123456789")
    kind = emulator_bucket.emulator.kind
    expected: type[BaseException]
    if kind == "s3":
        expected = OSError  # s3fs: OSError(EINVAL, "The requested range is not satisfiable")
    elif kind == "azure":
        from azure.core.exceptions import HttpResponseError

        expected = HttpResponseError  # status_code 416, not an OSError
    else:
        from gcsfs.retry import HttpError

        expected = HttpError  # code 416, not an OSError
    with pytest.raises(expected):
        fs.cat_file(path, start=20, end=30)


# -- errors: credentials -------------------------------------------------------------------


def test_s3_credentials_are_checked_only_when_moto_iam_is_on(s3_bucket: Bucket) -> None:
    emu = s3_bucket.emulator
    path = s3_bucket.path("k")
    s3_bucket.fs.pipe_file(path, b"v")
    # By default moto accepts any key and secret.
    assert emu.filesystem(key="anything", secret="whatever").cat_file(path) == b"v"
    with moto_iam_credentials(emu) as (key, secret):
        good = emu.filesystem(key=key, secret=secret)
        assert good.cat_file(path) == b"v"
        good.pipe_file(s3_bucket.path("k2"), b"w")
        for bad in (
            emu.filesystem(key=key, secret="wrong-secret"),
            emu.filesystem(key="AKIAUNKNOWNUNKNOWN00", secret=secret),
        ):
            with pytest.raises(PermissionError):
                bad.cat_file(path)
            with pytest.raises(PermissionError):
                bad.pipe_file(s3_bucket.path("k3"), b"x")
            with pytest.raises(PermissionError):
                bad.ls(s3_bucket.name)
            with pytest.raises(PermissionError):
                bad.exists(path)
    assert not s3_bucket.fs.exists(s3_bucket.path("k3"))


def test_azure_wrong_key(azure_container: Bucket) -> None:
    from azure.core.exceptions import HttpResponseError

    from tests.backends.servers import AZURITE_KEY, azurite_connection_string

    emu = azure_container.emulator
    path = azure_container.path("k")
    azure_container.fs.pipe_file(path, b"v")
    wrong_key = "A" * 4 + AZURITE_KEY[4:]
    bad = emu.filesystem(connection_string=azurite_connection_string(emu.endpoint, key=wrong_key))
    # adlfs lets the SDK's HttpResponseError (403 AuthenticationFailed) through: not a PermissionError.
    ops: list[Callable[[], object]] = [
        lambda: bad.cat_file(path),
        lambda: bad.pipe_file(azure_container.path("k2"), b"x"),
        lambda: bad.ls(azure_container.name),
        lambda: bad.exists(path),
    ]
    for op in ops:
        with pytest.raises(HttpResponseError) as info:
            op()
        assert info.value.status_code == 403
        assert not isinstance(info.value, OSError)
    assert not azure_container.fs.exists(azure_container.path("k2"))


def test_gcs_emulator_does_not_check_credentials(gcs_bucket: Bucket) -> None:
    """fake-gcs-server ignores Authorization: a wrong token can't be tested against it."""
    path = gcs_bucket.path("k")
    gcs_bucket.fs.pipe_file(path, b"v")
    other = gcs_bucket.emulator.filesystem(token=None)  # whatever credentials gcsfs finds, or none
    assert other.cat_file(path) == b"v"


# -- errors: unreachable endpoint ----------------------------------------------------------


def _unreachable_fs(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A filesystem pointed at a closed port on 127.0.0.1, with client retries cut short."""
    endpoint = f"http://{HOST}:{closed_port()}"
    if emulator.kind == "s3":
        # botocore retries (with backoff) for ~8 s by default.
        return emulator.filesystem(
            client_kwargs={"endpoint_url": endpoint}, config_kwargs={"retries": {"max_attempts": 1}}
        )
    if emulator.kind == "azure":
        # The Azure SDK's default retry policy takes ~85 s here, and adlfs has no option for it:
        # swap in a client without retries.
        from azure.storage.blob.aio import BlobServiceClient

        from tests.backends.servers import azurite_connection_string

        cs = azurite_connection_string(endpoint)
        fs = emulator.filesystem(connection_string=cs)
        fs.service_client = BlobServiceClient.from_connection_string(cs, retry_total=0)
        return fs
    # gcsfs retries 6 times with backoff (~33 s), fixed at class definition: make it give up.
    import gcsfs.retry

    monkeypatch.setattr(gcsfs.retry, "is_retriable", lambda exc: False)
    return emulator.filesystem(endpoint_url=endpoint)


def test_unreachable_endpoint(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _unreachable_fs(emulator, monkeypatch)
    expected: type[BaseException]
    if emulator.kind == "s3":
        from botocore.exceptions import EndpointConnectionError

        expected = EndpointConnectionError  # not an OSError / ConnectionError
    elif emulator.kind == "azure":
        from azure.core.exceptions import ServiceRequestError

        expected = ServiceRequestError  # not an OSError / ConnectionError
    else:
        from aiohttp import ClientConnectorError

        expected = ClientConnectorError  # an OSError with errno ECONNREFUSED
    with pytest.raises(expected) as info:
        fs.cat_file("svtest-unreachable/k")
    if emulator.kind == "gcs":
        import errno

        assert isinstance(info.value, OSError)
        assert info.value.errno == errno.ECONNREFUSED
    else:
        assert not isinstance(info.value, OSError)
    with pytest.raises(expected):
        fs.pipe_file("svtest-unreachable/k", b"x", mode="create")
