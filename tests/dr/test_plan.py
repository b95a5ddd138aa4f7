"""DRPlan on three local repositories: replication to RPO-met, status against time given as a
parameter, real drills (bit-exact, failing on a deleted pack or a flipped byte with the pack and
path named), failover with the stale primary refused until failback, and a replicate run with
nothing new that reads no pack."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.dr.model import FailoverRecord
from snapvault.dr.records import load_records
from snapvault.storage import open_store
from snapvault.storage.wrappers import _Wrapper
from tests.conftest import FAST_KDF, write

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
ENV = {"PW_LOCAL": "pw-local", "PW_A": "pw-a", "PW_B": "pw-b"}


def _site(tmp_path: Path, name: str, env: str) -> sv.Site:
    return sv.Site(name=name, region=f"region-{name}", url=str(tmp_path / name), password_env=env)


@pytest.fixture
def plan(tmp_path: Path) -> sv.DRPlan:
    primary = _site(tmp_path, "local", "PW_LOCAL")
    sv.Repository.init(primary.url, ENV["PW_LOCAL"], kdf=FAST_KDF)
    base = sv.Repository.open(primary.url, ENV["PW_LOCAL"])
    sv.Repository.init(str(tmp_path / "a"), ENV["PW_A"], kdf=FAST_KDF, copy_params_from=base)
    sv.Repository.init(str(tmp_path / "b"), ENV["PW_B"], kdf=FAST_KDF)  # independent keys
    p = sv.DRPlan(
        name="web",
        primary=primary,
        replicas=[_site(tmp_path, "a", "PW_A"), _site(tmp_path, "b", "PW_B")],
        rpo="6h",
        rto="1h",
        policies=["nightly"],
    )
    p.save(base, now=T0)
    return sv.DRPlan.load(base, "web").bind(env=ENV)


def _backup(plan: sv.DRPlan, src: Path, when: datetime) -> sv.Manifest:
    repo = plan.primary_repository(when)
    return sv.Engine(repo).run_policy(sv.Policy(name="nightly", sources=[str(src)]), now=when)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for i in range(20):
        write(root / f"d{i % 3}" / f"f{i}.bin", os.urandom(5000 + i * 100))
    return root


def test_a_plan_round_trips_through_json_and_the_repository(plan: sv.DRPlan) -> None:
    again = sv.DRPlan.model_validate_json(plan.model_dump_json())
    assert again.model_dump() == plan.model_dump()
    assert again.rpo == timedelta(hours=6)
    assert "replicas" in sv.DRPlan.model_json_schema()["properties"]
    assert "pw-" not in plan.model_dump_json()  # references, never secrets
    with pytest.raises(sv.PlanNotFound):
        sv.DRPlan.load(plan.open_site("local"), "nope")


def test_replicate_brings_every_site_to_rpo_met_and_drills_restore_bit_exact(plan: sv.DRPlan, src: Path) -> None:
    m = _backup(plan, src, T0)
    before = plan.status(now=T0 + timedelta(minutes=5))
    assert [s.site for s in before.sites if any(o.verdict == "violated" for o in s.objectives)] == ["a", "b"]
    result = plan.replicate(now=T0 + timedelta(minutes=10))
    assert result.ok, result
    assert [(r.site, r.copied, r.lag_s) for r in result.sites] == [("a", 1, 0.0), ("b", 1, 0.0)]
    for name in ("a", "b"):
        drill = plan.drill(site=name, now=T0 + timedelta(minutes=20))
        assert drill.ok, drill.error
        assert drill.snapshot_time == m.time
        assert drill.files_restored == 20
        assert drill.bytes_restored == m.stats.total_bytes
        assert drill.rto_estimate_s is not None
        assert drill.rto_estimate_s < 3600
    status = plan.status(now=T0 + timedelta(hours=1))
    assert status.ok, status.violations
    assert {s.site: s.last_drill.ok for s in status.sites if s.last_drill} == {"a": True, "b": True}
    late = plan.status(now=T0 + timedelta(hours=7))
    assert not late.ok
    rpo = {s.site: s.objectives[0] for s in late.sites}
    assert rpo["a"].verdict == "violated"
    assert rpo["a"].margin_s == pytest.approx(3600)


def test_a_replicate_run_with_nothing_new_reads_no_pack(plan: sv.DRPlan, src: Path, tmp_path: Path) -> None:
    _backup(plan, src, T0)
    plan.replicate(now=T0)
    counted: list[str] = []

    class Counting(_Wrapper):
        def get(self, key: str) -> bytes:
            counted.append(key)
            return super().get(key)

        def get_range(self, key: str, offset: int, length: int) -> bytes:
            counted.append(key)
            return super().get_range(key, offset, length)

    opened = {
        s.name: sv.Repository.open(s.url, ENV[s.password_env or ""], store=Counting(open_store(s.url)))
        for s in plan.sites
    }
    again = plan.bind(env=ENV, repositories=opened).replicate(now=T0 + timedelta(hours=1))
    assert again.ok
    assert [(r.copied, r.skipped) for r in again.sites] == [(0, 1), (0, 1)]
    assert [k for k in counted if k.startswith("data/")] == []


def test_a_deleted_pack_or_a_flipped_byte_fails_the_drill_naming_pack_and_snapshot(
    plan: sv.DRPlan, src: Path, tmp_path: Path
) -> None:
    _backup(plan, src, T0)
    plan.replicate(now=T0)
    packs = sorted(p for p in (tmp_path / "a" / "data").rglob("*") if p.is_file())
    victim = max(packs, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 1
    victim.write_bytes(bytes(data))
    flipped = plan.drill(site="a", now=T0 + timedelta(minutes=1))
    assert not flipped.ok
    assert flipped.pack_id == victim.name
    assert flipped.snapshot_id is not None
    assert flipped.snapshot_id[:8] in (flipped.error or "")
    assert flipped.path is not None

    packs_b = sorted(p for p in (tmp_path / "b" / "data").rglob("*") if p.is_file())
    gone = max(packs_b, key=lambda p: p.stat().st_size)
    gone.unlink()
    missing = plan.drill(site="b", now=T0 + timedelta(minutes=2))
    assert not missing.ok
    assert missing.pack_id == gone.name
    assert "missing" in (missing.error or "")
    verdicts = {
        s.site: [o.verdict for o in s.objectives if o.objective == "rto"]
        for s in plan.status(now=T0 + timedelta(minutes=3)).sites
    }
    assert verdicts["a"] == ["failed"]
    assert verdicts["b"] == ["failed"]


def test_failover_moves_writes_and_the_old_primary_is_refused_until_failback(plan: sv.DRPlan, src: Path) -> None:
    _backup(plan, src, T0)
    plan.replicate(now=T0)
    seen: list[tuple[str, str]] = []
    hooked = plan.bind(env=ENV, hooks={"promote": [lambda **kw: seen.append((kw["stage"], kw["site"])) or "dns set"]})
    rec = hooked.failover(to="b", reason="region local lost", now=T0 + timedelta(hours=1))
    assert (rec.primary, rec.previous, rec.kind) == ("b", "local", "failover")
    assert seen == [("promote", "b")]
    assert [(h.stage, h.output) for h in rec.hooks] == [("promote", "dns set")]
    assert plan.primary_for(T0 + timedelta(hours=2)).name == "b"
    assert plan.primary_for(T0).name == "local"  # time is a parameter: before the failover

    write(src / "new.txt", "after the failover")
    m = _backup(plan, src, T0 + timedelta(hours=2))
    b = plan.open_site("b")
    assert m.id in {s.id for s in b.snapshots()}
    stale = plan.open_site("local")
    with pytest.raises(sv.StalePrimaryError, match="failed over to site 'b'"):
        sv.Engine(stale).run_policy(sv.Policy(name="nightly", sources=[str(src)]), now=T0 + timedelta(hours=3))
    # Not covered: another policy still backs up there.
    sv.Engine(stale).run_policy(sv.Policy(name="other", sources=[str(src)]), now=T0 + timedelta(hours=3))

    back = plan.failback(reason="local restored", now=T0 + timedelta(hours=4))
    assert (back.primary, back.kind) == ("local", "failback")
    assert m.time in {s.time for s in plan.open_site("local").snapshots()}  # caught up first
    sv.Engine(stale).run_policy(sv.Policy(name="nightly", sources=[str(src)]), now=T0 + timedelta(hours=5))


def test_a_failover_a_crash_left_on_one_site_only_resolves_and_status_repairs_it(plan: sv.DRPlan, src: Path) -> None:
    _backup(plan, src, T0)
    plan.replicate(now=T0)
    # What a kill -9 right after the first write leaves: the record on the new primary alone.
    a = plan.open_site("a")
    from snapvault.dr.records import save_record

    rec = FailoverRecord(
        id="f" * 32,
        plan="web",
        time=T0 + timedelta(hours=1),
        kind="failover",
        primary="a",
        primary_repository_id=a.config.repository_id,
        previous="local",
        reason="crash test",
    )
    save_record(a, rec)
    later = T0 + timedelta(hours=2)
    assert plan.primary_for(later).name == "a"
    status = plan.status(now=later)
    assert status.primary == "a"
    assert {s.site for s in status.sites if s.stale} == {"local", "b"}
    for name in ("local", "b"):
        assert [r.id for r in load_records(plan.open_site(name), FailoverRecord, "web")] == [rec.id]
    assert not any(s.stale for s in plan.status(now=later).sites)


def test_an_unreachable_site_is_reported_and_the_others_still_get_their_copies(
    plan: sv.DRPlan, src: Path, tmp_path: Path
) -> None:
    _backup(plan, src, T0)
    broken = plan.model_copy(
        update={"replicas": [plan.replicas[0], plan.replicas[1].model_copy(update={"password_env": "UNSET"})]}
    ).bind(env=ENV)
    result = broken.replicate(now=T0)
    by = {r.site: r for r in result.sites}
    assert by["a"].ok
    assert by["a"].copied == 1
    assert not by["b"].ok
    assert by["b"].error_type == "ConfigError"
    st = broken.status(now=T0 + timedelta(minutes=1))
    b = next(s for s in st.sites if s.site == "b")
    assert (b.reachable, b.error_type) == (False, "ConfigError")
    assert any(v.startswith("b: unreachable") for v in st.violations)


def test_every_record_a_plan_writes_lies_in_the_layout(plan: sv.DRPlan, src: Path, tmp_path: Path) -> None:
    from snapvault.repository import layout

    _backup(plan, src, T0)
    plan.replicate(now=T0)
    plan.drill(site="a", now=T0)
    plan.failover(to="a", reason="layout", now=T0 + timedelta(hours=1))
    dr = {layout.DR_PLANS, layout.DR_FAILOVERS, layout.DR_DRILLS, layout.DR_REPLICATIONS}
    seen = set()
    for site in plan.sites:
        root = Path(site.url)
        repo = plan.open_site(site.name)
        for p in root.rglob("*"):
            rel = p.relative_to(root).as_posix()
            folder = rel.split("/", 1)[0]
            if p.is_file() and folder in dr:
                seen.add(folder)
                assert rel == layout.object_key(folder, p.name)
                assert rel in repo.list_keys(folder)
    assert seen == dr


def test_replicate_carries_the_covered_policies_so_a_promoted_site_can_run_them(plan: sv.DRPlan, src: Path) -> None:
    primary = plan.open_site("local")
    nightly = sv.Policy(name="nightly", sources=[str(src)], schedule="0 2 * * *")
    primary.save_policy(nightly, now=T0)
    primary.save_policy(sv.Policy(name="scratch", sources=[str(src)]), now=T0)
    sv.Engine(primary).run_policy(nightly, now=T0)
    plan.replicate(now=T0)
    for name in ("a", "b"):
        assert set(plan.open_site(name).policies()) == {"nightly"}  # the covered one only
    plan.failover(to="a", reason="promote", now=T0 + timedelta(hours=1))
    a = plan.primary_repository(T0 + timedelta(hours=2))
    m = sv.Engine(a).run_policy(a.load_policy("nightly"), now=T0 + timedelta(hours=2))
    assert m.policy == "nightly"


def test_the_async_forms_and_fsspec_callbacks_report_progress(plan: sv.DRPlan, src: Path) -> None:
    import asyncio

    from fsspec.callbacks import Callback

    class Seen(Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.sizes: list[int] = []

        def set_size(self, size: int) -> None:
            self.sizes.append(size)
            super().set_size(size)

    m = _backup(plan, src, T0)
    sites, restore = Seen(), Seen()

    async def both() -> tuple[sv.ReplicateResult, sv.DrillRecord, sv.PlanStatus]:
        r = await plan.areplicate(now=T0, callback=sites)
        d = await plan.adrill(site="a", now=T0, callback=restore)
        return r, d, await plan.astatus(now=T0 + timedelta(minutes=1))

    result, drill, status = asyncio.run(both())
    assert result.ok
    assert drill.ok
    assert status.ok
    assert (sites.sizes[-1], sites.value) == (2 * m.stats.total_bytes, 2 * m.stats.total_bytes)
    assert (restore.sizes, restore.value) == ([m.stats.total_bytes], m.stats.total_bytes)


def test_a_drill_into_an_fsspec_target_verifies_there_and_leaves_nothing(plan: sv.DRPlan, src: Path) -> None:
    import fsspec

    m = _backup(plan, src, T0)
    plan.replicate(now=T0)
    where = f"memory://drills-{os.getpid()}"
    remote = plan.model_copy(
        update={"drill_settings": sv.DrillSettings(target=where, sample_files=5, target_options_env="DRILL_OPTS")}
    ).bind(env={**ENV, "DRILL_OPTS": "{}"})
    rec = remote.drill(site="b", now=T0)
    assert rec.ok, rec.error
    assert (rec.files_restored, rec.sample) == (5, "5 files")
    assert 0 < rec.bytes_restored < m.stats.total_bytes
    fs = fsspec.filesystem("memory")
    assert not fs.exists(where.removeprefix("memory://")) or fs.ls(where.removeprefix("memory://")) == []
    with pytest.raises(sv.ConfigError, match="DRILL_OPTS"):
        remote.bind(env=ENV).drill(site="b", now=T0)
