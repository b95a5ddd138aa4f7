"""One manifest the repository's keys cannot open hides no other snapshot (issue #17)."""

from __future__ import annotations

from pathlib import Path

import pytest

import snapvault as sv
from snapvault.repository import layout
from tests.conftest import FAST_KDF, PASSWORD, write


def _foreign_manifest(tmp_path: Path, into: sv.Repository) -> str:
    """Back up in another repository and copy its snapshot object into ``into``."""
    other = sv.Repository.init(str(tmp_path / "other"), PASSWORD, kdf=FAST_KDF)
    src = write(tmp_path / "elsewhere" / "f", "elsewhere").parent
    sid = sv.Engine(other).backup([str(src)]).id
    key = layout.snapshot_key(sid)
    into.store.put_if_absent(key, other.store.get(key))
    return sid


@pytest.fixture
def repo_with_a_foreign_manifest(local_repo: sv.Repository, tmp_path: Path) -> tuple[sv.Repository, str, str]:
    src = write(tmp_path / "mine" / "f", "mine").parent
    good = sv.Engine(local_repo).backup([str(src)]).id
    return local_repo, good, _foreign_manifest(tmp_path, local_repo)


def test_snapshots_lists_the_readable_and_names_the_rest(
    repo_with_a_foreign_manifest: tuple[sv.Repository, str, str],
) -> None:
    repo, good, foreign = repo_with_a_foreign_manifest
    assert [m.id for m in repo.snapshots()] == [good]
    unreadable = repo.unreadable_snapshots()
    assert [sid for sid, _ in unreadable] == [foreign]
    assert isinstance(unreadable[0][1], sv.IntegrityError)


def test_latest_and_prefixes_resolve_over_the_readable(
    repo_with_a_foreign_manifest: tuple[sv.Repository, str, str],
) -> None:
    repo, good, foreign = repo_with_a_foreign_manifest
    assert repo.resolve("latest").id == good
    assert repo.resolve(good[:8]).id == good
    with pytest.raises(sv.IntegrityError):
        repo.resolve(foreign)  # asked for by name, it is reported, not skipped


def test_a_prefix_shared_with_an_unreadable_manifest_still_finds_the_readable(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = write(tmp_path / "mine" / "f", "mine").parent
    good = sv.Engine(local_repo).backup([str(src)]).id
    junk = b"not a manifest"
    twin = good[:6] + "0" * (len(good) - 6)
    local_repo.store.put_if_absent(layout.snapshot_key(twin), junk)
    assert local_repo.resolve(good[:6]).id == good
    assert [sid for sid, _ in local_repo.unreadable_snapshots()] == [twin]


def test_check_still_reports_an_unreadable_manifest(
    repo_with_a_foreign_manifest: tuple[sv.Repository, str, str],
) -> None:
    repo, _, foreign = repo_with_a_foreign_manifest
    report = repo.check()
    assert not report.ok
    assert any(p.snapshot == foreign or foreign in p.message for p in report.problems)
