"""Backup semantics: dedup, the parent shortcut, excludes, unreadable files, bounded growth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD, tree_at, write


def repo_bytes(repo: sv.Repository) -> int:
    return sum(e.size for prefix in ("data", "index", "snapshots") for e in repo.store.list(prefix))


def test_second_backup_of_same_tree_grows_repository_under_half_percent(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for i in range(40):
        write(src / f"dir{i % 5}" / f"f{i}.bin", os.urandom(50_000 + i))
    write(src / "big.bin", os.urandom(4 << 20))
    engine = sv.Engine(local_repo)
    engine.backup([src])
    first = repo_bytes(local_repo)
    engine.backup([src])
    assert repo_bytes(local_repo) - first < 0.005 * first
    # Even reading every file again (no metadata shortcut), storage deduplicates.
    mid = repo_bytes(local_repo)
    m = engine.backup([src], full=True)
    assert m.stats.bytes_read == m.stats.total_bytes > 0
    assert m.stats.data_blobs_added == 0
    assert repo_bytes(local_repo) - mid < 0.005 * first


def test_insert_in_middle_of_large_file_stores_only_its_neighbourhood(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    data = os.urandom(24 << 20)
    f = write(tmp_path / "src" / "big.bin", data)
    engine = sv.Engine(local_repo)
    engine.backup([f.parent])
    before = repo_bytes(local_repo)
    mid = len(data) // 2
    f.write_bytes(data[:mid] + os.urandom(8 << 10) + data[mid:])
    m = engine.backup([f.parent])
    growth = repo_bytes(local_repo) - before
    assert growth < 12 << 20, growth
    assert m.stats.files_changed == 1


def test_dedup_within_and_across_files(tmp_path: Path) -> None:
    small = sv.ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10)
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, chunker=small)
    blob = os.urandom(3 << 20)
    src = tmp_path / "src"
    write(src / "a", blob)
    write(src / "b", blob)
    write(src / "c", blob + blob)
    m = sv.Engine(repo).backup([src])
    assert m.stats.bytes_read == 4 * len(blob)
    # Four copies cost one, plus the chunks around the junction in "c".
    assert len(blob) <= m.stats.bytes_added < 1.2 * len(blob)


def test_parent_shortcut_reads_only_changed_files(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(10):
        write(src / f"f{i}", os.urandom(10_000))
    engine = sv.Engine(local_repo)
    first = engine.backup([src])
    second = engine.backup([src])
    assert second.parent == first.id
    assert second.stats.bytes_read == 0
    assert second.stats.files_unchanged == 10
    assert tree_at(local_repo, second, src) == tree_at(local_repo, first, src)
    write(src / "f3", os.urandom(12_345))
    third = engine.backup([src])
    assert third.stats.bytes_read == 12_345
    assert (third.stats.files_changed, third.stats.files_unchanged) == (1, 9)
    no_parent = engine.backup([src], parent=None)
    assert no_parent.parent is None
    assert no_parent.stats.bytes_read == no_parent.stats.total_bytes


def test_exclude_patterns_are_gitignore_style(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel in ("keep.txt", "x.tmp", "sub/y.tmp", "build/out.o", "sub/build/z", "sub/keep.tmp"):
        write(src / rel, rel)
    m = sv.Engine(local_repo).backup([src], exclude=["*.tmp", "/build/", "!sub/keep.tmp"])
    from snapvault.maintenance.browse import walk_snapshot

    prefix = os.path.relpath(src, "/") + "/"
    names = sorted(p[len(prefix) :] for p, n in walk_snapshot(local_repo, m) if p.startswith(prefix))
    assert names == ["keep.txt", "sub", "sub/build", "sub/build/z", "sub/keep.tmp"]
    assert m.excludes == ["*.tmp", "/build/", "!sub/keep.tmp"]


def test_manifest_records_time_host_tags_and_paths(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "f", "x").parent
    when = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    m = sv.Engine(local_repo).backup([src], tags=["b", "a", "a"], hostname="box", now=when)
    loaded = local_repo.load_manifest(m.id)
    assert loaded == m
    assert (loaded.time, loaded.hostname, loaded.tags, loaded.paths) == (when, "box", ["a", "b"], [str(src)])
    assert loaded.program_version == sv.__version__


def test_missing_source_writes_nothing(local_repo: sv.Repository, tmp_path: Path) -> None:
    with pytest.raises(sv.SourceError) as info:
        sv.Engine(local_repo).backup([tmp_path / "nope"])
    assert isinstance(info.value, OSError)
    assert local_repo.snapshot_ids() == []
    assert list(local_repo.store.list("data")) == []


def test_nested_sources_are_stored_once(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "inner" / "f", "x")
    m = sv.Engine(local_repo).backup([src, src / "inner"])
    assert m.paths == [str(src)]


_CHILD = """
import json, sys
import snapvault as sv
repo = sv.Repository.open(sys.argv[1], sys.argv[2])
m = sv.Engine(repo).backup([sys.argv[3]])
print(json.dumps({"id": m.id, "errors": [e.path for e in m.errors], "files": m.stats.total_files}))
"""


def test_unreadable_file_is_recorded_and_backup_goes_on(
    local_repo: sv.Repository, repo_path: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "ok.txt", "readable")
    write(src / "locked.txt", "secret", mode=0o000)
    cmd = [sys.executable, "-c", _CHILD, repo_path, PASSWORD, str(src)]
    if os.geteuid() == 0:
        # Root reads everything; run the backup without the capabilities that let it.
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *cmd]
    result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    assert result["errors"] == [str(src / "locked.txt")]
    assert result["files"] == 1
    assert local_repo.load_manifest(result["id"]).errors[0].error == "Permission denied"
    assert local_repo.check(read_data=True).ok


# -- two entry points, one settings value ----------------------------------------------------------


def test_both_entry_points_share_one_settings_value(local_repo: sv.Repository, tmp_path: Path) -> None:
    import random

    from snapvault.archiver.settings import BackupSettings

    write(tmp_path / "src" / "f", "x")
    times = iter([datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(1, 20)])
    settings = BackupSettings(workers=1, max_pending_bytes=1 << 20, clock=lambda: next(times), rng=random.Random(5))
    engine = sv.Engine(local_repo, settings=settings)
    assert engine.settings is settings
    m = engine.backup([tmp_path / "src"])
    p = engine.run_policy(sv.Policy(name="p", sources=[str(tmp_path / "src")]))
    # Each read the same clock: the backup took the first hour, the policy run the later ones.
    assert m.time.hour == 1
    assert p.time.hour == 2
    with pytest.raises(sv.ConfigError, match="either settings"):
        sv.Engine(local_repo, settings=settings, workers=2)
    with pytest.raises(sv.ConfigError):
        BackupSettings(workers=0)
    assert sv.Engine(local_repo, workers=0).settings.workers >= 1  # 0 means the default, as before


def test_jobs_for_paths_and_for_policies(local_repo: sv.Repository, tmp_path: Path) -> None:
    write(tmp_path / "src" / "f", "x" * 1000)
    engine = sv.Engine(local_repo)
    pol = sv.Policy(name="nightly", sources=[str(tmp_path / "src")])
    by_policy = engine.submit_policy(pol)
    assert by_policy.result(30).policy == "nightly"
    assert by_policy.name == "nightly"
    old_style = engine.submit(pol)  # a Policy given to submit still runs as the policy
    assert old_style.result(30).policy == "nightly"
    by_paths = engine.submit([tmp_path / "src"])
    assert by_paths.result(30).policy is None
    assert by_paths.progress.files_total == 1


_PATHS_ONLY = """
import sys
import snapvault as sv
repo = sv.Repository.open(sys.argv[1], sys.argv[2])
sv.Engine(repo).backup([sys.argv[3]])
print("snapvault.policy.model" in sys.modules, "snapvault.engine" in sys.modules)
"""


def test_a_backup_of_paths_does_not_load_the_policy_layer(
    repo_path: str, local_repo: sv.Repository, tmp_path: Path
) -> None:
    write(tmp_path / "src" / "f", "x")
    out = subprocess.run(
        [sys.executable, "-c", _PATHS_ONLY, repo_path, PASSWORD, str(tmp_path / "src")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["False", "True"]
