"""What :meth:`snapvault.DRPlan.status` and :meth:`~snapvault.DRPlan.replicate` return.

Plain frozen dataclasses with a ``to_json()``: a status is computed from what each site holds
at the ``now`` it is given, and from the records earlier runs left, never from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapvault.dr.model import DrillRecord, FailoverRecord, ReplicationRecord

__all__ = ["ObjectiveState", "PlanStatus", "ReplicateResult", "SiteStatus"]


@dataclass(frozen=True)
class ObjectiveState:
    """One objective at one site: its verdict and the numbers behind it.

    ``verdict`` is ``met``, ``violated``, ``failed`` (the last drill failed), or ``unknown``
    (the site could not be reached, holds nothing covered, or was never drilled).
    """

    objective: str  # "rpo" or "rto", with the policy for a per-policy RPO: "rpo:nightly"
    verdict: str
    target_s: float | None
    actual_s: float | None
    #: How far past the objective (positive) or inside it (negative), in seconds.
    margin_s: float | None
    detail: str = ""


@dataclass(frozen=True)
class SiteStatus:
    """One site of a plan at ``PlanStatus.time``."""

    site: str
    region: str
    primary: bool
    reachable: bool
    error: str | None
    error_type: str | None
    #: The site holds a failover record older than the one in force, or none while one is:
    #: a primary that came back after a failover it missed. ``status`` repairs it.
    stale: bool
    #: Newest covered snapshot time per covered policy (``"*"`` when the plan covers tags or
    #: everything); None where the site holds none.
    newest: dict[str, datetime | None]
    objectives: list[ObjectiveState]
    last_drill: DrillRecord | None
    last_replication: ReplicationRecord | None

    @property
    def ok(self) -> bool:
        return self.reachable and all(o.verdict == "met" for o in self.objectives)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "region": self.region,
            "primary": self.primary,
            "reachable": self.reachable,
            "error": self.error,
            "error_type": self.error_type,
            "stale": self.stale,
            "newest": {k: None if v is None else v.isoformat() for k, v in self.newest.items()},
            "objectives": [o.__dict__ for o in self.objectives],
            "last_drill": None if self.last_drill is None else self.last_drill.model_dump(mode="json"),
            "last_replication": None
            if self.last_replication is None
            else self.last_replication.model_dump(mode="json"),
            "ok": self.ok,
        }


@dataclass(frozen=True)
class PlanStatus:
    """A plan at one moment: the primary in force, and every site's state and objectives."""

    plan: str
    time: datetime
    primary: str
    failover: FailoverRecord | None
    sites: list[SiteStatus]
    #: One line per objective not met, per site ("s3: rpo violated by 2h 5m").
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every objective at every site met (what monitoring alerts on)."""
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "time": self.time.isoformat(),
            "primary": self.primary,
            "failover": None if self.failover is None else self.failover.model_dump(mode="json"),
            "ok": self.ok,
            "violations": self.violations,
            "sites": [s.to_json() for s in self.sites],
        }


@dataclass(frozen=True)
class ReplicateResult:
    """One replication run: from which primary, and per replica what happened."""

    plan: str
    time: datetime
    primary: str
    sites: list[ReplicationRecord]

    @property
    def ok(self) -> bool:
        """Every replica was reached and received what it lacked."""
        return all(s.ok for s in self.sites)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "time": self.time.isoformat(),
            "primary": self.primary,
            "ok": self.ok,
            "sites": [s.model_dump(mode="json") for s in self.sites],
        }
