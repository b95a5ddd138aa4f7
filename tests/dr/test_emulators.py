"""DRPlan across real object stores: a local primary, a replica on S3 (moto) and one on Azure
Blob (Azurite), reached through references to environment variables.

What it proves: replication to RPO-met and drills that restore a sample bit-exact and record an
RTO; an S3 outage in the middle of a run (typed error, Azure still served, RPO violated hours
later, caught up once S3 is back); damage in a replica named by the drill and marked failed in
the report; failover, the stale primary refused, failback; kill -9 at several points of a
failover leaving one answer; and a replicate run with nothing new reading no pack.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.dr.model import FailoverRecord
from snapvault.dr.records import current_failover, load_records
from snapvault.repository import layout
from snapvault.storage import open_store
from snapvault.storage.wrappers import _Wrapper
from tests.backends.servers import HOST, Bucket, Emulator, start_moto
from tests.conftest import FAST_KDF, write

# Every test here needs both emulators; without them the module skips (or fails, with
# SNAPVAULT_REQUIRE_EMULATORS=1) before any test starts.
pytestmark = pytest.mark.usefixtures("s3_server", "azure_server")

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, 2, tzinfo=UTC)
PASSWORDS = {"PW_LOCAL": "pw-local", "PW_S3": "pw-s3", "PW_AZ": "pw-az"}
FILES, FILE_SIZE, SAMPLE = 12, 3000, 5


def s3_options(emu: Emulator) -> dict[str, Any]:
    # One attempt per request in botocore: against a stopped endpoint its default retries
    # take about 10 s a request (s3fs's own five retries still apply: about 1 s).
    return {**emu.storage_options, "config_kwargs": {"retries": {"max_attempts": 1}}}


@dataclass
class Sites:
    """A plan over three sites, bound, and what the test needs to reach them directly."""

    plan: sv.DRPlan
    env: dict[str, str]
    primary: Path
    s3: Bucket
    azure: Bucket
    prefix: str


def make_sites(tmp_path: Path, s3: Bucket, azure: Bucket, prefix: str = "vault") -> Sites:
    """Create the primary (a folder), store the plan in it, and let ``init_sites`` make the
    replicas (sharing the primary's content parameters)."""
    env = {
        **PASSWORDS,
        "S3_OPTS": json.dumps(s3_options(s3.emulator)),
        "AZ_OPTS": json.dumps(azure.storage_options),
    }
    primary = tmp_path / f"{prefix}-primary"
    plan = sv.DRPlan(
        name="web",
        primary=sv.Site(name="local", region="on-prem", url=str(primary), password_env="PW_LOCAL"),
        replicas=[
            sv.Site(name="s3", region="eu-west-1", url=s3.url_for(prefix), options_env="S3_OPTS", password_env="PW_S3"),
            sv.Site(
                name="azure",
                region="westeurope",
                url=azure.url_for(prefix),
                options_env="AZ_OPTS",
                password_env="PW_AZ",
            ),
        ],
        rpo="6h",
        rto="1h",
        policies=["nightly"],
        drill_settings=sv.DrillSettings(sample_files=SAMPLE),
    )
    repo = sv.Repository.init(str(primary), PASSWORDS["PW_LOCAL"], kdf=FAST_KDF)
    plan.save(repo, now=T0)
    bound = sv.DRPlan.load(repo, "web").bind(env=env)
    assert bound.init_sites(now=T0) == ["s3", "azure"]
    return Sites(bound, env, primary, s3, azure, prefix)


def make_src(root: Path) -> Path:
    for i in range(FILES):
        write(root / f"d{i % 3}" / f"f{i}.bin", os.urandom(FILE_SIZE))
    return root


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_src(tmp_path / "src")


def backup(plan: sv.DRPlan, src: Path, when: datetime) -> sv.Manifest:
    """A run of the covered policy, into whichever site is primary at ``when``."""
    return sv.Engine(plan.primary_repository(when)).run_policy(sv.Policy(name="nightly", sources=[str(src)]), now=when)


def verdicts(status: sv.PlanStatus, objective: str) -> dict[str, str]:
    return {s.site: o.verdict for s in status.sites for o in s.objectives if o.objective == objective}


# -- 1. three sites, replicate, drill ------------------------------------------------------


@dataclass
class Replicated:
    """Three sites after one backup and one replicate run (shared by the tests that only add
    drills and runs with nothing new: both leave the snapshots as they are)."""

    sites: Sites
    manifest: sv.Manifest
    first: sv.ReplicateResult


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory, s3_server: Emulator, azure_server: Emulator) -> Replicated:
    tmp = tmp_path_factory.mktemp("replicated")
    sites = make_sites(tmp, s3_server.new_bucket(), azure_server.new_bucket())
    m = backup(sites.plan, make_src(tmp / "src"), T0)
    return Replicated(sites, m, sites.plan.replicate(now=T0 + timedelta(minutes=10)))


def test_three_sites_replicate_to_rpo_met_and_drills_restore_a_sample_bit_exact(replicated: Replicated) -> None:
    plan, m, result = replicated.sites.plan, replicated.manifest, replicated.first
    # The stored plan names where the secrets are, never a secret.
    stored = plan.model_dump_json()
    assert "S3_OPTS" in stored
    assert not any(v in stored for v in (*PASSWORDS.values(), "snapvault-test-secret", "AccountKey"))

    assert result.ok, result
    assert [(r.site, r.copied, r.lag_s) for r in result.sites] == [("s3", 1, 0.0), ("azure", 1, 0.0)]
    assert all(r.bytes_uploaded > 0 for r in result.sites)
    for name in ("s3", "azure"):
        copied = {c.time: c for c in plan.open_site(name).snapshots()}
        assert copied[m.time].copied_from == m.id

    drills = {}
    for name in ("s3", "azure"):
        d = plan.drill(site=name, now=T0 + timedelta(minutes=20))
        assert d.ok, d.error
        # The drill read back every restored byte and compared it with the snapshot's chunk
        # IDs: five whole files, each exactly as backed up.
        assert (d.sample, d.files_restored, d.bytes_restored) == (f"{SAMPLE} files", SAMPLE, SAMPLE * FILE_SIZE)
        assert d.snapshot_time == m.time
        assert d.snapshot_bytes == FILES * FILE_SIZE
        assert d.rto_estimate_s is not None
        assert 0 < d.rto_estimate_s < 3600
        assert d.rto_objective_s == 3600
        drills[name] = d

    status = plan.status(now=T0 + timedelta(hours=1))
    assert status.ok, status.violations
    assert status.primary == "local"
    assert verdicts(status, "rpo:nightly") == {"local": "met", "s3": "met", "azure": "met"}
    # The primary was never drilled: unknown, which is no violation.
    assert verdicts(status, "rto") == {"local": "unknown", "s3": "met", "azure": "met"}
    rto = {s.site: o for s in status.sites for o in s.objectives if o.objective == "rto"}
    for name, d in drills.items():
        assert rto[name].actual_s == d.rto_estimate_s
        assert rto[name].target_s == 3600
    assert json.loads(json.dumps(status.to_json()))["ok"] is True


# -- 2. S3 stopped in the middle of a run ---------------------------------------------------


class _StopBeforeWrite(_Wrapper):
    """Stops an emulator right before the ``n``-th pack upload through this store."""

    def __init__(self, inner: Any, stop: Any, n: int) -> None:
        super().__init__(inner)
        self.stop, self.left = stop, n

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        if key.startswith(f"{layout.DATA}/"):
            self.left -= 1
            if self.left == 0:
                self.stop()
        return super().put_if_absent(key, data)


@contextlib.contextmanager
def _moto_on(port: int) -> Iterator[None]:
    """moto's server again, on the port a stopped one used."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    # start() waits forever if the bind fails (another process took the port meanwhile).
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(30)
    if starter.is_alive():
        pytest.fail(f"moto could not listen on port {port} again")
    try:
        yield
    finally:
        server.stop()


def test_an_s3_outage_mid_run_is_reported_azure_still_served_and_the_next_run_catches_up(
    tmp_path: Path, azure_container: Bucket, src: Path
) -> None:
    with contextlib.ExitStack() as outage:
        # A moto of this test's own: stopping it leaves the session's server to the others.
        emu = outage.enter_context(start_moto())
        sites = make_sites(tmp_path, emu.new_bucket(), azure_container)
        plan = sites.plan
        first = backup(plan, src, T0)
        assert plan.replicate(now=T0).ok

        write(src / "d0" / "new.bin", os.urandom(50_000))
        second = backup(plan, src, T0 + timedelta(hours=1))
        # The replicate run opens every site, then copies site by site: S3 goes away in the
        # middle of its copy, right before its first pack upload.
        s3_repo = sv.Repository.open(
            sites.plan.replicas[0].url,
            PASSWORDS["PW_S3"],
            store=_StopBeforeWrite(
                open_store(sites.s3.url_for(sites.prefix), storage_options=s3_options(emu)), outage.close, 1
            ),
        )
        port = int(emu.endpoint.rsplit(":", 1)[1])
        run = plan.bind(env=sites.env, repositories={"s3": s3_repo}).replicate(now=T0 + timedelta(hours=1))
    by = {r.site: r for r in run.sites}
    assert not run.ok
    assert (by["s3"].ok, by["s3"].error_type) == (False, "BackendUnavailable")
    assert issubclass(getattr(sv, by["s3"].error_type or ""), sv.StorageError)
    assert "cannot reach" in (by["s3"].error or "")
    assert (by["azure"].ok, by["azure"].copied, by["azure"].skipped) == (True, 1, 1)
    assert second.time in {m.time for m in plan.open_site("azure").snapshots()}

    down = plan.status(now=T0 + timedelta(hours=2))
    s3 = next(s for s in down.sites if s.site == "s3")
    assert (s3.reachable, s3.error_type) == (False, "BackendUnavailable")
    assert s3.last_replication is not None
    assert s3.last_replication.error_type == "BackendUnavailable"
    assert verdicts(down, "rpo:nightly") == {"local": "met", "s3": "unknown", "azure": "met"}

    # The same endpoint comes back, on the same port, so the site's stored options still
    # point at it. moto keeps its buckets in this process, not in the server, so the bucket is
    # there as it was, as after a real S3 outage: the catch-up is the ordinary incremental run,
    # copying only the snapshot S3 missed. (Had the restart lost the data, the catch-up would be
    # a full copy into a new, empty repository at the same URL: init_sites() creates it again
    # with the primary's parameters, and the same replicate call copies every snapshot.)
    with _moto_on(port):
        late = T0 + timedelta(hours=6, minutes=30)
        behind = plan.status(now=late)
        rpo = {s.site: o for s in behind.sites for o in s.objectives if o.objective == "rpo:nightly"}
        assert rpo["s3"].verdict == "violated"  # its newest copy is the first backup, 6.5 h old
        assert rpo["s3"].margin_s == pytest.approx(1800)
        assert rpo["azure"].verdict == "met"
        assert any(v.startswith("s3: rpo:nightly violated") for v in behind.violations)

        again = plan.replicate(now=late)
        assert again.ok, again
        assert [(r.site, r.copied, r.skipped, r.lag_s) for r in again.sites] == [
            ("s3", 1, 1, 0.0),
            ("azure", 0, 2, 0.0),
        ]
        caught_up = plan.status(now=late)
        assert verdicts(caught_up, "rpo:nightly") == {"local": "met", "s3": "met", "azure": "met"}
        # (Each copied snapshot was read back whole as it was committed: tests/conftest.py.)
        assert sorted(m.time for m in plan.open_site("s3").snapshots()) == [first.time, second.time]


# -- 3. damage in a replica -----------------------------------------------------------------


def _largest_pack(bucket: Bucket, prefix: str) -> str:
    """The path (in ``bucket.fs``) of the largest pack under the repository ``prefix``."""
    found = bucket.fs.find(bucket.path(prefix, "data"), detail=True)
    return str(max(found, key=lambda p: (found[p]["size"], p)))


def test_a_flipped_byte_or_a_deleted_pack_fails_the_drill_naming_snapshot_path_and_pack(
    tmp_path: Path, s3_bucket: Bucket, azure_container: Bucket, src: Path
) -> None:
    sites = make_sites(tmp_path, s3_bucket, azure_container)
    plan = sites.plan
    backup(plan, src, T0)
    assert plan.replicate(now=T0).ok
    flipped = _largest_pack(sites.s3, sites.prefix)
    data = bytearray(sites.s3.fs.cat_file(flipped))
    data[len(data) // 3] ^= 1
    sites.s3.fs.pipe_file(flipped, bytes(data))  # overwritten in place: same name, same size
    deleted = _largest_pack(sites.azure, sites.prefix)
    sites.azure.fs.rm_file(deleted)

    src_rel = os.path.relpath(src, "/")  # snapshots record absolute paths, drills name them relative
    for name, pack in (("s3", flipped.rsplit("/", 1)[1]), ("azure", deleted.rsplit("/", 1)[1])):
        d = plan.drill(site=name, now=T0 + timedelta(minutes=10))
        assert not d.ok, name
        assert d.error_type == "DrillFailed"
        assert d.pack_id == pack
        assert d.snapshot_id in {m.id for m in plan.open_site(name).snapshots()}
        assert d.path is not None
        assert d.path.startswith(src_rel + "/")
        assert all(s in (d.error or "") for s in (d.snapshot_id[:8], d.path, pack))
        assert d.rto_estimate_s is None
        if name == "azure":
            assert "missing" in (d.error or "")
    status = plan.status(now=T0 + timedelta(minutes=20))
    assert verdicts(status, "rto") == {"local": "unknown", "s3": "failed", "azure": "failed"}
    assert verdicts(status, "rpo:nightly") == {"local": "met", "s3": "met", "azure": "met"}
    assert any(v.startswith("s3: rto failed") for v in status.violations)

    doc = json.loads(plan.report(now=T0 + timedelta(minutes=20), format="json"))
    assert doc["verdict"] == "failed"
    by_site = {s["site"]: s for s in doc["sites"]}
    for name in ("s3", "azure"):
        rto = [v["verdict"] for v in by_site[name]["verdicts"] if v["objective"] == "rto"]
        assert rto == ["failed"], name
        assert by_site[name]["ok"] is False
    assert by_site["local"]["ok"] is False  # never drilled: an unknown RTO is not ok either
    assert [v["verdict"] for v in by_site["local"]["verdicts"]] == ["met", "unknown"]


# -- 4. failover and failback ---------------------------------------------------------------


def test_failover_to_azure_takes_the_backups_and_the_old_primary_is_refused_until_failback(
    tmp_path: Path, s3_bucket: Bucket, azure_container: Bucket, src: Path
) -> None:
    plan = make_sites(tmp_path, s3_bucket, azure_container).plan
    policy = sv.Policy(name="nightly", sources=[str(src)])
    backup(plan, src, T0)
    assert plan.replicate(now=T0).ok

    rec = plan.failover(to="azure", reason="on-prem site lost", now=T0 + timedelta(hours=1))
    assert (rec.primary, rec.previous, rec.kind) == ("azure", "local", "failover")
    assert rec.primary_repository_id == plan.open_site("azure").config.repository_id
    assert plan.primary_for(T0 + timedelta(hours=2)).name == "azure"
    assert plan.primary_for(T0).name == "local"  # time is a parameter: before the failover

    write(src / "d1" / "after.txt", "written after the failover")
    m = backup(plan, src, T0 + timedelta(hours=2))
    assert m.id in plan.open_site("azure").snapshot_ids()
    local = plan.open_site("local")
    assert m.time not in {s.time for s in local.snapshots()}
    with pytest.raises(sv.StalePrimaryError, match="failed over to site 'azure'"):
        sv.Engine(local).run_policy(policy, now=T0 + timedelta(hours=3))

    # Failback first copies what the new primary took meanwhile to the old one.
    back = plan.failback(reason="on-prem restored", now=T0 + timedelta(hours=4))
    assert (back.primary, back.previous, back.kind) == ("local", "azure", "failback")
    assert plan.primary_for(T0 + timedelta(hours=5)).name == "local"
    assert m.time in {s.time for s in plan.open_site("local").snapshots()}
    sv.Engine(plan.open_site("local")).run_policy(policy, now=T0 + timedelta(hours=5))
    with pytest.raises(sv.StalePrimaryError, match="failed over to site 'local'"):
        sv.Engine(plan.open_site("azure")).run_policy(policy, now=T0 + timedelta(hours=5))


# -- 4b. kill -9 in the middle of a failover ------------------------------------------------

#: Where the child halts, and who is primary after the kill: before the first failover record
#: lands nothing changed; once the new primary holds it, the union of the sites' records names
#: the new primary whichever other sites missed it.
KILL_POINTS = {"promote": "local", "record:1": "azure", "record:2": "azure"}
#: The sites holding the record when the child dies: the new primary's is written first.
HOLDING = {"promote": set(), "record:1": {"azure"}, "record:2": {"azure", "local"}}


def _start_child(sites: Sites, point: str, now: datetime) -> subprocess.Popen[str]:
    spec = {
        "primary": str(sites.primary),
        "plan": "web",
        "env": sites.env,
        "to": "azure",
        "now": now.isoformat(),
        "point": point,
    }
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("kill9_failover_child.py")), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _kill_at(child: subprocess.Popen[str], point: str) -> None:
    """Wait for the child to reach its point, then SIGKILL it."""
    watchdog = threading.Timer(120, child.kill)  # a child that never gets there fails, not hangs
    watchdog.start()
    try:
        line = child.stdout.readline() if child.stdout else ""
    finally:
        watchdog.cancel()
    child.kill()
    _, err = child.communicate()
    assert line.strip() == f"at {point}", err
    assert child.returncode == -signal.SIGKILL


def _answers(plan: sv.DRPlan, now: datetime) -> set[str | None]:
    """The failover record in force by each site's own records (its id; None: no failover)."""
    out = set()
    for site in plan.sites:
        rec = current_failover(load_records(plan.open_site(site.name), FailoverRecord, plan.name), now)
        out.add(None if rec is None else rec.id)
    return out


def test_kill_9_during_a_failover_leaves_one_primary(
    tmp_path: Path, s3_bucket: Bucket, azure_container: Bucket, src: Path
) -> None:
    when = T0 + timedelta(hours=1)
    later = when + timedelta(minutes=30)
    runs: list[tuple[str, Sites, subprocess.Popen[str]]] = []
    try:
        # Each point on a plan of its own; every child starts as soon as its plan is ready, so
        # the children's start-up overlaps the next plan's set-up.
        for point in KILL_POINTS:
            sites = make_sites(tmp_path, s3_bucket, azure_container, prefix=f"k-{point.replace(':', '')}")
            m = backup(sites.plan, src, T0)
            # Only the target needs the snapshot (its drill restores it); S3 is the third site
            # that records the failover, or misses it.
            sites.plan.open_site("local").copy_snapshots(sites.plan.open_site("azure"), [m])
            runs.append((point, sites, _start_child(sites, point, when)))
        for point, sites, child in runs:
            _check_after_kill(point, sites, child, src, later)
    finally:
        for _, _, child in runs:  # a failed check leaves no child waiting to be killed
            if child.poll() is None:
                child.kill()
                child.wait()


def _check_after_kill(point: str, sites: Sites, child: subprocess.Popen[str], src: Path, later: datetime) -> None:
    """Kill ``child`` at ``point``; then one primary, the same by every site's own records."""
    _kill_at(child, point)
    plan, expected = sites.plan, KILL_POINTS[point]
    # The child died where it was meant to: this many sites hold the record.
    holding = {s.name for s in plan.sites if plan.open_site(s.name).list_keys(layout.DR_FAILOVERS)}
    assert holding == HOLDING[point], point
    assert plan.primary_for(later).name == expected, point
    status = plan.status(now=later)
    assert status.primary == expected, point
    # After status repaired the sites that missed the record, each site's own records
    # give the same answer.
    answers = _answers(plan, later)
    assert len(answers) == 1, (point, answers)
    assert (answers == {None}) == (expected == "local"), point
    # The old primary takes the writes exactly when it still is the primary, and a second
    # failover completes, or is refused because the first one took effect.
    engine = sv.Engine(plan.open_site("local"))
    policy = sv.Policy(name="nightly", sources=[str(src)])
    if expected == "local":
        engine.run_policy(policy, now=later)
        rec = plan.failover(to="azure", reason="second attempt", now=later)
        assert rec.primary == "azure"
        assert plan.primary_for(later).name == "azure"
        assert _answers(plan, later) == {rec.id}
    else:
        with pytest.raises(sv.StalePrimaryError):
            engine.run_policy(policy, now=later)
        with pytest.raises(sv.FailoverError, match=r"is the primary .* already"):
            plan.failover(to="azure", reason="second attempt", now=later)


# -- 5. nothing new: no pack read -----------------------------------------------------------


class _Counting(_Wrapper):
    """Records every key read through it."""

    def __init__(self, inner: Any, reads: list[str]) -> None:
        super().__init__(inner)
        self.reads = reads

    def get(self, key: str) -> bytes:
        self.reads.append(key)
        return super().get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self.reads.append(key)
        return super().get_range(key, offset, length)


def test_a_replicate_run_with_nothing_new_reads_no_pack(replicated: Replicated) -> None:
    sites = replicated.sites
    reads: dict[str, list[str]] = {}
    opened = {}
    for site in sites.plan.sites:
        options = json.loads(sites.env[site.options_env]) if site.options_env else None
        store = _Counting(open_store(site.url, storage_options=options), reads.setdefault(site.name, []))
        opened[site.name] = sv.Repository.open(site.url, sites.env[site.password_env or ""], store=store)
    counted = sites.plan.bind(env=sites.env, repositories=opened)
    t0 = time.perf_counter()
    again = counted.replicate(now=T0 + timedelta(hours=1))
    wall = time.perf_counter() - t0
    print(f"replicate with nothing new, three sites: {wall:.3f} s")  # shown with -s
    assert again.ok
    assert [(r.site, r.copied, r.skipped, r.bytes_uploaded) for r in again.sites] == [
        ("s3", 0, 1, 0),
        ("azure", 0, 1, 0),
    ]
    assert {name: [k for k in keys if k.startswith(f"{layout.DATA}/")] for name, keys in reads.items()} == {
        "local": [],
        "s3": [],
        "azure": [],
    }
    assert all(reads.values())  # the wrappers did see the run's other reads


# -- copies after a failover, and tagged backups (on folders: no backend is involved) ---------


def _folder_plan(tmp_path: Path, **fields: Any) -> sv.DRPlan:
    """A plan over three local folders sharing content parameters, stored in the primary."""
    sites = [sv.Site(name=n, url=str(tmp_path / n), password_env="PW") for n in ("local", "a", "b")]
    first = sv.Repository.init(sites[0].url, "pw", kdf=FAST_KDF)
    for site in sites[1:]:
        sv.Repository.init(site.url, "pw", kdf=FAST_KDF, copy_params_from=first)
    plan = sv.DRPlan(name="web", primary=sites[0], replicas=sites[1:], rpo="6h", **fields).bind(env={"PW": "pw"})
    plan.save(first, now=T0)
    return plan


def test_after_a_failover_a_replicate_run_with_nothing_new_copies_nothing(tmp_path: Path, src: Path) -> None:
    plan = _folder_plan(tmp_path, policies=["nightly"])
    backup(plan, src, T0)
    assert plan.replicate(now=T0).ok
    plan.failover(to="b", reason="local lost", now=T0 + timedelta(hours=1))
    again = plan.replicate(now=T0 + timedelta(hours=2))
    assert [(r.site, r.copied) for r in again.sites] == [("local", 0), ("a", 0)]
    assert len(plan.open_site("local").snapshots()) == 1


def test_a_tagged_backup_the_plan_covers_is_refused_by_the_stale_primary(tmp_path: Path, src: Path) -> None:
    plan = _folder_plan(tmp_path, tags=["dr"])
    sv.Engine(plan.open_site("local")).backup([src], tags=["dr"], now=T0)
    assert plan.replicate(now=T0).ok
    plan.failover(to="a", reason="local lost", now=T0 + timedelta(hours=1))
    stale = sv.Engine(plan.open_site("local"))
    with pytest.raises(sv.StalePrimaryError):  # a policy run with the tag is refused ...
        stale.run_policy(sv.Policy(name="adhoc", sources=[str(src)], tags=["dr"]), now=T0 + timedelta(hours=2))
    with pytest.raises(sv.StalePrimaryError):  # ... and so must the same snapshot made without one
        stale.backup([src], tags=["dr"], now=T0 + timedelta(hours=2))
