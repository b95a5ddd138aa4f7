"""Running a policy: backup types, hooks, verification, run records, monitoring, forget."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from snapvault.archiver.session import BackupOptions, run_backup
from snapvault.errors import IntegrityError, JobCancelled, SnapvaultError
from snapvault.maintenance.verify import verify_blobs
from snapvault.pipeline.patterns import PathFilter
from snapvault.policy.hooks import run_hooks
from snapvault.policy.model import Policy
from snapvault.policy.records import RunRecord, load_runs, save_run
from snapvault.repository import Repository
from snapvault.repository.manifest import Manifest

if TYPE_CHECKING:
    from snapvault.engine import Engine
    from snapvault.jobs import Job
    from snapvault.policy.retention import Decision

__all__ = ["ForgetResult", "PolicyStats", "forget", "policy_snapshots", "policy_stats", "run_policy", "scan_totals"]

#: How many times a ``snapshot`` backup re-reads a file that changed while it was read.
SNAPSHOT_REREADS = 3


def policy_snapshots(repo: Repository, name: str) -> list[Manifest]:
    """The snapshots a policy made, oldest first."""
    return [m for m in repo.snapshots() if m.policy == name]


def run_policy(
    engine: Engine,
    policy: Policy,
    *,
    hostname: str | None = None,
    now: datetime | None = None,
    job: Job[Any] | None = None,
    progress: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_file: Callable[[str, int, bool], None] | None = None,
) -> Manifest:
    """Run one backup of ``policy``; see :meth:`snapvault.Engine.backup` for the types."""
    repo = engine.repo
    started = engine.clock()
    history = policy_snapshots(repo, policy.name)
    latest = history[-1] if history else None
    btype = policy.backup_type
    parent, base, read_all = latest, None, False
    if btype == "full":
        read_all = True
    elif btype == "differential":
        fulls = [m for m in history if m.backup_type == "full"]
        if fulls:
            base = parent = fulls[-1]
        else:
            btype, read_all = "full", True
    fraction = policy.verify_fraction

    def before_commit(added: list[bytes], packs: list[bytes]) -> dict[str, Any]:
        if fraction <= 0:
            return {}
        v = verify_blobs(repo, added, fraction=fraction, mode=policy.verify, rng=engine.rng)
        if not v.ok:
            # A snapshot must not point at data that did not read back, and no later backup may
            # deduplicate against it: quarantine everything this run uploaded, commit nothing.
            repo.quarantine_packs(packs, f"read-back after a backup of policy {policy.name!r} failed")
            raise IntegrityError(f"verification after backup failed: {v.errors[0]}")
        return {"verification": v}

    stop = should_stop
    if job is not None:
        on_file = file_progress(job)
        stop = lambda: job.cancelled or (should_stop is not None and should_stop())  # noqa: E731

    opts = BackupOptions(
        paths=list(policy.sources),
        exclude=list(policy.exclude),
        tags=list(policy.tags),
        parent=parent,
        read_all=read_all,
        hostname=hostname,
        now=now or started,
        workers=policy.max_concurrency or engine.workers,
        max_pending=engine.max_pending_bytes,
        codec=policy.codec,
        consistency_retries=SNAPSHOT_REREADS if btype == "snapshot" else None,
        progress=progress,
        should_stop=stop,
        on_file=on_file,
        before_commit=before_commit,
        extra={"policy": policy.name, "backup_type": btype, "base": base.id if base else None},
    )
    status, error, manifest = "failed", None, None
    try:
        try:
            run_hooks(policy.pre_hooks, stage="pre")
            manifest = run_backup(repo, opts).manifest
            status = "completed"
        finally:
            run_hooks(policy.post_hooks, stage="post")
    except (JobCancelled, KeyboardInterrupt) as e:
        # Ctrl-C is the user stopping the run, as a job's cancel is; after the commit point
        # the snapshot exists and the run completed all the same.
        status = "completed" if manifest is not None else "cancelled"
        error = str(e) or "interrupted"
        raise
    except BaseException as e:
        status, error = ("completed" if manifest is not None else "failed"), str(e)
        raise
    finally:
        _record(engine, policy, job, btype, started, status, error, manifest)
    return manifest


def file_progress(job: Job[Any]) -> Callable[[str, int, bool], None]:
    """An ``on_file`` callback that counts files (and unchanged files' bytes) on a job."""

    def on_file(path: str, size: int, unchanged: bool) -> None:
        job.advance(size if unchanged else 0, path, files=1)

    return on_file


def _record(
    engine: Engine,
    policy: Policy,
    job: Job[Any] | None,
    btype: str,
    started: datetime,
    status: str,
    error: str | None,
    manifest: Manifest | None,
) -> None:
    stats = manifest.stats if manifest is not None else None
    rec = RunRecord(
        policy=policy.name,
        job_id=job.id if job is not None else os.urandom(16).hex(),
        status=status,
        backup_type=btype,
        started=started,
        ended=engine.clock(),
        snapshot=manifest.id if manifest is not None else None,
        error=error,
        bytes_read=stats.bytes_read if stats else 0,
        bytes_added=stats.bytes_added if stats else 0,
        bytes_stored=stats.bytes_stored if stats else 0,
    )
    # Failing to write the record (the store may be what failed) must not hide the outcome.
    with contextlib.suppress(SnapvaultError):
        save_run(engine.repo, rec)


def scan_totals(job: Job[Any], paths: Iterable[str], exclude: Iterable[str]) -> None:
    """Count the files and bytes a backup will cover, for progress totals.

    Runs before the backup on the job's thread; it costs one ``lstat`` per entry, which the
    backup's own walk then finds in the kernel's cache.
    """
    flt = PathFilter(exclude=exclude)
    files = nbytes = 0
    for src in paths:
        if os.path.isfile(src) and not os.path.islink(src):
            files += 1
            nbytes += os.path.getsize(src)
            continue
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            rel = "" if rel == "." else rel
            dirnames[:] = [d for d in dirnames if not flt.excluded(f"{rel}/{d}" if rel else d, True)]
            for f in filenames:
                if flt.excluded(f"{rel}/{f}" if rel else f, False):
                    continue
                try:
                    st = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    files += 1
                    nbytes += st.st_size
        if job.cancelled:
            return
    job.set_totals(files, nbytes)


@dataclass(frozen=True)
class PolicyStats:
    """Monitoring figures of one policy.

    ``storage_used`` is the bytes its backups added that are still referenced by its
    snapshots (the sum of ``bytes_stored`` of the snapshots that remain): a lower bound of
    what deleting the policy's snapshots would free, since other snapshots may share data.
    """

    policy: str
    runs: int
    last_success: datetime | None
    last_failure: datetime | None
    success_rate: float | None
    #: Bytes each run stored (compressed and encrypted, after deduplication), oldest first.
    bytes_added_per_run: list[int] = field(default_factory=list)
    snapshots: int = 0
    storage_used: int = 0


def policy_stats(repo: Repository, name: str, *, last: int = 30) -> PolicyStats:
    """Figures over the last ``last`` runs of policy ``name``."""
    runs = load_runs(repo, name)[-last:]
    ok = [r for r in runs if r.status == "completed"]
    bad = [r for r in runs if r.status == "failed"]
    snaps = policy_snapshots(repo, name)
    return PolicyStats(
        policy=name,
        runs=len(runs),
        last_success=ok[-1].ended if ok else None,
        last_failure=bad[-1].ended if bad else None,
        success_rate=len(ok) / len(runs) if runs else None,
        bytes_added_per_run=[r.bytes_stored for r in runs],
        snapshots=len(snaps),
        storage_used=sum(m.stats.bytes_stored for m in snaps),
    )


@dataclass(frozen=True)
class ForgetResult:
    """What ``forget`` decided for one policy (and did, unless it was a dry run)."""

    policy: str
    decision: Decision
    removed: list[str]


def forget(repo: Repository, *, policy: str | None = None, now: datetime, dry_run: bool = False) -> list[ForgetResult]:
    """Apply each policy's retention to its snapshots; remove the manifests it does not keep.

    Only snapshot manifests are removed; the data stays until a prune. Policies without a
    retention strategy are skipped, and so are stored policies that cannot be read here
    (:meth:`~snapvault.Repository.broken_policies` names them); their snapshots are not
    touched. Snapshots made without a policy are never touched.

    Raises
    ------
    PolicyNotFound
        If ``policy`` names no stored policy.
    UnknownStrategy
        If ``policy``'s retention strategy is not installed or registered here.
    """
    policies = repo.policies() if policy is None else {policy: repo.load_policy(policy)}
    results = []
    for name, pol in sorted(policies.items()):
        if pol.retention is None:
            continue
        decision = pol.retention.apply(policy_snapshots(repo, name), now)
        removed = []
        if not dry_run:
            for sid in decision.remove:
                repo.delete_snapshot(sid)
                removed.append(sid)
        results.append(ForgetResult(name, decision, removed))
    return results
