"""Policies and run records: small sealed JSON documents in the repository.

Both follow the create-only rule. Saving a policy writes a new record
``policies/<hex>`` = seal({"name", "saved_at", "policy"}); the newest record of a name wins,
and a record whose ``policy`` is null removes the name. A run record
``runs/<hex>`` = seal({...}) is written when a policy's backup ends, successful or not, so
monitoring can count failures that left no snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from snapvault.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    from snapvault.policy import Policy
    from snapvault.repository.repo import Repository

__all__ = ["POLICY_AD", "RUN_AD", "RunRecord", "load_policies", "save_policy_record"]

POLICY_AD = b"snapvault policy"
RUN_AD = b"snapvault run"


class RunRecord(BaseModel):
    """The outcome of one run of a policy."""

    model_config = ConfigDict(frozen=True, extra="allow")

    policy: str
    job_id: str
    status: str  # "completed", "failed" or "cancelled"
    backup_type: str
    started: datetime
    ended: datetime
    snapshot: str | None = None
    error: str | None = None
    bytes_read: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0


def save_policy_record(repo: Repository, name: str, policy: Policy | None, now: datetime) -> None:
    """Write a policy record (``policy=None`` removes the name)."""
    body: dict[str, Any] = {
        "name": name,
        "saved_at": now.isoformat(),
        "policy": None if policy is None else json.loads(policy.to_json()),
    }
    repo.write_sealed("policies", json.dumps(body, sort_keys=True).encode(), POLICY_AD)


def _records(repo: Repository) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in sorted(e.key for e in repo.store.list("policies")):
        doc = json.loads(repo.read_sealed(key, POLICY_AD))
        if not isinstance(doc, dict) or "name" not in doc or "saved_at" not in doc:
            raise IntegrityError(f"{key} is not a policy record", key=key)
        yield key, doc


def load_policies(repo: Repository) -> dict[str, Policy]:
    """The current policy of every name (the newest record per name wins)."""
    from snapvault.policy import Policy

    newest: dict[str, tuple[datetime, str, dict[str, Any] | None]] = {}
    for key, doc in _records(repo):
        when = datetime.fromisoformat(doc["saved_at"])
        cur = newest.get(doc["name"])
        if cur is None or (when, key) > (cur[0], cur[1]):
            newest[doc["name"]] = (when, key, doc["policy"])
    out: dict[str, Policy] = {}
    for name, (_, key, body) in newest.items():
        if body is None:
            continue
        try:
            out[name] = Policy.model_validate(body)
        except (ValueError, ConfigError) as e:
            raise IntegrityError(f"{key}: stored policy {name!r} does not validate: {e}", key=key) from None
    return out


def save_run(repo: Repository, record: RunRecord) -> None:
    """Write a run record."""
    repo.write_sealed("runs", record.model_dump_json().encode(), RUN_AD)


def load_runs(repo: Repository, policy: str | None = None) -> list[RunRecord]:
    """Run records, oldest first, optionally of one policy."""
    out = []
    for e in repo.store.list("runs"):
        rec = RunRecord.model_validate_json(repo.read_sealed(e.key, RUN_AD))
        if policy is None or rec.policy == policy:
            out.append(rec)
    return sorted(out, key=lambda r: (r.started, r.job_id))
