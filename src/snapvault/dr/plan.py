"""``DRPlan``: copies of a repository in other regions, their objectives, drills and failover.

A plan is a :class:`~snapvault.dr.model.PlanSpec` (stored encrypted in a repository, JSON
round-trip) plus the operations, each given ``now`` and reaching the sites through the
:class:`~snapvault.dr.sites.Access` the plan is bound to (:meth:`DRPlan.bind`):

- :meth:`replicate` copies, from the primary in force to every other site, each covered
  snapshot the site lacks (``copy_snapshots``: only missing blobs move; a run with nothing new
  reads no pack). Sites are independent: an unreachable one is reported, the others still get
  their copies. The plan, its failover and drill records and the covered policies go along, so
  any surviving site can run the plan and, once promoted, the policies.
- :meth:`status` says per site whether it is reachable, how old its newest covered snapshot
  is against the RPO, and what its last drill measured against the RTO.
- :meth:`drill` restores from a site for real and measures it (:mod:`snapvault.dr.drill`).
- :meth:`failover` promotes a replica once it passes a drill, writing a failover record to it
  first and then to every other reachable site; the newest record in force at ``now`` (by
  time, then id) names the primary, so a run killed between two sites' writes still resolves
  to one answer, and :meth:`status` copies the record to the sites that missed it. The engine
  refuses covered policies' backups into a repository the records say is no longer primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import PrivateAttr

from snapvault.dr import records
from snapvault.dr.charts import span
from snapvault.dr.drill import drill_site
from snapvault.dr.model import (
    DrillRecord,
    FailoverRecord,
    HookRun,
    PlanSpec,
    ReplicationRecord,
    Site,
    covers,
)
from snapvault.dr.sites import Access, open_site, referenced_options, run_stage
from snapvault.dr.status import ObjectiveState, PlanStatus, ReplicateResult, SiteStatus
from snapvault.errors import ConfigError, FailoverError, HookError, SnapvaultError
from snapvault.handle import Repository
from snapvault.repository import layout
from snapvault.repository.manifest import Manifest

__all__ = ["DRPlan"]

#: Records that travel with the plan to every site (replication records stay on the primary
#: that wrote them: one a site and run, they are history, not state).
_SYNCED = (layout.DR_FAILOVERS, layout.DR_DRILLS)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError("now must be timezone-aware")
    return now


class _SiteShare:
    """One site's copy as a replication's callback sees it: the sizes and updates the copy
    reports add to what the sites before it did (the fsspec ``Callback`` members a copy
    uses)."""

    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.base = parent.value
        self.size: int | None = None
        self.value = 0

    def set_size(self, size: int) -> None:
        self.size = size
        self.parent.set_size(self.base + size)

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        self.parent.relative_update(inc)

    def settle(self) -> None:
        """The site is done with, copied or failed: what it did is its share."""
        if self.parent.size != self.parent.value:
            self.parent.set_size(self.parent.value)


def _error_line(e: BaseException) -> str:
    return " ".join((str(e) or type(e).__name__).split())


class DRPlan(PlanSpec):
    """A disaster-recovery plan: sites, objectives, replication, drills and failover.

    The fields are those of its signature below. Build one, ``save`` it into the
    primary, ``bind`` it to the credentials of this process, then ``replicate``, ``status``,
    ``drill``, ``failover`` and ``report``, each with ``now``.

    Examples
    --------
    >>> plan = DRPlan(name="web", primary=Site(name="local", url="/srv/repo", password_env="PW"),
    ...               replicas=[Site(name="s3", url="s3://b/repo", options_env="S3_OPTS",
    ...                              password_env="PW")], rpo="6h", rto="1h")
    >>> plan = plan.bind(env=os.environ)                          # doctest: +SKIP
    >>> plan.replicate(now=datetime.now(UTC)).ok                  # doctest: +SKIP
    """

    _access: Access = PrivateAttr(default_factory=Access)
    _clock: Callable[[], float] = PrivateAttr(default=time.monotonic)

    # -- storing ---------------------------------------------------------------------------

    def save(self, repo: Repository, *, now: datetime) -> None:
        """Store the plan (encrypted) in ``repo`` under its name, replacing an earlier one."""
        records.save_plan_record(repo, self.name, self, _aware(now))

    @classmethod
    def load(cls, repo: Repository, name: str) -> DRPlan:
        """The plan stored in ``repo`` as ``name``.

        Raises
        ------
        PlanNotFound
            If there is none.
        IntegrityError
            If its record is damaged.
        """
        return records.load_plan(repo, name, cls)

    @classmethod
    def stored(cls, repo: Repository) -> dict[str, DRPlan]:
        """Every plan stored in ``repo``, by name."""
        return records.read_plans(repo, cls)

    @classmethod
    def remove(cls, repo: Repository, name: str, *, now: datetime) -> None:
        """Remove the stored plan ``name`` (its records stay)."""
        cls.load(repo, name)
        records.save_plan_record(repo, name, None, _aware(now))

    # -- binding ---------------------------------------------------------------------------

    def bind(
        self,
        *,
        env: Mapping[str, str] | None = None,
        repositories: Mapping[str, Repository] | None = None,
        hooks: Mapping[str, Sequence[Callable[..., object]]] | None = None,
        allowed_hooks: Collection[str] = frozenset(),
        max_kdf_memory_kib: int = 128 << 10,
        clock: Callable[[], float] | None = None,
    ) -> Self:
        """A copy of the plan that reaches its sites this way (see :class:`~snapvault.dr.sites.Access`).

        ``env`` resolves the sites' ``options_env`` and ``password_env`` (pass ``os.environ``
        to use this process's); ``repositories`` gives sites already open, by name; ``hooks``
        adds library callables per stage; ``allowed_hooks`` are the SHA-256 hashes of the
        stored shell hooks allowed here; ``clock`` (monotonic seconds) times drills.
        """
        bound = self.model_copy()
        bound._access = Access(
            env=dict(env or {}),
            repositories=dict(repositories or {}),
            hooks=dict(hooks or {}),
            allowed_hooks=frozenset(allowed_hooks),
            max_kdf_memory_kib=max_kdf_memory_kib,
        )
        bound._clock = clock or time.monotonic
        return bound

    def open_site(self, name: str) -> Repository:
        """Open the site ``name`` with its own credentials (typed errors when it cannot)."""
        return open_site(self.site(name), self._access)

    def _try_open(self, site: Site) -> tuple[Repository | None, SnapvaultError | None]:
        try:
            return self.open_site(site.name), None
        except SnapvaultError as e:
            return None, e
        except OSError as e:  # an fsspec backend's own error, before the store maps it
            from snapvault.errors import BackendUnavailable

            return None, BackendUnavailable(f"site {site.name!r}: {e}")

    def init_sites(self, *, now: datetime | None = None) -> list[str]:
        """Create the replicas that do not exist yet, sharing the primary's content parameters
        when ``shared_params`` (else with keys of their own); the names created."""
        from snapvault.dr.sites import site_options, site_password
        from snapvault.errors import RepositoryNotFound

        primary = self.open_site(self.primary.name)
        made = []
        for site in self.replicas:
            try:
                self.open_site(site.name)
                continue
            except RepositoryNotFound:
                pass
            Repository.init(
                site.url,
                site_password(site, self._access),
                storage_options=site_options(site, self._access),
                encryption="none" if site.no_password else "aes-256-gcm",
                copy_params_from=primary if self.shared_params else None,
            )
            made.append(site.name)
        return made

    # -- who is primary --------------------------------------------------------------------

    def _failovers(self, opened: Mapping[str, Repository]) -> list[FailoverRecord]:
        seen: dict[str, FailoverRecord] = {}
        for repo in opened.values():
            try:
                for r in records.load_records(repo, FailoverRecord, self.name):
                    seen.setdefault(r.id, r)
            except SnapvaultError:
                continue  # a site that cannot list its records says nothing about the primary
        return sorted(seen.values(), key=FailoverRecord.order)

    def _open_all(self) -> tuple[dict[str, Repository], dict[str, SnapvaultError]]:
        opened: dict[str, Repository] = {}
        failed: dict[str, SnapvaultError] = {}
        for site in self.sites:
            repo, err = self._try_open(site)
            if repo is not None:
                opened[site.name] = repo
            else:
                assert err is not None
                failed[site.name] = err
        return opened, failed

    def primary_for(self, now: datetime) -> Site:
        """The site that takes the covered policies' writes at ``now``: the one the newest
        failover record in force names (read from every reachable site), else ``primary``."""
        opened, _ = self._open_all()
        current = records.current_failover(self._failovers(opened), _aware(now))
        return self.primary if current is None else self.site(current.primary)

    def primary_repository(self, now: datetime) -> Repository:
        """The primary in force at ``now``, opened: where a covered policy's backup goes."""
        return self.open_site(self.primary_for(now).name)

    # -- replication -----------------------------------------------------------------------

    def covers(self, m: Manifest) -> bool:
        """Whether the plan keeps copies of snapshot ``m``."""
        return covers(self, m.policy, m.tags)

    def replicate(self, *, now: datetime, callback: Any = None) -> ReplicateResult:
        """Copy every covered snapshot each site lacks from the primary in force.

        Parameters
        ----------
        now : datetime
            Timezone-aware; the records' time and the base of the lag.
        callback : fsspec.callbacks.Callback, optional
            Counts the file bytes copied, over every site in turn: its size grows by the
            bytes each site lacks (the totals the snapshots record) as its copy starts, and
            ``relative_update`` follows each file copied. A site that fails is settled with
            what it did, so ``value == size`` once the run returns.

        Returns
        -------
        ReplicateResult
            Per site: copied, skipped, bytes, the lag after the run, or the typed error of a
            site that could not be reached (the others still got their copies). Each is also
            stored on the primary as a replication record.

        Raises
        ------
        SnapvaultError
            Only when the primary itself cannot be opened or read; HookError from a hook.
        """
        now = _aware(now)
        opened, failed = self._open_all()
        current = records.current_failover(self._failovers(opened), now)
        primary = self.primary if current is None else self.site(current.primary)
        if primary.name not in opened:
            raise failed[primary.name]
        src = opened[primary.name]
        run_stage(self, "pre_replicate", self._access, site=primary.name)
        covered = [m for m in src.snapshots() if self.covers(m)]
        newest = max((m.time for m in covered), default=None)
        others = [s for s in self.sites if s.name != primary.name]
        results = []
        for site in others:
            dst, error = opened.get(site.name), failed.get(site.name)
            share = None if callback is None else _SiteShare(callback)
            results.append(self._replicate_one(src, site, dst, error, covered, newest, now, share))
            if share is not None:
                share.settle()
        if callback is not None:
            _SiteShare(callback).settle()  # no site to copy to: a size of 0
        result = ReplicateResult(self.name, now, primary.name, results)
        for rec in results:
            records.save_record(src, rec)
        run_stage(self, "post_replicate", self._access, site=primary.name)
        return result

    def _replicate_one(
        self,
        src: Repository,
        site: Site,
        dst: Repository | None,
        error: SnapvaultError | None,
        covered: list[Manifest],
        newest: datetime | None,
        now: datetime,
        callback: Any = None,
    ) -> ReplicationRecord:
        base: dict[str, Any] = {"id": uuid.uuid4().hex, "plan": self.name, "site": site.name, "time": now}
        t0 = self._clock()
        try:
            if dst is None:
                assert error is not None
                raise error
            records.sync_records(src, dst, self.name, _SYNCED)
            records.sync_policies(src, dst, self, now)
            copied = src.copy_snapshots(dst, covered, callback=callback)
            have = [m.time for m in dst.snapshots() if self.covers(m)] if copied.copied else None
        except SnapvaultError as e:
            return ReplicationRecord(
                **base, ok=False, error=_error_line(e), error_type=type(e).__name__, seconds=self._clock() - t0
            )
        except OSError as e:  # a backend error the store did not map: still this site's alone
            return ReplicationRecord(
                **base, ok=False, error=_error_line(e), error_type=type(e).__name__, seconds=self._clock() - t0
            )
        # After a complete run the site holds every covered snapshot: its newest is the
        # primary's. Listing it again is needed only to say so when something was copied.
        site_newest = newest if have is None else max(have, default=None)
        lag = None if newest is None or site_newest is None else (newest - site_newest).total_seconds()
        rec = ReplicationRecord(
            **base,
            ok=True,
            copied=len(copied.copied),
            skipped=len(copied.skipped),
            bytes_uploaded=copied.bytes_uploaded,
            seconds=self._clock() - t0,
            lag_s=lag,
        )
        # The site keeps the record of its own copy too: a scheduler asking a replica when the
        # plan last replicated (``due``) finds the answer there, without the whole history.
        with contextlib.suppress(SnapvaultError):
            records.save_record(dst, rec)
        return rec

    # -- status ----------------------------------------------------------------------------

    def status(self, *, now: datetime, repair: bool = True) -> PlanStatus:
        """Each site's state at ``now``: reachable, newest covered snapshot per policy and its
        age against the RPO, the last drill against the RTO, and whether it is a stale primary.

        With ``repair`` (the default) a reachable site that lacks the failover record in force
        gets it, so a primary that comes back after a failover it missed refuses writes from
        then on.
        """
        now = _aware(now)
        opened, failed = self._open_all()
        failovers = self._failovers(opened)
        current = records.current_failover(failovers, now)
        primary = self.primary if current is None else self.site(current.primary)
        history = self._history(opened, primary.name)
        sites = []
        violations = []
        for site in self.sites:
            repo = opened.get(site.name)
            drills = [d for d in history[1] if d.site == site.name and d.time <= now]
            reps = [r for r in history[0] if r.site == site.name and r.time <= now]
            st = self._site_status(site, repo, failed.get(site.name), primary, current, drills, reps, now, repair)
            sites.append(st)
            for o in st.objectives:
                if o.verdict in ("violated", "failed"):
                    detail = f" ({o.detail})" if o.detail else ""
                    violations.append(f"{site.name}: {o.objective} {o.verdict}{detail}")
            if not st.reachable:
                violations.append(f"{site.name}: unreachable ({st.error_type}: {st.error})")
        return PlanStatus(self.name, now, primary.name, current, sites, violations)

    def _history(
        self, opened: Mapping[str, Repository], primary: str
    ) -> tuple[list[ReplicationRecord], list[DrillRecord]]:
        """Replication and drill records: from the primary, else from any reachable site."""
        order = [primary, *(n for n in opened if n != primary)]
        reps: dict[str, ReplicationRecord] = {}
        drills: dict[str, DrillRecord] = {}
        for name in order:
            repo = opened.get(name)
            if repo is None:
                continue
            try:
                for r in records.load_records(repo, ReplicationRecord, self.name):
                    reps.setdefault(r.id, r)
                for d in records.load_records(repo, DrillRecord, self.name):
                    drills.setdefault(d.id, d)
            except SnapvaultError:
                continue
        return (
            sorted(reps.values(), key=lambda r: (r.time, r.id)),
            sorted(drills.values(), key=lambda d: (d.time, d.id)),
        )

    def _site_status(
        self,
        site: Site,
        repo: Repository | None,
        error: SnapvaultError | None,
        primary: Site,
        current: FailoverRecord | None,
        drills: list[DrillRecord],
        reps: list[ReplicationRecord],
        now: datetime,
        repair: bool,
    ) -> SiteStatus:
        groups = list(self.policies) if self.policies and not self.tags else ["*"]
        newest: dict[str, datetime | None] = dict.fromkeys(groups)
        stale = False
        if repo is not None:
            try:
                for m in repo.snapshots():
                    if not self.covers(m) or m.time > now:
                        continue
                    group = m.policy if groups != ["*"] else "*"
                    if group in newest and (newest[group] is None or m.time > newest[group]):  # type: ignore[operator]
                        newest[group] = m.time
                mine = records.current_failover(records.load_records(repo, FailoverRecord, self.name), now)
                stale = current is not None and (mine is None or mine.id != current.id)
                if stale and repair and current is not None:
                    records.save_record(repo, current)
            except SnapvaultError as e:
                repo, error = None, e
        objectives = []
        rpo = self.rpo_of(site).total_seconds()
        for group, when in newest.items():
            name = "rpo" if group == "*" else f"rpo:{group}"
            if repo is None:
                objectives.append(ObjectiveState(name, "unknown", rpo, None, None, "site unreachable"))
            elif when is None:
                objectives.append(ObjectiveState(name, "violated", rpo, None, None, "no covered snapshot at the site"))
            else:
                age = (now - when).total_seconds()
                verdict = "met" if age <= rpo else "violated"
                detail = f"newest {age / 3600:.1f}h old" + ("" if verdict == "met" else f", {span(age - rpo)} over")
                objectives.append(ObjectiveState(name, verdict, rpo, age, age - rpo, detail))
        last = drills[-1] if drills else None
        rto = self.rto_of(site)
        if rto is not None or last is not None:
            target = None if rto is None else rto.total_seconds()
            if last is None:
                objectives.append(ObjectiveState("rto", "unknown", target, None, None, "never drilled"))
            elif not last.ok:
                objectives.append(ObjectiveState("rto", "failed", target, None, None, last.error or "drill failed"))
            elif target is None or last.rto_estimate_s is None:
                objectives.append(ObjectiveState("rto", "met", target, last.rto_estimate_s, None, "drill passed"))
            else:
                over = last.rto_estimate_s - target
                verdict = "met" if over <= 0 else "violated"
                detail = f"estimated {span(last.rto_estimate_s)}" + ("" if over <= 0 else f", {span(over)} over")
                objectives.append(ObjectiveState("rto", verdict, target, last.rto_estimate_s, over, detail))
        return SiteStatus(
            site=site.name,
            region=site.region,
            primary=site.name == primary.name,
            reachable=repo is not None,
            error=None if error is None else _error_line(error),
            error_type=None if error is None else type(error).__name__,
            stale=stale,
            newest=newest,
            objectives=objectives,
            last_drill=last,
            last_replication=reps[-1] if reps else None,
        )

    # -- drills ----------------------------------------------------------------------------

    def drill(self, *, site: str | None = None, now: datetime, callback: Any = None) -> DrillRecord:
        """Restore from ``site`` (default: each replica in turn is a separate call; here the
        first replica) for real, verify every restored byte, measure, and record the drill.

        Parameters
        ----------
        site : str, optional
            The site to drill.
        now : datetime
            Timezone-aware; the record's time.
        callback : fsspec.callbacks.Callback, optional
            Told the bytes the restore will write (``set_size``) and each stretch written.

        Returns
        -------
        DrillRecord
            ``ok`` False names what failed (snapshot, path, pack); the record is stored in the
            primary in force (and in the drilled site) either way.
        """
        now = _aware(now)
        target = self.site(site) if site is not None else self.replicas[0]
        rec = drill_site(
            self,
            target,
            lambda s: open_site(s, self._access),
            now=now,
            clock=self._clock,
            callback=callback,
            target_options=self._drill_options(),
        )
        self._store_drill(rec, now)
        return rec

    def _drill_options(self) -> dict[str, Any]:
        d = self.drill_settings
        return referenced_options("drill target", d.target_options_file, d.target_options_env, self._access)

    def _store_drill(self, rec: DrillRecord, now: datetime) -> None:
        opened, _ = self._open_all()
        current = records.current_failover(self._failovers(opened), now)
        primary = self.primary.name if current is None else current.primary
        for name in dict.fromkeys([primary, rec.site]):
            if name in opened:
                try:
                    records.save_record(opened[name], rec)
                except SnapvaultError:
                    continue  # the drill's finding stands; a site that refuses the record says so itself

    # -- failover --------------------------------------------------------------------------

    def failover(
        self, *, to: str, reason: str, now: datetime, kind: Literal["failover", "failback"] = "failover"
    ) -> FailoverRecord:
        """Make site ``to`` the primary from ``now`` on.

        Steps: the ``pre_failover`` hooks; a drill of ``to`` (it must pass); the ``promote``
        hooks (update DNS, start services); a failover record written to ``to`` first, then to
        every other reachable site; the ``post_failover`` hooks. Hook output is in the record
        (``post_failover``'s in the returned one).

        Raises
        ------
        FailoverError
            If ``to`` is the primary already, or fails its drill (nothing is recorded).
        HookError
            If a hook fails before the record is written (nothing is recorded).
        """
        now = _aware(now)
        target = self.site(to)
        if not reason.strip():
            raise ConfigError("a failover needs a reason")
        opened, failed = self._open_all()
        current = records.current_failover(self._failovers(opened), now)
        previous = self.primary.name if current is None else current.primary
        if previous == target.name:
            raise FailoverError(f"site {to!r} is the primary of plan {self.name!r} already")
        if target.name not in opened:
            raise FailoverError(f"site {to!r} cannot be reached: {_error_line(failed[target.name])}")
        runs: list[HookRun] = []
        runs += run_stage(self, "pre_failover", self._access, site=to)
        check = drill_site(
            self, target, lambda s: opened[s.name], now=now, clock=self._clock, target_options=self._drill_options()
        )
        self._store_drill(check, now)
        if not check.ok:
            raise FailoverError(f"site {to!r} failed its drill, so it was not promoted: {check.error}")
        runs += run_stage(self, "promote", self._access, site=to)
        rec = FailoverRecord(
            id=uuid.uuid4().hex,
            plan=self.name,
            time=now,
            kind=kind,
            primary=target.name,
            primary_repository_id=opened[target.name].config.repository_id,
            previous=previous,
            reason=reason,
            hooks=runs,
        )
        # The new primary first: once it holds the record, the union of the sites' records
        # names it, whichever other site a crash left without one.
        records.save_record(opened[target.name], rec)
        for name, repo in opened.items():
            if name != target.name:
                try:
                    records.save_record(repo, rec)
                    records.sync_records(opened[target.name], repo, self.name, ())
                except SnapvaultError:
                    continue  # status repairs it once the site answers
        try:
            post = run_stage(self, "post_failover", self._access, site=to)
        except HookError as e:
            post = list(getattr(e, "runs", []))
        return rec.model_copy(update={"hooks": [*runs, *post]})

    def failback(self, *, reason: str, now: datetime) -> FailoverRecord:
        """Return the writes to the plan's own ``primary``: first copy to it every covered
        snapshot made elsewhere meanwhile, then fail over to it (a drill first, as always)."""
        now = _aware(now)
        opened, failed = self._open_all()
        current = records.current_failover(self._failovers(opened), now)
        if current is None or current.primary == self.primary.name:
            raise FailoverError(f"plan {self.name!r} has not failed over; its primary is {self.primary.name!r}")
        if self.primary.name not in opened:
            why = _error_line(failed[self.primary.name])
            raise FailoverError(f"site {self.primary.name!r} cannot be reached: {why}")
        if current.primary in opened:
            src = opened[current.primary]
            src.copy_snapshots(opened[self.primary.name], [m for m in src.snapshots() if self.covers(m)])
        return self.failover(to=self.primary.name, reason=reason, now=now, kind="failback")

    # -- report ----------------------------------------------------------------------------

    def report(self, *, now: datetime, format: Literal["json", "markdown", "html"] = "json") -> str:
        """Objectives, each site's state, replication lag and drill history with measured RTOs,
        and a verdict per objective, as JSON, Markdown or a self-contained HTML page."""
        from snapvault.dr.report import render_report

        now = _aware(now)
        st = self.status(now=now, repair=False)
        opened, _ = self._open_all()
        reps, drills = self._history(opened, st.primary)
        fails = self._failovers(opened)
        return render_report(self, st, replications=reps, drills=drills, failovers=fails, format=format)

    # -- async -----------------------------------------------------------------------------

    async def areplicate(self, *, now: datetime, callback: Any = None) -> ReplicateResult:
        """:meth:`replicate` in a worker thread (for services' event loops)."""
        return await asyncio.to_thread(functools.partial(self.replicate, now=now, callback=callback))

    async def astatus(self, *, now: datetime) -> PlanStatus:
        """:meth:`status` in a worker thread."""
        return await asyncio.to_thread(functools.partial(self.status, now=now))

    async def adrill(self, *, site: str | None = None, now: datetime, callback: Any = None) -> DrillRecord:
        """:meth:`drill` in a worker thread."""
        return await asyncio.to_thread(functools.partial(self.drill, site=site, now=now, callback=callback))

    async def afailover(self, *, to: str, reason: str, now: datetime) -> FailoverRecord:
        """:meth:`failover` in a worker thread."""
        return await asyncio.to_thread(functools.partial(self.failover, to=to, reason=reason, now=now))

    async def afailback(self, *, reason: str, now: datetime) -> FailoverRecord:
        """:meth:`failback` in a worker thread."""
        return await asyncio.to_thread(functools.partial(self.failback, reason=reason, now=now))

    async def areport(self, *, now: datetime, format: Literal["json", "markdown", "html"] = "json") -> str:
        """:meth:`report` in a worker thread."""
        return await asyncio.to_thread(functools.partial(self.report, now=now, format=format))
