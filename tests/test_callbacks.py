"""The fsspec ``Callback`` of every long call: a size once the total is known, updates that
only grow, and ``value == size`` when the call completes, equal to what the call did."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pytest
from fsspec.callbacks import Callback

import snapvault as sv
from snapvault.pipeline.ids import BlobType
from snapvault.repository import layout
from tests.conftest import FAST_KDF, PASSWORD, write

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


class Recorder(Callback):  # type: ignore[misc]
    """A real fsspec callback that remembers every size and every value it was told."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.values: list[int] = []
        # The size in force when the first update came (None: no size yet).
        self.size_at_first_update: int | None = None

    def set_size(self, size: int) -> None:
        self.sizes.append(size)
        super().set_size(size)

    def relative_update(self, inc: int = 1) -> None:
        if not self.values:
            self.size_at_first_update = self.size
        super().relative_update(inc)
        self.values.append(self.value)

    def absolute_update(self, value: int) -> None:
        super().absolute_update(value)
        self.values.append(self.value)

    def assert_complete(self, expected: int) -> None:
        """Values only grew, and the run ended at ``expected`` out of ``expected``."""
        assert self.values == sorted(self.values)
        assert (self.value, self.size) == (expected, expected)


def tree(root: Path, n: int = 9) -> int:
    """Files under ``root``; their total bytes."""
    total = 0
    for i in range(n):
        data = os.urandom(3000 + 1711 * i)
        write(root / f"d{i % 3}" / f"f{i}.bin", data)
        total += len(data)
    return total


# -- backup --------------------------------------------------------------------------------------


def test_backup_counts_every_byte_read_against_the_scanned_size(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    cb = Recorder()
    m = sv.Engine(local_repo).backup([tmp_path / "src"], callback=cb)
    assert cb.size_at_first_update == total  # the scan's size came before any byte
    assert m.stats.total_bytes == total
    cb.assert_complete(total)
    # Unread files (the parent has them) count too: the next run reaches the same total.
    again = Recorder()
    sv.Engine(local_repo).backup([tmp_path / "src"], callback=again)
    assert sv.Repository.open(local_repo.url, PASSWORD).snapshots()[-1].stats.files_unchanged == 9
    again.assert_complete(total)


def test_a_backup_that_leaves_files_out_ends_at_what_it_covered(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    write(tmp_path / "src" / "big.bin", os.urandom(200_000))
    cb = Recorder()
    m = sv.Engine(local_repo).backup([tmp_path / "src"], exclude_larger_than="100K", callback=cb)
    # The scan applies only exclude patterns: its estimate held the big file; the end does not.
    assert cb.sizes[0] == total + 200_000
    assert m.stats.total_bytes == total
    cb.assert_complete(total)


def test_a_url_backup_has_no_early_size_and_ends_complete(local_repo: sv.Repository) -> None:
    fs = fsspec.filesystem("memory")
    root = f"/cb-{os.getpid()}"
    total = 0
    for i in range(4):
        data = os.urandom(5000 * (i + 1))
        fs.pipe(f"{root}/o{i}", data)
        total += len(data)
    try:
        cb = Recorder()
        sv.Engine(local_repo).backup([f"memory://{root}"], callback=cb)
        assert cb.size_at_first_update is None
        cb.assert_complete(total)
    finally:
        fs.rm(root, recursive=True)


def test_run_policy_and_the_policy_form_of_backup_take_the_callback(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    policy = sv.Policy(name="p", sources=[str(tmp_path / "src")], backup_type="full")
    cb = Recorder()
    sv.Engine(local_repo).run_policy(policy, callback=cb)
    assert cb.size_at_first_update == total
    cb.assert_complete(total)
    old = Recorder()
    sv.Engine(local_repo).backup(policy, callback=old)  # type: ignore[arg-type]
    old.assert_complete(total)


def test_a_cancelled_backup_is_not_made_complete(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    cb = Recorder()
    with pytest.raises(sv.JobCancelled):
        sv.Engine(local_repo).backup([tmp_path / "src"], callback=cb, should_stop=lambda: cb.value > 0)
    assert cb.sizes == [total]
    assert 0 < cb.value < total


# -- restore -------------------------------------------------------------------------------------


def test_restore_sets_the_planned_bytes_first_and_ends_at_them(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    m = sv.Engine(local_repo).backup([tmp_path / "src"])
    cb = Recorder()
    r = sv.Restorer(local_repo, workers=4).restore(m, tmp_path / "out", callback=cb)
    assert cb.sizes == [total]
    assert r.bytes_written == total
    cb.assert_complete(total)
    # A selective restore counts what it selects.
    some = Recorder()
    r = sv.Restorer(local_repo).restore(m, tmp_path / "some", include=["**/d1/**"], callback=some)
    assert some.sizes == [r.bytes_written]
    assert 0 < r.bytes_written < total
    some.assert_complete(r.bytes_written)


def test_restore_counts_a_damaged_file_as_done(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    m = sv.Engine(local_repo).backup([tmp_path / "src"])
    trees = {loc.pack_id for _, loc in local_repo.index.items() if loc.type == BlobType.TREE}
    data = sorted({loc.pack_id for _, loc in local_repo.index.items()} - trees)
    path = Path(local_repo.url) / layout.pack_key(data[0])
    path.write_bytes(bytes(path.stat().st_size))  # a pack of data blobs only, zeroed
    cb = Recorder()
    r = sv.Restorer(local_repo).restore(m, tmp_path / "out", callback=cb)
    assert not r.ok
    assert r.bytes_written < total
    assert cb.sizes == [total]
    cb.assert_complete(total)


# -- check ---------------------------------------------------------------------------------------


def test_check_counts_snapshots_or_the_bytes_of_packs_read(local_repo: sv.Repository, tmp_path: Path) -> None:
    tree(tmp_path / "src")
    engine = sv.Engine(local_repo)
    engine.backup([tmp_path / "src"])
    write(tmp_path / "src" / "new.bin", os.urandom(9000))
    engine.backup([tmp_path / "src"])
    cb = Recorder()
    assert local_repo.check(callback=cb).ok
    assert cb.sizes == [2]
    cb.assert_complete(2)
    packs = sum(size for _, size in local_repo.packs())
    data = Recorder()
    assert local_repo.check(read_data=True, callback=data).ok
    assert data.sizes == [packs]
    data.assert_complete(packs)
    subset = Recorder()
    report = local_repo.check(read_data_subset=0.5, seed=1, callback=subset)
    assert 0 < report.packs_read < report.packs
    assert 0 < subset.sizes[0] < packs
    subset.assert_complete(subset.sizes[0])


def test_a_pack_that_cannot_be_read_whole_still_counts_as_done(local_repo: sv.Repository, tmp_path: Path) -> None:
    tree(tmp_path / "src")
    sv.Engine(local_repo).backup([tmp_path / "src"])
    packs = dict(local_repo.packs())
    name = max(packs, key=lambda n: packs[n])
    path = Path(local_repo.url) / "data" / name[:2] / name
    path.write_bytes(path.read_bytes()[: packs[name] // 2])  # cut short after it was listed
    cb = Recorder()
    report = local_repo.check(read_data=True, callback=cb)
    assert not report.ok
    assert cb.sizes[0] == sum(size for _, size in local_repo.packs())
    cb.assert_complete(cb.sizes[0])


# -- copy ----------------------------------------------------------------------------------------


def test_copy_counts_the_file_bytes_of_each_snapshot_copied(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    engine = sv.Engine(local_repo)
    first = engine.backup([tmp_path / "src"])
    write(tmp_path / "src" / "d0" / "more.bin", os.urandom(4000))
    second = engine.backup([tmp_path / "src"])
    dst = sv.Repository.init(str(tmp_path / "dst"), PASSWORD, kdf=FAST_KDF)
    cb = Recorder()
    result = local_repo.copy_snapshots(dst, callback=cb)
    assert len(result.copied) == 2
    # Trees the two snapshots share are counted for each: both totals, as their manifests say.
    assert cb.sizes == [first.stats.total_bytes + second.stats.total_bytes] == [2 * total + 4000]
    cb.assert_complete(2 * total + 4000)
    nothing = Recorder()
    assert local_repo.copy_snapshots(dst, callback=nothing).skipped
    nothing.assert_complete(0)


def test_copy_ends_complete_when_a_manifest_miscounts(local_repo: sv.Repository, tmp_path: Path) -> None:
    total = tree(tmp_path / "src")
    m = sv.Engine(local_repo).backup([tmp_path / "src"])
    # The recorded total is only an estimate of what the trees hold.
    wrong = m.model_copy(update={"stats": m.stats.model_copy(update={"total_bytes": 10})})
    dst = sv.Repository.init(str(tmp_path / "dst"), PASSWORD, kdf=FAST_KDF)
    cb = Recorder()
    local_repo.copy_snapshots(dst, [wrong], callback=cb)
    assert cb.sizes[0] == 10
    cb.assert_complete(total)


# -- prune ---------------------------------------------------------------------------------------


def test_prune_counts_the_packs_it_deletes_and_repacks(tmp_path: Path) -> None:
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    engine = sv.Engine(repo, workers=1)
    for i in range(24):
        write(tmp_path / "src" / f"f{i:02}.bin", os.urandom(200_000))
    engine.backup([tmp_path / "src"], now=T0)
    for i in range(0, 24, 2):
        os.remove(tmp_path / "src" / f"f{i:02}.bin")
    engine.backup([tmp_path / "src"], now=T0 + timedelta(hours=1))
    repo.forget([repo.snapshots()[0].id])
    dry = Recorder()
    assert repo.prune(now=T0 + timedelta(hours=2), dry_run=True, callback=dry).dry_run
    dry.assert_complete(0)
    cb = Recorder()
    result = repo.prune(now=T0 + timedelta(hours=2), max_repack=1.0, max_unused=0.0, callback=cb)
    repacked = result.marked["repack"].bytes
    assert repacked > 0
    assert result.deleted.bytes > 0
    assert result.rescued == 0
    # A repacked pack is read, then deleted: counted for each.
    cb.assert_complete(result.deleted.bytes + repacked)
    assert repo.check(read_data=True).ok


# -- disaster recovery ---------------------------------------------------------------------------


def _plan(tmp_path: Path, *, broken_replica: bool) -> sv.DRPlan:
    env = {"PW_P": "pw-p", "PW_A": "pw-a", "PW_B": "pw-b"}
    sites = {n: sv.Site(name=n, region=n, url=str(tmp_path / n), password_env=f"PW_{n.upper()}") for n in "pab"}
    base = sv.Repository.init(sites["p"].url, env["PW_P"], kdf=FAST_KDF)
    sv.Repository.init(sites["a"].url, env["PW_A"], kdf=FAST_KDF, copy_params_from=base)
    if not broken_replica:
        sv.Repository.init(sites["b"].url, env["PW_B"], kdf=FAST_KDF)
    plan = sv.DRPlan(name="web", primary=sites["p"], replicas=[sites["a"], sites["b"]], rpo="6h", rto="1h")
    plan.save(base, now=T0)
    return sv.DRPlan.load(base, "web").bind(env=env)


@pytest.mark.parametrize("broken_replica", [False, True])
def test_replicate_counts_the_bytes_copied_to_every_site(tmp_path: Path, broken_replica: bool) -> None:
    plan = _plan(tmp_path, broken_replica=broken_replica)
    total = tree(tmp_path / "src")
    sv.Engine(plan.primary_repository(T0)).backup([tmp_path / "src"], now=T0)
    cb = Recorder()
    result = plan.replicate(now=T0, callback=cb)
    assert [r.ok for r in result.sites] == [True, not broken_replica]
    # Site by site: the size grows by what each lacks as its copy starts.
    assert cb.sizes[0] == total
    cb.assert_complete(total if broken_replica else 2 * total)
    again = Recorder()
    plan.replicate(now=T0 + timedelta(minutes=1), callback=again)
    again.assert_complete(0)


def test_a_drill_counts_the_bytes_it_restores(tmp_path: Path) -> None:
    plan = _plan(tmp_path, broken_replica=False)
    total = tree(tmp_path / "src")
    sv.Engine(plan.primary_repository(T0)).backup([tmp_path / "src"], now=T0)
    plan.replicate(now=T0)
    cb = Recorder()
    assert plan.drill(site="b", now=T0, callback=cb).ok
    assert cb.sizes == [total]
    cb.assert_complete(total)
