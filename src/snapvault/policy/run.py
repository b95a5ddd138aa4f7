"""Running a policy: backup types, hooks, verification, run records, monitoring, forget.

This layer sits above the archiver and maintenance and below ``snapvault.Engine``: a run takes
the repository (as :class:`PolicyRepository`, what it uses of one) and the engine's
:class:`~snapvault.archiver.settings.BackupSettings`, never the engine itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from snapvault.archiver.progress import file_progress
from snapvault.archiver.session import BackupOptions, BackupRepository, run_backup
from snapvault.archiver.settings import BackupSettings
from snapvault.errors import IntegrityError, JobCancelled, SnapvaultError
from snapvault.maintenance.verify import verify_blobs
from snapvault.policy.hooks import check_hooks_allowed, run_hooks
from snapvault.policy.model import Policy
from snapvault.policy.records import RecordStore, RunRecord, load_policy, load_runs, read_policies, save_run
from snapvault.repository.manifest import Manifest

if TYPE_CHECKING:
    from snapvault.jobs import Job
    from snapvault.policy.retention import Decision

__all__ = [
    "ForgetRepository",
    "ForgetResult",
    "PolicyHistory",
    "PolicyRepository",
    "PolicyStats",
    "forget",
    "policy_snapshots",
    "policy_stats",
    "run_policy",
]

#: How many times a ``snapshot`` backup re-reads a file that changed while it was read.
SNAPSHOT_REREADS = 3


class PolicyHistory(RecordStore, Protocol):
    """What a policy's statistics read of a repository: its records, run records and snapshots."""

    def snapshots(self) -> list[Manifest]:
        """Every snapshot's manifest, oldest first."""
        ...


class ForgetRepository(PolicyHistory, Protocol):
    """What ``forget`` uses of a repository: the policies, their snapshots, and removing some."""

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot manifest."""
        ...


class PolicyRepository(BackupRepository, PolicyHistory, Protocol):
    """What running a policy uses of a repository: a backup run, its history and run records,
    the read-back of what the run stored, and quarantine when that fails."""

    def read_blob(self, bid: bytes) -> bytes:
        """Fetch, decrypt and verify one blob."""
        ...

    def quarantine_packs(self, pack_ids: list[bytes], reason: str) -> None:
        """Record packs as damaged so no later backup deduplicates against them."""
        ...


def policy_snapshots(repo: PolicyHistory, name: str) -> list[Manifest]:
    """The snapshots a policy made, oldest first."""
    return [m for m in repo.snapshots() if m.policy == name]


def run_policy(
    repo: PolicyRepository,
    settings: BackupSettings,
    policy: Policy,
    *,
    hostname: str | None = None,
    now: datetime | None = None,
    job: Job[Any] | None = None,
    progress: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_file: Callable[[str, int, bool], None] | None = None,
    allowed_hooks: Collection[str] = frozenset(),
) -> Manifest:
    """Run one backup of ``policy``, record the run, and return the new snapshot's manifest.

    See :meth:`snapvault.Engine.run_policy` for the arguments and the backup types. ``job``,
    when given, receives per-file progress and its ``cancel`` stops the run.
    ``allowed_hooks`` holds the :func:`~snapvault.policy.hooks.hook_hash` of each shell hook
    the caller allows; a policy with any other shell hook raises HookError before anything
    runs or is written (no hook, no backup, no run record). Callable hooks always run.
    """
    check_hooks_allowed(policy.name, policy.pre_hooks, policy.post_hooks, allowed_hooks)
    started = settings.clock()
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
        v = verify_blobs(repo, added, fraction=fraction, mode=policy.verify, rng=settings.rng)
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
        exclude_if_present=list(policy.exclude_if_present),
        exclude_caches=policy.exclude_caches,
        exclude_larger_than=policy.exclude_larger_than,
        one_file_system=policy.one_file_system,
        tags=list(policy.tags),
        parent=parent,
        read_all=read_all,
        hostname=hostname,
        now=now or started,
        workers=policy.max_concurrency or settings.workers,
        max_pending=settings.max_pending_bytes,
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
        _record(repo, settings, policy, job, btype, started, status, error, manifest)
    return manifest


def _record(
    repo: RecordStore,
    settings: BackupSettings,
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
        ended=settings.clock(),
        snapshot=manifest.id if manifest is not None else None,
        error=error,
        bytes_read=stats.bytes_read if stats else 0,
        bytes_added=stats.bytes_added if stats else 0,
        bytes_stored=stats.bytes_stored if stats else 0,
    )
    # Failing to write the record (the store may be what failed) must not hide the outcome.
    with contextlib.suppress(SnapvaultError):
        save_run(repo, rec)


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


def policy_stats(repo: PolicyHistory, name: str, *, last: int = 30) -> PolicyStats:
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


def forget(
    repo: ForgetRepository, *, policy: str | None = None, now: datetime, dry_run: bool = False
) -> list[ForgetResult]:
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
    policies = read_policies(repo).policies if policy is None else {policy: load_policy(repo, policy)}
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
