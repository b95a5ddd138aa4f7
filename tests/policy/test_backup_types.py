"""Backup types of a policy (full, incremental, differential, snapshot) and its hooks."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.policy.hooks import hook_hash
from snapvault.policy.records import load_runs
from tests.conftest import FAST_KDF, PASSWORD, write

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def make_tree(src: Path) -> dict[str, bytes]:
    """A small tree with files of distinct sizes, one above the chunker's minimum."""
    files = {
        "a.txt": os.urandom(1_000),
        "b.txt": os.urandom(2_500),
        "sub/c.bin": os.urandom(40_000),
        "sub/deep/d.bin": os.urandom(600_000),
        "e.log": os.urandom(7),
    }
    for rel, data in files.items():
        write(src / rel, data)
    return files


def tree_size(files: dict[str, bytes]) -> int:
    return sum(len(v) for v in files.values())


def policy(src: Path, btype: str, name: str = "p", **kw: object) -> sv.Policy:
    return sv.Policy(name=name, sources=[str(src)], backup_type=btype, **kw)


def restored(repo: sv.Repository, snap: sv.Manifest, src: Path, target: Path) -> dict[str, bytes]:
    """Restore ``snap`` into ``target`` and return the files under ``src`` as a dict."""
    sv.Restorer(repo).restore(snap.id, target)
    root = target / str(src).lstrip("/")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- full ----------------------------------------------------------------------------------


def test_full_reads_every_byte_of_an_unchanged_tree(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    size = tree_size(files)
    engine = sv.Engine(local_repo)
    pol = policy(src, "full")
    m1 = engine.backup(pol, now=T0)
    assert m1.policy == "p"
    assert m1.backup_type == "full"
    assert m1.stats.files_new == len(files)
    assert m1.stats.bytes_read == m1.stats.total_bytes == size

    m2 = engine.backup(pol, now=T0 + timedelta(hours=1))
    assert m2.backup_type == "full"
    assert m2.parent == m1.id
    assert m2.stats.bytes_read == m2.stats.total_bytes == size
    # Read again with equal content: unchanged, and nothing new stored.
    assert m2.stats.files_unchanged == len(files)
    assert m2.stats.files_new == m2.stats.files_changed == 0
    assert m2.stats.data_blobs_added == 0

    m3 = engine.backup(pol, now=T0 + timedelta(hours=2))
    assert m3.stats.bytes_read == size
    assert restored(local_repo, m3, src, tmp_path / "out") == files


# -- incremental ---------------------------------------------------------------------------


def test_incremental_reads_only_changed_files(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo)
    pol = policy(src, "incremental")
    m1 = engine.backup(pol, now=T0)
    assert m1.backup_type == "incremental"
    assert m1.parent is None
    assert m1.stats.bytes_read == tree_size(files)

    # Unchanged tree: nothing read.
    m2 = engine.backup(pol, now=T0 + timedelta(hours=1))
    assert m2.parent == m1.id
    assert m2.stats.bytes_read == 0
    assert m2.stats.files_unchanged == len(files)
    assert m2.stats.total_bytes == tree_size(files)

    # Change two files (one with a new size), add one, remove one.
    files["a.txt"] = os.urandom(1_234)
    files["sub/c.bin"] = os.urandom(40_000)
    files["new.txt"] = b"brand new"
    for rel in ("a.txt", "sub/c.bin", "new.txt"):
        write(src / rel, files[rel])
    (src / "e.log").unlink()
    del files["e.log"]
    m3 = engine.backup(pol, now=T0 + timedelta(hours=2))
    assert m3.parent == m2.id
    assert m3.stats.bytes_read == 1_234 + 40_000 + len(b"brand new")
    assert m3.stats.files_changed == 2
    assert m3.stats.files_new == 1
    assert m3.stats.files_removed == 1
    assert m3.stats.files_unchanged == 2
    assert restored(local_repo, m3, src, tmp_path / "out") == files


def test_incremental_parent_is_the_policys_latest_snapshot(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    engine = sv.Engine(local_repo)
    m1 = engine.backup(policy(src, "incremental"), now=T0)
    # A snapshot of the same paths without a policy, and one of another policy, come later.
    plain = engine.backup([src], now=T0 + timedelta(minutes=1))
    other = engine.backup(policy(src, "incremental", name="other"), now=T0 + timedelta(minutes=2))
    assert plain.policy is None
    assert other.policy == "other"
    m2 = engine.backup(policy(src, "incremental"), now=T0 + timedelta(minutes=3))
    assert m2.parent == m1.id


# -- differential --------------------------------------------------------------------------


def test_differential_changes_are_relative_to_the_last_full(any_repo: sv.Repository, tmp_path: Path) -> None:
    local_repo = any_repo
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo)
    f = engine.backup(policy(src, "full"), now=T0)

    files["a.txt"] = os.urandom(1_111)
    write(src / "a.txt", files["a.txt"])
    i1 = engine.backup(policy(src, "incremental"), now=T0 + timedelta(hours=1))
    assert i1.parent == f.id
    assert i1.stats.files_changed == 1
    assert i1.stats.bytes_read == 1_111

    files["b.txt"] = os.urandom(2_222)
    write(src / "b.txt", files["b.txt"])
    d = engine.backup(policy(src, "differential"), now=T0 + timedelta(hours=2))
    assert d.backup_type == "differential"
    assert d.base == f.id
    assert d.parent == f.id
    # Both a (changed before I1) and b count as changed, relative to F.
    assert d.stats.files_changed == 2
    assert d.stats.files_unchanged == len(files) - 2
    assert d.stats.bytes_read == 1_111 + 2_222
    assert restored(local_repo, d, src, tmp_path / "out-d") == files

    # Another differential with no further change still reads what changed since F.
    d2 = engine.backup(policy(src, "differential"), now=T0 + timedelta(hours=3))
    assert d2.base == f.id
    assert d2.stats.files_changed == 2
    assert d2.stats.bytes_read == 1_111 + 2_222

    # A new full becomes the base of the next differential.
    f2 = engine.backup(policy(src, "full"), now=T0 + timedelta(hours=4))
    d3 = engine.backup(policy(src, "differential"), now=T0 + timedelta(hours=5))
    assert d3.base == f2.id
    assert d3.stats.files_changed == 0
    assert d3.stats.bytes_read == 0

    runs = load_runs(local_repo, "p")
    assert [r.backup_type for r in runs] == [
        "full",
        "incremental",
        "differential",
        "differential",
        "full",
        "differential",
    ]


def test_differential_without_a_full_runs_as_full(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo)
    inc = engine.backup(policy(src, "incremental"), now=T0)
    d = engine.backup(policy(src, "differential"), now=T0 + timedelta(hours=1))
    assert d.backup_type == "full"
    assert d.base is None
    assert d.stats.bytes_read == tree_size(files)
    assert d.stats.files_unchanged == len(files)
    assert inc.id != d.id
    # That recorded full is then the base of the next differential.
    d2 = engine.backup(policy(src, "differential"), now=T0 + timedelta(hours=2))
    assert d2.backup_type == "differential"
    assert d2.base == d.id
    assert load_runs(local_repo, "p")[1].backup_type == "full"


# -- snapshot ------------------------------------------------------------------------------


def _modifier(target: Path, times: int) -> tuple[list[int], object]:
    """A progress callback that appends to ``target`` on its first ``times`` reads of it."""
    done = [0]

    def cb(n: int, path: str) -> None:
        if path == str(target) and done[0] < times:
            done[0] += 1
            with open(target, "ab") as f:
                f.write(b"+changed")

    return done, cb


@pytest.mark.parametrize("rel", ["a.txt", "sub/deep/d.bin"])
def test_snapshot_rereads_a_file_modified_during_its_read(local_repo: sv.Repository, tmp_path: Path, rel: str) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    target = src / rel
    done, cb = _modifier(target, 1)
    m = sv.Engine(local_repo).backup(policy(src, "snapshot"), now=T0, progress=cb)  # type: ignore[arg-type]
    assert done[0] == 1
    assert m.backup_type == "snapshot"
    assert m.rereads >= 1
    assert m.inconsistent == []
    # The stored content is the file as it was after the change, not a torn read.
    files[rel] += b"+changed"
    assert target.read_bytes() == files[rel]
    assert restored(local_repo, m, src, tmp_path / "out") == files


def test_snapshot_rereads_up_to_three_times(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    target = src / "b.txt"
    _, cb = _modifier(target, 2)
    m = sv.Engine(local_repo).backup(policy(src, "snapshot"), now=T0, progress=cb)  # type: ignore[arg-type]
    assert m.rereads == 2
    assert m.inconsistent == []


def test_snapshot_lists_a_file_modified_on_every_read_as_inconsistent(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src)
    target = src / "sub" / "c.bin"
    done, cb = _modifier(target, 10_000)
    m = sv.Engine(local_repo).backup(policy(src, "snapshot"), now=T0, progress=cb)  # type: ignore[arg-type]
    assert done[0] == 4  # the first read and three re-reads
    assert m.rereads == 3
    assert m.inconsistent == [str(target)]
    assert local_repo.check().ok


def test_other_types_do_not_reread(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    target = src / "a.txt"
    done, cb = _modifier(target, 10_000)
    m = sv.Engine(local_repo).backup(policy(src, "incremental"), now=T0, progress=cb)  # type: ignore[arg-type]
    assert done[0] == 1
    assert m.rereads == 0
    # Not read again, but named: it grew during its read, and what was stored stops at the
    # size seen before the read.
    assert m.inconsistent == [str(target)]
    assert restored(local_repo, m, src, tmp_path / "out") == files


def test_snapshot_reads_like_incremental(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    engine = sv.Engine(local_repo)
    m1 = engine.backup(policy(src, "snapshot"), now=T0)
    assert m1.stats.bytes_read == tree_size(files)
    write(src / "b.txt", b"small change")
    m2 = engine.backup(policy(src, "snapshot"), now=T0 + timedelta(hours=1))
    assert m2.parent == m1.id
    assert m2.stats.bytes_read == len(b"small change")
    assert m2.rereads == 0


# -- hooks ---------------------------------------------------------------------------------


def test_callable_hooks_run_before_and_after_the_read(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    events: list[str] = []

    def read(n: int, path: str) -> None:
        events.append("read")

    pol = policy(
        src,
        "snapshot",
        pre_hooks=[lambda: events.append("pre1"), lambda: events.append("pre2")],
        post_hooks=[lambda: events.append("post")],
    )
    sv.Engine(local_repo).backup(pol, now=T0, progress=read)
    assert events[:2] == ["pre1", "pre2"]
    assert events[-1] == "post"
    assert "read" in events[2:-1]
    assert set(events[2:-1]) == {"read"}


def allowing(repo: sv.Repository, pol: sv.Policy) -> sv.Engine:
    """An engine that allows the policy's shell hooks (by default none runs)."""
    return sv.Engine(
        repo, allowed_hooks={hook_hash(h) for h in (*pol.pre_hooks, *pol.post_hooks) if isinstance(h, str)}
    )


def test_shell_pre_hook_output_is_in_the_snapshot(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    dump = src / "dump.sql"
    log = tmp_path / "hooks.log"
    pol = policy(
        src,
        "snapshot",
        pre_hooks=[f"echo 'CREATE TABLE t;' > '{dump}'", f"echo pre >> '{log}'"],
        post_hooks=[f"rm '{dump}'", f"echo post >> '{log}'"],
    )
    m = allowing(local_repo, pol).backup(pol, now=T0)
    assert log.read_text().split() == ["pre", "post"]
    assert not dump.exists()  # the post-hook removed it
    files["dump.sql"] = b"CREATE TABLE t;\n"
    assert restored(local_repo, m, src, tmp_path / "out") == files


def test_post_hooks_run_when_the_backup_fails(local_repo: sv.Repository, tmp_path: Path) -> None:
    marker = tmp_path / "post-ran"
    events: list[str] = []
    pol = sv.Policy(
        name="p",
        sources=[str(tmp_path / "missing")],
        pre_hooks=[lambda: events.append("pre")],
        post_hooks=[lambda: events.append("post"), f"touch '{marker}'"],
    )
    with pytest.raises(sv.SourceError):
        allowing(local_repo, pol).backup(pol, now=T0)
    assert events == ["pre", "post"]
    assert marker.exists()
    assert local_repo.snapshots() == []
    runs = load_runs(local_repo, "p")
    assert [r.status for r in runs] == ["failed"]
    assert "missing" in (runs[0].error or "")


def test_post_hooks_run_when_a_callable_pre_hook_fails(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    events: list[str] = []

    def boom() -> None:
        raise RuntimeError("database would not freeze")

    pol = policy(
        src,
        "snapshot",
        pre_hooks=[boom, lambda: events.append("never")],
        post_hooks=[lambda: events.append("post")],
    )
    with pytest.raises(sv.HookError, match="database would not freeze"):
        sv.Engine(local_repo).backup(pol, now=T0, progress=lambda n, p: events.append("read"))
    assert events == ["post"]  # later pre-hooks skipped, nothing read, post-hook ran
    assert local_repo.snapshots() == []
    assert [r.status for r in load_runs(local_repo, "p")] == ["failed"]


def test_post_hooks_run_when_a_shell_pre_hook_fails(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    marker = tmp_path / "post-ran"
    pol = policy(src, "full", pre_hooks=["echo cannot lock >&2; exit 3"], post_hooks=[f"touch '{marker}'"])
    with pytest.raises(sv.HookError, match="exited with 3: cannot lock"):
        allowing(local_repo, pol).backup(pol, now=T0)
    assert marker.exists()
    assert local_repo.snapshots() == []


def test_failing_post_hook_after_a_good_backup_keeps_the_snapshot(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    pol = policy(src, "incremental", post_hooks=["exit 1"])
    with pytest.raises(sv.HookError):
        allowing(local_repo, pol).backup(pol, now=T0)
    snaps = local_repo.snapshots()
    assert len(snaps) == 1
    assert snaps[0].policy == "p"
    assert [r.status for r in load_runs(local_repo, "p")] == ["completed"]


# -- other policy settings applied ----------------------------------------------------------


def test_policy_tags_excludes_and_compression(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    text = b"compressible line of text\n" * 20_000
    write(src / "keep.txt", text)
    write(src / "skip.tmp", b"excluded")
    engine = sv.Engine(local_repo)
    plain = engine.backup(policy(src, "full", name="plain", exclude=["*.tmp"], tags=["t1"], compression="none"), now=T0)
    assert plain.tags == ["t1"]
    assert plain.policy == "plain"
    assert plain.stats.total_files == 1
    assert plain.stats.total_bytes == len(text)
    assert plain.stats.bytes_stored >= len(text)

    other = sv.Repository.init(str(tmp_path / "repo2"), PASSWORD, kdf=FAST_KDF)
    packed = sv.Engine(other).backup(policy(src, "full", name="z", exclude=["*.tmp"], compression="zstd:3"), now=T0)
    assert packed.stats.bytes_stored < len(text) // 10
