"""No backend error escapes unmapped: real failures of a local store become StorageError."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from snapvault.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigError,
    ObjectNotFound,
    SnapvaultError,
    StorageError,
    TransientStorageError,
)
from snapvault.storage import Store, open_store
from snapvault.storage.fsspec_store import map_errors

Op = Callable[[Store, str], object]

OPS: dict[str, Op] = {
    "get": lambda s, k: s.get(k),
    "get_range": lambda s, k: s.get_range(k, 0, 10),
    "size": lambda s, k: s.size(k),
    "exists": lambda s, k: s.exists(k),
    "put_if_absent": lambda s, k: s.put_if_absent(k, b"data"),
    "list": lambda s, k: list(s.list(k)),
    "delete": lambda s, k: s.delete(k),
}


def run(op: str, store: Store, key: str) -> object:
    """Run ``op``; any exception must be a StorageError naming the key."""
    try:
        return OPS[op](store, key)
    except StorageError as e:
        mapped = e
    except BaseException as e:  # noqa: BLE001 - the point is to catch what escapes
        pytest.fail(f"{op}({key!r}) leaked {type(e).__module__}.{type(e).__qualname__}: {e}")
    assert mapped.key == key
    assert str(mapped)
    raise mapped


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(str(tmp_path / "store"))
    assert s.put_if_absent("plain", b"a regular file")
    assert s.put_if_absent("folder/inner", b"x")
    return s


# -- a file where a folder should be ---------------------------------------------------------


@pytest.mark.parametrize("op", ["get", "get_range", "size", "delete"])
@pytest.mark.parametrize("key", ["plain/child", "plain/deeper/child"])
def test_reads_below_a_regular_file_raise_object_not_found(store: Store, op: str, key: str) -> None:
    # The path walks through a file (ENOTDIR): the object cannot exist.
    with pytest.raises(ObjectNotFound):
        run(op, store, key)


@pytest.mark.parametrize("key", ["plain/child", "plain/deeper/child"])
def test_exists_below_a_regular_file_is_false(store: Store, key: str) -> None:
    assert run("exists", store, key) is False


@pytest.mark.parametrize("key", ["plain/child", "plain/deeper/child"])
def test_put_below_a_regular_file_raises_storage_error(store: Store, key: str) -> None:
    with pytest.raises(StorageError):
        run("put_if_absent", store, key)
    assert store.get("plain") == b"a regular file"


def test_list_of_a_regular_file_raises_storage_error_or_is_empty(store: Store) -> None:
    try:
        got = run("list", store, "plain")
    except StorageError:
        return
    assert got in ([], [("plain", 14)])


# -- a folder where an object should be ------------------------------------------------------


@pytest.mark.parametrize("op", ["get", "get_range", "delete"])
def test_object_operations_on_a_folder_raise_storage_error(store: Store, op: str) -> None:
    with pytest.raises(StorageError):
        run(op, store, "folder")
    assert store.get("folder/inner") == b"x"


# -- the store's root is unusable ------------------------------------------------------------


@pytest.mark.parametrize("op", ["get", "get_range", "size", "put_if_absent", "delete"])
def test_root_that_is_a_regular_file(tmp_path: Path, op: str) -> None:
    root = tmp_path / "not-a-folder"
    root.write_bytes(b"I am a file")
    s = open_store(str(root))
    with pytest.raises(StorageError):
        run(op, s, "config")
    with pytest.raises(StorageError):
        run(op, s, "data/00/obj")
    assert root.read_bytes() == b"I am a file"


def test_list_of_a_root_that_is_a_regular_file(tmp_path: Path) -> None:
    root = tmp_path / "not-a-folder"
    root.write_bytes(b"I am a file")
    s = open_store(str(root))
    with pytest.raises(StorageError):
        run("list", s, "")


def test_root_that_does_not_exist_yet(tmp_path: Path) -> None:
    s = open_store(str(tmp_path / "a" / "b" / "c"))
    assert run("list", s, "") == []
    assert run("exists", s, "config") is False
    with pytest.raises(ObjectNotFound):
        run("get", s, "config")
    assert run("put_if_absent", s, "config") is True


# -- names the OS refuses --------------------------------------------------------------------


@pytest.mark.parametrize("op", ["get", "get_range", "put_if_absent"])
def test_name_too_long(store: Store, op: str) -> None:
    with pytest.raises(StorageError):
        run(op, store, "x" * 300)
    with pytest.raises(StorageError):
        run(op, store, "data/" + "y" * 300)


@pytest.mark.parametrize("op", sorted(OPS))
def test_nul_byte_in_key_gives_a_snapvault_error(store: Store, op: str) -> None:
    # The local backend raises a bare ValueError("embedded null byte"); the Store protocol says
    # it raises only snapvault.errors types.
    try:
        OPS[op](store, "bad\0key")
    except SnapvaultError:
        return
    except ValueError as e:
        pytest.fail(f"{op} leaked ValueError: {e}")
    # Returning normally (exists() -> False) is fine as well.


# -- permission denied -----------------------------------------------------------------------


def _unwritable_root(tmp_path: Path) -> Path:
    """A folder this process cannot create anything in, for real."""
    if os.name == "posix" and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        return locked / "store"
    # root ignores mode bits; sysfs refuses new entries even to root.
    if sys.platform.startswith("linux") and os.path.isdir("/sys/kernel"):
        probe = "/sys/kernel/snapvault-probe"
        try:
            os.mkdir(probe)
        except PermissionError:
            return Path("/sys/kernel/snapvault-test-store")
        os.rmdir(probe)
    pytest.skip("no folder that denies writes to this user")


def test_permission_denied_on_write_maps_to_access_denied(tmp_path: Path) -> None:
    s = open_store(str(_unwritable_root(tmp_path)))
    with pytest.raises(AccessDenied) as exc:
        run("put_if_absent", s, "data/00/obj")
    assert isinstance(exc.value, PermissionError)


def _unreadable_object(tmp_path: Path) -> tuple[str, str]:
    """(store root, key) of an existing object this process may not read, for real."""
    if os.name == "posix" and os.geteuid() != 0:
        s = open_store(str(tmp_path / "store"))
        s.put_if_absent("secret", b"x")
        (tmp_path / "store" / "secret").chmod(0)
        return str(tmp_path / "store"), "secret"
    # root ignores mode bits, but another process's memory stays closed to it.
    try:
        with open("/proc/1/mem", "rb") as f:
            f.read(1)
    except PermissionError:
        return "/proc/1", "mem"
    except OSError:
        pass
    pytest.skip("no object that denies reads to this user")


@pytest.mark.parametrize("op", ["get", "get_range"])
def test_permission_denied_on_read_maps_to_access_denied(tmp_path: Path, op: str) -> None:
    root, key = _unreadable_object(tmp_path)
    with pytest.raises(AccessDenied) as exc:
        run(op, open_store(root), key)
    assert isinstance(exc.value, PermissionError)


# -- the mapping itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (FileNotFoundError(2, "No such file"), ObjectNotFound),
        (NotADirectoryError(20, "Not a directory"), ObjectNotFound),
        (PermissionError(13, "Permission denied"), AccessDenied),
        (ConnectionResetError(104, "reset"), TransientStorageError),
        (TimeoutError("timed out"), TransientStorageError),
        (OSError(113, "No route to host"), BackendUnavailable),
        (OSError(28, "No space left on device"), StorageError),
        (IsADirectoryError(21, "Is a directory"), StorageError),
    ],
)
def test_map_errors_translates_os_errors(raised: OSError, expected: type[StorageError]) -> None:
    with pytest.raises(expected) as exc, map_errors("some/key", "file:///repo"):
        raise raised
    assert exc.value.key == "some/key"
    assert "some/key" in str(exc.value)
    assert exc.value.__cause__ is raised


def test_refused_connection_maps_to_backend_unavailable() -> None:
    # A real refused TCP connection (nothing listens on the port). map_errors has an explicit
    # ECONNREFUSED -> BackendUnavailable branch; Python raises ConnectionRefusedError for it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StorageError) as exc, map_errors("config", "s3://bucket/repo"):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert isinstance(exc.value.__cause__, ConnectionRefusedError)
    assert isinstance(exc.value, BackendUnavailable)


def test_map_errors_passes_storage_errors_through() -> None:
    original = AccessDenied("already mapped", key="k")
    with pytest.raises(AccessDenied) as exc, map_errors("other", "url"):
        raise original
    assert exc.value is original


# -- opening ---------------------------------------------------------------------------------


def test_open_store_rejects_fs_and_storage_options_together(tmp_path: Path) -> None:
    import fsspec

    with pytest.raises(ConfigError):
        open_store(str(tmp_path), fs=fsspec.filesystem("file"), storage_options={"auto_mkdir": True})


def test_open_store_with_a_filesystem_instance(tmp_path: Path) -> None:
    import fsspec

    s = open_store(str(tmp_path / "viafs"), fs=fsspec.filesystem("file"))
    assert s.put_if_absent("k", b"v")
    assert (tmp_path / "viafs" / "k").read_bytes() == b"v"


def test_open_store_with_an_unknown_protocol_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        open_store("nosuchprotocol://bucket/repo")
