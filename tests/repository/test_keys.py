"""Key files: several passwords open one repository, and removing a key file (or changing the
password of the one in use) takes exactly that password away, never the last way in."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import blake3
import pytest

import snapvault as sv
from snapvault.repository import layout
from snapvault.repository.keys import AmbiguousKey, KeyInfo, KeyNotFound, KeyRemovalRefused, resolve_key
from tests.conftest import FAST_KDF, PASSWORD, write

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SECOND = "a second password"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _key_files(repo: sv.Repository) -> list[str]:
    return [layout.name_of(k) for k in repo.list_keys(layout.KEYS)]


def _listed(repo: sv.Repository) -> list[KeyInfo]:
    # Bound to a name first: ruff's SIM118 takes ``for k in _listed(repo)`` for a dict's keys.
    return repo.keys()


def _backup(repo: sv.Repository, tmp_path: Path, text: str) -> str:
    src = write(tmp_path / "src" / text / "f.txt", text).parent
    return sv.Engine(repo).backup([str(src)], now=T0, parent=None).id


def _restored_text(repo: sv.Repository, sid: str, tmp_path: Path, name: str) -> str:
    out = tmp_path / "out" / name
    result = sv.Restorer(repo).restore(sid, out)
    assert result.ok
    (f,) = (p for p in out.rglob("f.txt"))
    return f.read_text()


@pytest.fixture
def two_keys(local_repo: sv.Repository) -> tuple[sv.Repository, KeyInfo]:
    info = local_repo.add_key(SECOND, label="laptop", kdf=FAST_KDF, now=T0)
    return local_repo, info


def test_two_keys_open_the_same_repository(two_keys: tuple[sv.Repository, KeyInfo], tmp_path: Path) -> None:
    repo, second = two_keys
    sid = _backup(repo, tmp_path, "written with the first key")
    first = sv.Repository.open(repo.url, PASSWORD)
    other = sv.Repository.open(repo.url, SECOND)
    assert first.key_id == repo.key_id != other.key_id == second.id
    assert other.master_keys == repo.master_keys
    assert _restored_text(other, sid, tmp_path, "a") == "written with the first key"
    # And the other way round: what the second key writes, the first reads.
    sid2 = _backup(other, tmp_path, "written with the second key")
    assert _restored_text(first, sid2, tmp_path, "b") == "written with the second key"
    assert sorted(_key_files(repo)) == sorted([repo.key_id, second.id])


def test_removing_a_key_makes_its_password_fail(two_keys: tuple[sv.Repository, KeyInfo]) -> None:
    repo, second = two_keys
    repo.remove_key(second.id)
    with pytest.raises(sv.WrongPassword):
        sv.Repository.open(repo.url, SECOND)
    assert sv.Repository.open(repo.url, PASSWORD).key_id == repo.key_id
    assert [k.id for k in _listed(repo)] == [repo.key_id]


def test_the_last_key_is_never_removed(local_repo: sv.Repository) -> None:
    with pytest.raises(KeyRemovalRefused, match="last key file"):
        local_repo.remove_key(local_repo.key_id or "", force=True)
    assert _key_files(local_repo) == [local_repo.key_id]
    assert sv.Repository.open(local_repo.url, PASSWORD).key_id == local_repo.key_id


def test_the_key_in_use_is_removed_only_with_force(two_keys: tuple[sv.Repository, KeyInfo], tmp_path: Path) -> None:
    repo, second = two_keys
    current = repo.key_id or ""
    with pytest.raises(KeyRemovalRefused, match="in use") as refused:
        repo.remove_key(current)
    assert refused.value.key_id == current
    assert current in _key_files(repo)

    repo.remove_key(current[:10], force=True)
    assert _key_files(repo) == [second.id]
    with pytest.raises(sv.WrongPassword):
        sv.Repository.open(repo.url, PASSWORD)
    # The handle already holds the master keys: it goes on reading and writing.
    sid = _backup(repo, tmp_path, "after the removal")
    assert _restored_text(sv.Repository.open(repo.url, SECOND), sid, tmp_path, "a") == "after the removal"
    # The removed key is no longer listed, so nothing is marked current.
    assert [(k.id, k.current) for k in _listed(repo)] == [(second.id, False)]


def test_change_password(two_keys: tuple[sv.Repository, KeyInfo], tmp_path: Path) -> None:
    repo, second = two_keys
    sid = _backup(repo, tmp_path, "kept across the change")
    old_id = repo.key_id
    office_key = repo.add_key("third", label="office", kdf=FAST_KDF, now=T0)
    office = sv.Repository.open(repo.url, "third")

    new = office.change_password("a brand new password", now=T0 + timedelta(days=1))
    assert new.current
    assert office.key_id == new.id != office_key.id
    # The label and the Argon2 parameters are the old key file's unless given.
    assert (new.label, new.kdf, new.created) == ("office", FAST_KDF, T0 + timedelta(days=1))
    with pytest.raises(sv.WrongPassword):
        sv.Repository.open(repo.url, "third")
    reopened = sv.Repository.open(repo.url, "a brand new password")
    assert reopened.key_id == new.id
    assert _restored_text(reopened, sid, tmp_path, "a") == "kept across the change"
    # Only the key in use was replaced: the other two still open.
    assert sorted(_key_files(repo)) == sorted([old_id, second.id, new.id])
    assert sv.Repository.open(repo.url, SECOND).key_id == second.id
    assert [k.id for k in _listed(office) if k.current] == [new.id]


def test_change_password_with_a_new_label_and_kdf(local_repo: sv.Repository) -> None:
    kdf = sv.KdfParams(memory_kib=128, iterations=2, lanes=1)
    new = local_repo.change_password(b"bytes password", label="renamed", kdf=kdf, now=T0)
    assert _key_files(local_repo) == [new.id]
    (listed,) = local_repo.keys()
    assert (listed.label, listed.kdf, listed.current) == ("renamed", kdf, True)
    assert sv.Repository.open(local_repo.url, "bytes password").key_id == new.id


def test_change_password_after_the_key_in_use_was_removed_only_adds(
    two_keys: tuple[sv.Repository, KeyInfo],
) -> None:
    repo, second = two_keys
    repo.remove_key(repo.key_id or "", force=True)
    new = repo.change_password("fresh", now=T0)
    assert sorted(_key_files(repo)) == sorted([second.id, new.id])
    # With the old key file gone its parameters are unknown: the default ones are used.
    assert new.kdf == sv.KdfParams()


def test_labels_and_times_round_trip(local_repo: sv.Repository) -> None:
    berlin = timezone(timedelta(hours=2))
    when = datetime(2026, 7, 4, 12, 0, 0, 123456, tzinfo=berlin)
    label = "Büro-Laptop 🔑 (rotated)"
    info = local_repo.add_key(SECOND, label=label, kdf=FAST_KDF, now=when)
    assert info.created == when
    assert info.created.tzinfo == UTC
    listed = {k.id: k for k in _listed(local_repo)}[info.id]
    assert listed == info
    assert listed.short_id == info.id[:8]
    assert listed.readable
    doc = json.loads((Path(local_repo.url) / "keys" / info.id).read_text())
    assert (doc["label"], doc["created"]) == (label, "2026-07-04T10:00:00.123456Z")
    # The key file written by init says nothing of either; it lists first, with neither.
    first = local_repo.keys()[0]
    assert (first.id, first.label, first.created, first.current) == (local_repo.key_id, "", None, True)


@pytest.mark.parametrize(
    ("label", "now", "password", "kdf", "match"),
    [
        ("x" * 257, T0, SECOND, FAST_KDF, "longer than 256"),
        ("two\nlines", T0, SECOND, FAST_KDF, "control character"),
        ("\x1b[31mred", T0, SECOND, FAST_KDF, "control character"),
        ("ok", datetime(2026, 3, 1), SECOND, FAST_KDF, "timezone-aware"),  # naive on purpose
        ("ok", T0, "", FAST_KDF, "empty"),
        ("ok", T0, SECOND, sv.KdfParams(memory_kib=64, iterations=65, lanes=1), "ceiling"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    local_repo: sv.Repository, label: str, now: datetime, password: str, kdf: sv.KdfParams, match: str
) -> None:
    with pytest.raises(sv.ConfigError, match=match):
        local_repo.add_key(password, label=label, kdf=kdf, now=now)
    assert _key_files(local_repo) == [local_repo.key_id]


def test_a_label_of_256_characters_is_taken(local_repo: sv.Repository) -> None:
    info = local_repo.add_key(SECOND, label="é" * 256, kdf=FAST_KDF, now=T0)
    assert {k.id: k.label for k in _listed(local_repo)}[info.id] == "é" * 256


def _plant(repo: sv.Repository, name: str, data: bytes) -> None:
    assert repo.store.put_if_absent(layout.object_key(layout.KEYS, name), data)


def test_prefixes_resolve_and_ambiguity_is_an_error(two_keys: tuple[sv.Repository, KeyInfo]) -> None:
    repo, second = two_keys
    assert resolve_key(repo, second.id[:4]).id == second.id
    assert resolve_key(repo, second.id.upper()).id == second.id
    # A stray file sharing the first six digits: six are ambiguous, seven are not.
    twin = second.id[:6] + ("0" if second.id[6] != "0" else "1") + "f" * 57
    _plant(repo, twin, b"stray bytes")
    with pytest.raises(AmbiguousKey, match="matches 2 key files") as ambiguous:
        repo.remove_key(second.id[:6])
    assert isinstance(ambiguous.value, KeyNotFound)
    assert isinstance(ambiguous.value, LookupError)
    repo.remove_key(second.id[:7])
    assert second.id not in _key_files(repo)
    for ref in ("abc", "wxyz1234", ""):
        with pytest.raises(KeyNotFound, match="not a key ID"):
            repo.remove_key(ref)
    missing = "f" * 64 if not repo.key_id or repo.key_id[0] != "f" else "0" * 64
    with pytest.raises(KeyNotFound, match="no key file matches"):
        repo.remove_key(missing)


def test_unreadable_key_files_are_listed_and_removable_but_never_the_last(local_repo: sv.Repository) -> None:
    # A file not matching its name, and a well-named key file whose label would drive a terminal.
    _plant(local_repo, "ab" * 32, b"junk")
    doc = json.loads((Path(local_repo.url) / "keys" / (local_repo.key_id or "")).read_text())
    doc["label"] = "\x1b]0;owned\x07"
    hostile = json.dumps(doc).encode()
    hostile_id = blake3.blake3(hostile).hexdigest()
    _plant(local_repo, hostile_id, hostile)

    listed = {k.id: k for k in _listed(local_repo)}
    assert set(listed) == {local_repo.key_id, "ab" * 32, hostile_id}
    assert "does not match its name" in (listed["ab" * 32].error or "")
    assert "control character" in (listed[hostile_id].error or "")
    assert not listed[hostile_id].readable
    assert listed[hostile_id].label == ""
    # It still opens (a reader ignores the label): it is only the listing that will not show it.
    assert sv.Repository.open(local_repo.url, PASSWORD).key_id in {local_repo.key_id, hostile_id}

    # Neither counts as another way in.
    with pytest.raises(KeyRemovalRefused, match="last key file"):
        local_repo.remove_key(local_repo.key_id or "", force=True)
    local_repo.remove_key("abab")
    local_repo.remove_key(hostile_id)
    assert _key_files(local_repo) == [local_repo.key_id]


def test_an_unencrypted_repository_has_no_passwords_to_manage(tmp_path: Path) -> None:
    repo = sv.Repository.init(str(tmp_path / "plain"), encryption="none")
    (only,) = repo.keys()
    assert (only.id, only.kdf, only.current, only.error) == (repo.key_id, None, True, None)
    for call in (
        lambda: repo.add_key(SECOND, now=T0),
        lambda: repo.remove_key(repo.key_id or "", force=True),
        lambda: repo.change_password(SECOND, now=T0),
    ):
        with pytest.raises(sv.ConfigError, match="NOT encrypted"):
            call()
    assert _key_files(repo) == [repo.key_id]


@pytest.mark.parametrize("name", ["repo-v1", "repo-v1-plain"])
def test_key_files_of_the_golden_repositories_list(tmp_path: Path, name: str) -> None:
    copy = tmp_path / name
    shutil.copytree(FIXTURES / name, copy)
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    repo = sv.Repository.open(str(copy), expected["password"])
    (only,) = repo.keys()
    assert (only.label, only.created, only.current, only.error) == ("", None, True, None)
    assert only.kdf == (sv.KdfParams(1024, 1, 1) if repo.encrypted else None)
    if repo.encrypted:
        # A key added to an old repository sits beside the old key file, which keeps opening.
        added = repo.add_key(SECOND, label="new", kdf=FAST_KDF, now=T0)
        assert sv.Repository.open(str(copy), SECOND).key_id == added.id
        assert sv.Repository.open(str(copy), expected["password"]).key_id == only.id
