"""Opening and creating repositories: locations, encryption choices, keys, snapshot lookup."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import blake3
import fsspec
import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD, tree_at, write


def test_open_from_filesystem_instance_and_path(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    repo = sv.Repository.init(str(tmp_path / "r"), PASSWORD, fs=fs, kdf=FAST_KDF)
    again = sv.Repository.open(str(tmp_path / "r"), PASSWORD, fs=fs)
    assert again.config == repo.config
    assert (tmp_path / "r" / "config").is_file()


def test_storage_options_with_an_instance_are_rejected(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    with pytest.raises(sv.ConfigError, match="not both"):
        sv.Repository.init(str(tmp_path / "r"), PASSWORD, fs=fs, storage_options={"auto_mkdir": True})
    assert not (tmp_path / "r").exists()


def test_url_with_storage_options(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'r'}"
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, storage_options={"auto_mkdir": True})
    assert sv.Repository.open(url, PASSWORD, storage_options={"auto_mkdir": True}).encrypted


@pytest.mark.parametrize("encryption", ["aes-256-gcm", "chacha20-poly1305"])
def test_each_aead_round_trips(tmp_path: Path, encryption: str) -> None:
    repo = sv.Repository.init(str(tmp_path / "r"), PASSWORD, encryption=encryption, kdf=FAST_KDF)
    src = write(tmp_path / "src" / "f", "payload " * 1000).parent
    m = sv.Engine(repo).backup([src])
    repo = sv.Repository.open(str(tmp_path / "r"), PASSWORD)
    assert repo.config.encryption == encryption
    assert repo.check(read_data=True).ok
    sv.Restorer(repo).restore(m.id, tmp_path / "out")
    assert (tmp_path / "out" / os.path.relpath(src, "/") / "f").read_text() == "payload " * 1000


def test_encrypted_repository_holds_no_plaintext(tmp_path: Path) -> None:
    marker = b"UNMISTAKABLE-PLAINTEXT-MARKER-" * 10
    repo = sv.Repository.init(str(tmp_path / "r"), PASSWORD, kdf=FAST_KDF)
    src = write(tmp_path / "src" / "secret-name.txt", marker).parent
    sv.Engine(repo).backup([src])
    for p in (tmp_path / "r").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert b"UNMISTAKABLE" not in data, p
            assert b"secret-name" not in data, p


def test_unencrypted_repository_only_on_request(tmp_path: Path) -> None:
    with pytest.raises(sv.ConfigError, match="password is required"):
        sv.Repository.init(str(tmp_path / "r"))
    repo = sv.Repository.init(str(tmp_path / "r"), encryption="none")
    assert not repo.encrypted
    assert json.loads((tmp_path / "r" / "config").read_text())["encryption"] == "none"
    with pytest.raises(sv.WrongPassword, match="NOT encrypted"):
        sv.Repository.open(str(tmp_path / "r"), "a password")
    src = write(tmp_path / "src" / "f", "plain").parent
    sv.Engine(sv.Repository.open(str(tmp_path / "r"))).backup([src])
    assert sv.Repository.open(str(tmp_path / "r")).check(read_data=True).ok


def test_kdf_parameters_are_stored_in_the_key_file(tmp_path: Path) -> None:
    kdf = sv.KdfParams(memory_kib=256, iterations=2, lanes=2)
    sv.Repository.init(str(tmp_path / "r"), PASSWORD, kdf=kdf)
    (key_file,) = (tmp_path / "r" / "keys").iterdir()
    doc = json.loads(key_file.read_text())
    assert doc["kdf"]["algorithm"] == "argon2id"
    assert (doc["kdf"]["memory_kib"], doc["kdf"]["iterations"], doc["kdf"]["lanes"]) == (256, 2, 2)
    assert sv.Repository.open(str(tmp_path / "r"), PASSWORD).encrypted


def test_key_file_with_unreasonable_kdf_cost_is_refused(tmp_path: Path) -> None:
    sv.Repository.init(str(tmp_path / "r"), PASSWORD, kdf=FAST_KDF)
    (key_file,) = (tmp_path / "r" / "keys").iterdir()
    doc = json.loads(key_file.read_text())
    doc["kdf"]["memory_kib"] = 64 << 20
    # A consistent hostile key file: named by the hash of its new bytes.
    data = json.dumps(doc).encode()
    key_file.unlink()
    (key_file.parent / blake3.blake3(data).hexdigest()).write_bytes(data)
    with pytest.raises(sv.UnsupportedFormat, match="65536 MiB of Argon2 memory, over this reader's limit"):
        sv.Repository.open(str(tmp_path / "r"), PASSWORD)
    # Past the format's own ceiling no caller's limit lets it be derived.
    with pytest.raises(sv.UnsupportedFormat, match="unreasonable"):
        sv.Repository.open(str(tmp_path / "r"), PASSWORD, max_kdf_memory_kib=1 << 40)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    sv.Repository.init(str(tmp_path / "r"), PASSWORD, kdf=FAST_KDF)
    cfg = tmp_path / "r" / "config"
    doc = json.loads(cfg.read_text())
    doc["version"] = 99
    cfg.write_text(json.dumps(doc))
    with pytest.raises(sv.UnsupportedFormat, match="version 99"):
        sv.Repository.open(str(tmp_path / "r"), PASSWORD)


def test_copy_params_from_gives_identical_blob_ids(tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "big", os.urandom(3 << 20)).parent
    a = sv.Repository.init(str(tmp_path / "a"), PASSWORD, kdf=FAST_KDF)
    b = sv.Repository.init(str(tmp_path / "b"), "other password", kdf=FAST_KDF, copy_params_from=a)
    c = sv.Repository.init(str(tmp_path / "c"), PASSWORD, kdf=FAST_KDF)
    ma, mb, mc = (sv.Engine(r).backup([src]) for r in (a, b, c))
    assert b.master_keys.encryption_key != a.master_keys.encryption_key
    assert tree_at(a, ma, src) == tree_at(b, mb, src)
    assert tree_at(a, ma, src) != tree_at(c, mc, src)
    assert b.config.chunker == a.config.chunker


def test_resolve_prefix_latest_and_ambiguity(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "f", "x").parent
    days = range(1, 13)
    ids = [sv.Engine(local_repo).backup([src], now=datetime(2026, 1, d, tzinfo=UTC), parent=None).id for d in days]
    assert local_repo.resolve("latest").id == ids[-1]
    assert local_repo.resolve(ids[5][:12]).id == ids[5]
    assert local_repo.resolve(ids[5].upper()).id == ids[5]
    assert [m.id for m in local_repo.snapshots()] == ids
    with pytest.raises(sv.SnapshotNotFound, match="4 or more"):
        local_repo.resolve("abc")
    # Two names sharing a prefix: resolution refuses to guess (it lists before it loads).
    local_repo.store.put_if_absent("snapshots/" + "abcd" + "0" * 60, b"x")
    local_repo.store.put_if_absent("snapshots/" + "abcd" + "1" * 60, b"y")
    with pytest.raises(sv.AmbiguousSnapshot, match="matches 2 snapshots"):
        local_repo.resolve("abcd")


def test_xattrs_round_trip(local_repo: sv.Repository, tmp_path: Path) -> None:
    f = write(tmp_path / "src" / "f", "x")
    try:
        os.setxattr(f, "user.snapvault", b"\x00binary value\xff")
        os.setxattr(f.parent, "user.dir", b"on a directory")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    m = sv.Engine(local_repo).backup([f.parent])
    out = tmp_path / "out" / os.path.relpath(f.parent, "/")
    sv.Restorer(local_repo).restore(m.id, tmp_path / "out")
    assert os.getxattr(out / "f", "user.snapvault") == b"\x00binary value\xff"
    assert os.getxattr(out, "user.dir") == b"on a directory"


# -- the format-level repository and the public handle --------------------------------------------


def test_init_and_open_return_the_class_they_are_called_on(tmp_path: Path) -> None:
    from snapvault.handle import Repository as Handle
    from snapvault.repository import Repository as FormatRepository

    url = str(tmp_path / "r")
    assert sv.Repository is Handle
    assert type(sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)) is Handle
    assert type(sv.Repository.open(url, PASSWORD)) is Handle
    plain = FormatRepository.open(url, PASSWORD)
    assert type(plain) is FormatRepository
    # A format-level repository serves every layer that reads the format; the handle adds the
    # conveniences that call those layers, so the repository layer never calls up.
    for name in (
        "check",
        "copy_snapshots",
        "save_policy",
        "load_policy",
        "policies",
        "broken_policies",
        "remove_policy",
    ):
        assert not hasattr(plain, name), name
        assert callable(getattr(Handle, name)), name
    assert sv.Engine(plain).backup([write(tmp_path / "src" / "f", "x")]).id in plain.snapshot_ids()


def test_the_handle_copies_into_a_format_level_repository(local_repo: sv.Repository, tmp_path: Path) -> None:
    from snapvault.repository import Repository as FormatRepository

    m = sv.Engine(local_repo).backup([write(tmp_path / "src" / "f", "x")])
    sv.Repository.init(str(tmp_path / "dst"), PASSWORD, kdf=FAST_KDF)
    dst = FormatRepository.open(str(tmp_path / "dst"), PASSWORD)
    result = local_repo.copy_snapshots(dst, workers=1)
    assert [s for s, _ in result.copied] == [m.id]
    assert sv.Repository.open(str(tmp_path / "dst"), PASSWORD).check(read_data=True).ok
