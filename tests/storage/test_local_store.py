"""The local-folder store: chosen for plain paths, free of fsspec, robust to vanished folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapvault.errors import StorageError
from snapvault.storage import LocalStore, open_store
from snapvault.storage.fsspec_store import FsspecStore


@pytest.mark.parametrize("form", ["plain", "file-url"])
def test_plain_paths_and_file_urls_open_a_local_store(tmp_path: Path, form: str) -> None:
    root = tmp_path / "repo"
    store = open_store(str(root) if form == "plain" else f"file://{root}")
    assert isinstance(store, LocalStore)
    assert store.url == str(root)
    assert store.capabilities.atomic_create
    assert store.capabilities.spool_dir == str(root / "data")
    assert store.put_if_absent("config", b"x")
    assert (root / "config").read_bytes() == b"x"


def test_storage_options_for_a_local_path_still_give_a_local_store(tmp_path: Path) -> None:
    # Options go through fsspec (which accepts and ignores them for a folder), as before.
    store = open_store(str(tmp_path / "repo"), storage_options={"auto_mkdir": True})
    assert isinstance(store, LocalStore)


def test_a_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("rel/repo")
    assert store.url == str(tmp_path / "rel" / "repo")


def test_other_urls_go_through_fsspec() -> None:
    assert isinstance(open_store("memory://local-store-test"), FsspecStore)


def test_a_local_backup_and_restore_import_only_what_they_use(tmp_path: Path) -> None:
    # fsspec costs every command ~40 ms and ~12 MiB of imports; local repositories skip it.
    # pathspec and the Policy model cost a few milliseconds more when nothing needs them.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    script = f"""
import sys
import snapvault as sv
kdf = sv.KdfParams(memory_kib=64, iterations=1, lanes=1)
repo = sv.Repository.init({str(tmp_path / "repo")!r}, "pw", kdf=kdf)
m = sv.Engine(repo).backup([{str(src)!r}])
sv.Restorer(repo).restore(m.id, {str(tmp_path / "out")!r})
assert repo.check(read_data=True).ok
print(sorted(name for name in sys.modules if name.split(".")[0] in ("fsspec", "pathspec")))
print("snapvault.policy.model" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    # Nor pathspec (no patterns given) or the Policy model (no policy given).
    assert out.stdout.split() == ["[]", "False"]
    restored = tmp_path / "out" / os.path.relpath(src, "/") / "a.txt"
    assert restored.read_text() == "hello\n"


def test_put_file_remakes_a_folder_removed_meanwhile(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "repo"))
    assert store.put_if_absent("data/ab/first", b"1")
    # A prune empties and removes the folder after this store made (and remembered) it.
    os.unlink(tmp_path / "repo" / "data" / "ab" / "first")
    os.rmdir(tmp_path / "repo" / "data" / "ab")
    spooled = tmp_path / "spooled"
    spooled.write_bytes(b"pack bytes")
    assert store.put_file_if_absent("data/ab/second", str(spooled))
    assert store.get("data/ab/second") == b"pack bytes"
    assert not spooled.exists()
    # And put_if_absent recovers the same way.
    os.unlink(tmp_path / "repo" / "data" / "ab" / "second")
    os.rmdir(tmp_path / "repo" / "data" / "ab")
    assert store.put_if_absent("data/ab/third", b"3")
    assert store.get("data/ab/third") == b"3"


def test_put_file_of_an_existing_key_keeps_the_first_and_consumes_the_file(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "repo"))
    assert store.put_if_absent("k", b"first")
    spooled = tmp_path / "spooled"
    spooled.write_bytes(b"second")
    assert store.put_file_if_absent("k", str(spooled)) is False
    assert store.get("k") == b"first"
    assert not spooled.exists()


def test_size_of_a_folder_is_not_an_object(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "repo"))
    assert store.put_if_absent("folder/inner", b"x")
    with pytest.raises(StorageError) as info:
        store.size("folder")
    assert info.value.key == "folder"
    assert store.size("folder/inner") == 1
