"""Policies and run records: small sealed JSON documents in the repository.

Both follow the create-only rule. Saving a policy writes a new record
``policies/<hex>`` = seal({"name", "saved_at", "policy"}); the newest record of a name wins,
and a record whose ``policy`` is null removes the name. A run record
``runs/<hex>`` = seal({...}) is written when a policy's backup ends, successful or not, so
monitoring can count failures that left no snapshot.

A policy record this process cannot read (its retention strategy is not installed here, or it
is damaged) hides no other: it is reported as a :class:`BrokenPolicy`. When the newest record
of a name is the unreadable one, the name is broken; an older record of it is never used in
its place, since that would silently run an outdated policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from snapvault.errors import ConfigError, IntegrityError, PolicyNotFound, SnapvaultError
from snapvault.repository import layout

if TYPE_CHECKING:
    from snapvault.policy.model import Policy

__all__ = [
    "POLICY_AD",
    "RUN_AD",
    "BrokenPolicy",
    "PolicyRecords",
    "RecordStore",
    "RunRecord",
    "load_policy",
    "load_runs",
    "read_policies",
    "remove_policy",
    "save_policy",
    "save_policy_record",
    "save_run",
]

POLICY_AD = b"snapvault policy"
RUN_AD = b"snapvault run"


class RecordStore(Protocol):
    """What policy and run records need of a repository: sealed, content-named objects in a folder."""

    def write_sealed(self, folder: str, data: bytes, ad: bytes) -> str:
        """Seal ``data`` and store it in ``folder``; return its name."""
        ...

    def read_sealed(self, key: str, ad: bytes) -> bytes:
        """Read and open a sealed object, verifying its name and authenticity."""
        ...

    def list_keys(self, folder: str) -> list[str]:
        """Keys of every object in ``folder``, sorted."""
        ...


@dataclass(frozen=True)
class BrokenPolicy:
    """A stored policy record that cannot be read here.

    Attributes
    ----------
    name : str or None
        The policy it holds; None when the record itself cannot be read, so that it cannot be
        told which policy it was.
    key : str
        The record's store key.
    error : SnapvaultError
        :class:`~snapvault.retention.UnknownStrategy` when the policy's retention strategy is
        not installed or registered here, IntegrityError when the record is damaged or does not
        validate.
    """

    name: str | None
    key: str
    error: SnapvaultError


class PolicyRecords(NamedTuple):
    """Every stored policy: the readable ones by name, and the records that cannot be read."""

    policies: dict[str, Policy]
    broken: list[BrokenPolicy]


class RunRecord(BaseModel):
    """The outcome of one run of a policy."""

    model_config = ConfigDict(frozen=True, extra="allow")

    policy: str
    job_id: str
    status: str  # "completed", "failed" or "cancelled"
    backup_type: str
    started: AwareDatetime
    ended: AwareDatetime
    snapshot: str | None = None
    error: str | None = None
    bytes_read: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0


def save_policy_record(repo: RecordStore, name: str, policy: Policy | None, now: datetime) -> None:
    """Write a policy record (``policy=None`` removes the name).

    Raises
    ------
    UnknownStrategy
        If the policy's retention strategy is not registered, so the record could not be read.
    ConfigError
        If the policy has callable hooks, or its strategy would read back as another value.
    """
    if policy is not None and policy.retention is not None:
        from snapvault.policy.retention import check_loadable

        check_loadable(policy.retention)
    body: dict[str, Any] = {
        "name": name,
        "saved_at": now.isoformat(),
        "policy": None if policy is None else json.loads(policy.to_json()),
    }
    repo.write_sealed(layout.POLICIES, json.dumps(body, sort_keys=True).encode(), POLICY_AD)


def _records(repo: RecordStore) -> Iterator[tuple[str, str, datetime, Any] | BrokenPolicy]:
    """(key, name, saved_at, policy body) of each record, or a BrokenPolicy naming no policy."""
    for key in repo.list_keys(layout.POLICIES):
        try:
            doc = json.loads(repo.read_sealed(key, POLICY_AD))
            if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or "policy" not in doc:
                raise ValueError("not a policy record")
            when = datetime.fromisoformat(doc["saved_at"])
            if when.tzinfo is None:
                raise ValueError("saved_at has no UTC offset")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            # An IntegrityError (damaged, or not sealed with this repository's key) names the key already.
            if not isinstance(e, IntegrityError):
                e = IntegrityError(f"{key} is not a policy record: {e}", key=key)
            yield BrokenPolicy(None, key, e)
            continue
        yield key, doc["name"], when, doc["policy"]


def read_policies(repo: RecordStore) -> PolicyRecords:
    """The current policy of every name (the newest record per name wins), and what cannot be read."""
    from snapvault.errors import UnknownStrategy
    from snapvault.policy.model import Policy

    newest: dict[str, tuple[datetime, str, Any]] = {}
    broken: list[BrokenPolicy] = []
    for rec in _records(repo):
        if isinstance(rec, BrokenPolicy):
            broken.append(rec)
            continue
        key, name, when, body = rec
        cur = newest.get(name)
        if cur is None or (when, key) > (cur[0], cur[1]):
            newest[name] = (when, key, body)
    out: dict[str, Policy] = {}
    for name, (_, key, body) in sorted(newest.items()):
        if body is None:
            continue
        try:
            pol = Policy.model_validate(body)
        except UnknownStrategy as e:
            broken.append(BrokenPolicy(name, key, UnknownStrategy(f"stored policy {name!r}: {e}", wire_id=e.wire_id)))
            continue
        except (ValueError, ConfigError) as e:
            error = IntegrityError(f"{key}: stored policy {name!r} does not validate: {e}", key=key)
            broken.append(BrokenPolicy(name, key, error))
            continue
        out[name] = pol
    return PolicyRecords(out, broken)


def save_policy(repo: RecordStore, policy: Policy, now: datetime) -> None:
    """Store ``policy`` under its name, replacing an earlier one; see ``snapvault.Repository.save_policy``."""
    save_policy_record(repo, policy.name, policy, now)


def load_policy(repo: RecordStore, name: str) -> Policy:
    """The stored policy called ``name``.

    Raises
    ------
    PolicyNotFound
        If there is none.
    UnknownStrategy, IntegrityError
        The error of its record, when it cannot be read here.
    """
    found = read_policies(repo)
    if name in found.policies:
        return found.policies[name]
    for b in found.broken:
        if b.name == name:
            raise b.error
    raise PolicyNotFound(f"no policy named {name!r}", name=name)


def remove_policy(repo: RecordStore, name: str, now: datetime) -> None:
    """Remove the stored policy ``name``, also one that cannot be read here.

    Raises
    ------
    PolicyNotFound
        If there is none.
    """
    found = read_policies(repo)
    if name not in found.policies and all(b.name != name for b in found.broken):
        raise PolicyNotFound(f"no policy named {name!r}", name=name)
    save_policy_record(repo, name, None, now)


def save_run(repo: RecordStore, record: RunRecord) -> None:
    """Write a run record."""
    repo.write_sealed(layout.RUNS, record.model_dump_json().encode(), RUN_AD)


def load_runs(repo: RecordStore, policy: str | None = None) -> list[RunRecord]:
    """Run records, oldest first, optionally of one policy."""
    out = []
    for key in repo.list_keys(layout.RUNS):
        try:
            rec = RunRecord.model_validate_json(repo.read_sealed(key, RUN_AD))
        except ValueError as e:
            # pydantic's ValidationError is a ValueError; an IntegrityError names the key already.
            if isinstance(e, IntegrityError):
                raise
            raise IntegrityError(f"{key} is not a run record: {e}", key=key) from None
        if policy is None or rec.policy == policy:
            out.append(rec)
    return sorted(out, key=lambda r: (r.started, r.job_id))
