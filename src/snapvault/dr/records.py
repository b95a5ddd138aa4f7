"""DR plans and the records of their runs, stored sealed and create-only in a repository.

``dr-plans/<hex>`` = seal({"name", "saved_at", "plan"}) as policies are: the newest record of a
name wins and ``"plan": null`` removes the name. ``dr-failovers/``, ``dr-drills/`` and
``dr-replications/`` each hold one record per event (docs/format.md, "Disaster-recovery
records"). Every record carries a random ``id``, so a record copied to another site (sealed
again with that site's key) is recognised there and never copied twice.

:func:`check_write_target` is the engine's guard: a policy a plan covers is not backed up into
a repository that a failover record says is no longer the primary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from snapvault.dr.model import DrillRecord, FailoverRecord, PlanSpec, ReplicationRecord, covers
from snapvault.errors import IntegrityError, PlanNotFound, StalePrimaryError
from snapvault.repository import layout

__all__ = [
    "KINDS",
    "RecordStore",
    "check_write_target",
    "current_failover",
    "load_records",
    "read_plans",
    "save_plan_record",
    "save_record",
    "sync_policies",
    "sync_records",
]

PLAN_AD = b"snapvault dr plan"
_AD = {
    layout.DR_FAILOVERS: b"snapvault dr failover",
    layout.DR_DRILLS: b"snapvault dr drill",
    layout.DR_REPLICATIONS: b"snapvault dr replication",
}
#: The record kinds and their models, by folder.
KINDS: dict[str, type[BaseModel]] = {
    layout.DR_FAILOVERS: FailoverRecord,
    layout.DR_DRILLS: DrillRecord,
    layout.DR_REPLICATIONS: ReplicationRecord,
}
R = TypeVar("R", bound=BaseModel)


class RecordStore(Protocol):
    """What the records need of a repository: sealed, content-named objects in a folder."""

    def write_sealed(self, folder: str, data: bytes, ad: bytes) -> str:
        """Seal ``data`` and store it in ``folder``; return its name."""
        ...

    def read_sealed(self, key: str, ad: bytes) -> bytes:
        """Read and open a sealed object, verifying its name and authenticity."""
        ...

    def list_keys(self, folder: str) -> list[str]:
        """Keys of every object in ``folder``, sorted."""
        ...


# -- plans ----------------------------------------------------------------------------------


def save_plan_record(repo: RecordStore, name: str, plan: PlanSpec | None, now: datetime) -> None:
    """Write a plan record (``plan=None`` removes the name)."""
    body = {"name": name, "saved_at": now.isoformat(), "plan": None if plan is None else plan.model_dump(mode="json")}
    repo.write_sealed(layout.DR_PLANS, json.dumps(body, sort_keys=True).encode(), PLAN_AD)


def _plan_bodies(repo: RecordStore) -> dict[str, tuple[datetime, str, Any]]:
    """The newest record per name: (saved_at, key, plan body or None)."""
    newest: dict[str, tuple[datetime, str, Any]] = {}
    for key in repo.list_keys(layout.DR_PLANS):
        try:
            doc = json.loads(repo.read_sealed(key, PLAN_AD))
            name, when = doc["name"], datetime.fromisoformat(doc["saved_at"])
            if not isinstance(name, str) or when.tzinfo is None or "plan" not in doc:
                raise ValueError("not a plan record")
        except IntegrityError:
            raise
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            raise IntegrityError(f"{key} is not a DR plan record: {e}", key=key) from None
        cur = newest.get(name)
        if cur is None or (when, key) > (cur[0], cur[1]):
            newest[name] = (when, key, doc["plan"])
    return newest


def read_plans(repo: RecordStore, model: type[R]) -> dict[str, R]:
    """Every stored plan by name, validated as ``model`` (PlanSpec or DRPlan).

    Raises
    ------
    IntegrityError
        If a record is damaged or does not validate (naming its key).
    """
    out: dict[str, R] = {}
    for name, (_, key, body) in sorted(_plan_bodies(repo).items()):
        if body is None:
            continue
        try:
            out[name] = model.model_validate(body)
        except ValidationError as e:
            raise IntegrityError(f"{key}: stored DR plan {name!r} does not validate: {e}", key=key) from None
    return out


def load_plan(repo: RecordStore, name: str, model: type[R]) -> R:
    """The stored plan ``name``; PlanNotFound if there is none."""
    plans = read_plans(repo, model)
    if name not in plans:
        raise PlanNotFound(f"no DR plan named {name!r}", name=name)
    return plans[name]


# -- event records --------------------------------------------------------------------------


def save_record(repo: RecordStore, record: BaseModel) -> None:
    """Store a failover, drill or replication record (create-only)."""
    folder = next(f for f, model in KINDS.items() if isinstance(record, model))
    repo.write_sealed(folder, record.model_dump_json().encode(), _AD[folder])


def load_records(repo: RecordStore, model: type[R], plan: str | None = None) -> list[R]:
    """Every record of one kind (optionally of one plan), oldest first by time, then id.

    Raises
    ------
    IntegrityError
        If a record is damaged or is not of its kind.
    """
    folder = next(f for f, m in KINDS.items() if m is model)
    out = []
    for key in repo.list_keys(folder):
        try:
            rec = model.model_validate_json(repo.read_sealed(key, _AD[folder]))
        except ValidationError as e:
            raise IntegrityError(f"{key} is not a {folder} record: {e}", key=key) from None
        if plan is None or getattr(rec, "plan", None) == plan:
            out.append(rec)
    out.sort(key=lambda r: (r.time, r.id))  # type: ignore[attr-defined]
    return out


def sync_records(src: RecordStore, dst: RecordStore, plan: str, folders: Iterable[str]) -> int:
    """Copy to ``dst`` the records of ``plan`` in ``folders`` it lacks (matched by ``id``), and
    the plan's newest plan record if ``dst`` does not hold the same plan; return how many."""
    written = 0
    for folder in folders:
        model = KINDS[folder]
        have = {r.id for r in load_records(dst, model, plan)}  # type: ignore[attr-defined]
        for rec in load_records(src, model, plan):
            if rec.id not in have:  # type: ignore[attr-defined]
                save_record(dst, rec)
                written += 1
    mine, theirs = _plan_bodies(src).get(plan), _plan_bodies(dst).get(plan)
    if mine is not None and (theirs is None or theirs[2] != mine[2]):
        body = {"name": plan, "saved_at": mine[0].isoformat(), "plan": mine[2]}
        dst.write_sealed(layout.DR_PLANS, json.dumps(body, sort_keys=True).encode(), PLAN_AD)
        written += 1
    return written


def sync_policies(src: RecordStore, dst: RecordStore, plan: PlanSpec, now: datetime) -> int:
    """Store at ``dst`` each policy of ``src`` the plan covers that ``dst`` lacks or holds in
    another version, so that after a failover the new primary can run it; return how many."""
    from snapvault.policy.records import read_policies, save_policy_record

    theirs = read_policies(dst).policies
    written = 0
    for name, pol in read_policies(src).policies.items():
        if covers(plan, name, list(pol.tags)) and theirs.get(name) != pol:
            save_policy_record(dst, name, pol, now)
            written += 1
    return written


def current_failover(records: Iterable[FailoverRecord], now: datetime) -> FailoverRecord | None:
    """The failover in force at ``now``: the newest record (time, then id) not after it."""
    valid = [r for r in records if r.time <= now]
    return max(valid, key=FailoverRecord.order, default=None)


def check_write_target(
    repo: RecordStore,
    repository_id: str,
    policy: str | None,
    tags: list[str],
    now: datetime | None,
    clock: Callable[[], datetime],
) -> None:
    """Refuse a backup of ``policy`` (None: not a policy's) with ``tags`` into this repository
    when a plan covering it has failed over to another site (per the failover records this
    repository holds). ``clock`` gives the time when ``now`` is None, and is read only when the
    repository holds a plan.

    Raises
    ------
    StalePrimaryError
        Naming the plan and the site that is primary now.
    """
    if not repo.list_keys(layout.DR_PLANS):
        return
    now = now or clock()
    for name, plan in read_plans(repo, PlanSpec).items():
        if not covers(plan, policy, tags):
            continue
        current = current_failover(load_records(repo, FailoverRecord, name), now)
        if current is not None and current.primary_repository_id != repository_id:
            raise StalePrimaryError(
                f"DR plan {name!r} failed over to site {current.primary!r} at {current.time.isoformat()} "
                f"({current.reason}); this repository is not its primary: back up there, or fail back "
                f"('snapvault dr failback {name}')"
            )
