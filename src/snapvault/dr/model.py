"""What a disaster-recovery plan says, and the records its runs leave: frozen pydantic models.

:class:`PlanSpec` holds a plan's fields: its sites (each a name, a region label, an fsspec URL,
and *references* to its storage options and password, never the secrets), its objectives
(RPO: how old the newest copy at a site may be; RTO: how long a restore may take) and what it
covers (policies, tags), how a drill restores, and its stored hooks. :class:`snapvault.DRPlan`
adds the operations; this module is below the engine so that the engine can read who is
primary without importing them.

The records are what runs prove: a :class:`ReplicationRecord` per site and run (lag history),
a :class:`DrillRecord` per drill (the measured recovery time), a :class:`FailoverRecord` per
change of primary. All are stored create-only (docs/format.md, "Disaster-recovery records").
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from snapvault.errors import ConfigError
from snapvault.policy.retention import parse_duration

__all__ = [
    "HOOK_STAGES",
    "DrillRecord",
    "DrillSettings",
    "FailoverRecord",
    "HookRun",
    "PlanSpec",
    "ReplicationRecord",
    "Site",
    "covers",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: When stored hooks run: around a replication, and around a failover (``promote`` runs after
#: the target passed its drill and before the failover record is written: update DNS there).
HOOK_STAGES = ("pre_replicate", "post_replicate", "pre_failover", "promote", "post_failover")


def _duration(value: Any) -> Any:
    """``"6h"``, ``"1d12h"`` (as ``keep_within``), seconds, an ISO 8601 duration or a timedelta."""
    if isinstance(value, str) and value and value[0] != "P":
        return parse_duration(value)
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Site(_Frozen):
    """One copy of the repository: where it is and how to open it, by reference.

    Parameters
    ----------
    name : str
        1-64 letters, digits, ``.``, ``_``, ``-``; unique within the plan.
    region : str
        A label for reports ("eu-west-1", "on-prem").
    url : str
        The repository's fsspec URL.
    options_env, options_file : str, optional
        Where its storage options are: the name of an environment variable holding a JSON
        object, or a JSON file on the machine that runs the plan. Never the options themselves:
        a plan is stored, and must hold no secret.
    password_env, password_file : str, optional
        Where its password is, the same way. ``no_password`` for an unencrypted repository.
    rpo, rto : timedelta, optional
        This site's objectives, instead of the plan's.
    """

    name: str
    region: str = ""
    url: str
    options_env: str | None = None
    options_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    no_password: bool = False
    rpo: timedelta | None = None
    rto: timedelta | None = None

    _rpo = field_validator("rpo", "rto", mode="before")(_duration)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"site name {v!r} must be 1-64 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            raise ValueError("a site needs a URL")
        return v


class DrillSettings(_Frozen):
    """How much a drill restores, and where.

    Parameters
    ----------
    sample_files : int, optional
        Restore this many of the snapshot's files, chosen at random (seeded by the drill).
    sample_percent : float, optional
        Or this share (0, 100] of them. Neither: the whole snapshot.
    target : str, optional
        Where to restore: a local directory or any fsspec URL (a fresh folder below it per
        drill, removed after); default a temporary local directory.
    target_options_env, target_options_file : str, optional
        Where a URL target's storage options are (a variable holding JSON, or a JSON file), as
        for a site.
    verify_packs : bool
        Also read and authenticate every pack the snapshot uses, so damage outside the sample
        fails the drill too (default True).
    """

    sample_files: int | None = Field(default=None, ge=1)
    sample_percent: float | None = Field(default=None, gt=0, le=100)
    target: str | None = None
    target_options_env: str | None = None
    target_options_file: str | None = None
    verify_packs: bool = True

    @model_validator(mode="after")
    def _one_sample(self) -> DrillSettings:
        if self.sample_files is not None and self.sample_percent is not None:
            raise ValueError("give sample_files or sample_percent, not both")
        return self


class PlanSpec(_Frozen):
    """The fields of a DR plan (see :class:`snapvault.DRPlan` for what it does).

    Parameters
    ----------
    name : str
        1-64 letters, digits, ``.``, ``_``, ``-``.
    primary : Site
        Where backups are written until a failover.
    replicas : list of Site
        The copies (at least one); site names are unique across the plan.
    rpo : timedelta
        The recovery point objective: the newest covered snapshot at each site must be at most
        this old (per covered policy when ``policies`` is given, else over all covered
        snapshots). ``"6h"``-style text is accepted.
    rto : timedelta, optional
        The recovery time objective: a full restore of the drilled snapshot, as extrapolated
        from a drill's measured throughput, must take at most this long.
    policies, tags : list of str
        What the plan covers: snapshots of these policies, or with any of these tags; neither:
        every snapshot.
    rto_policy : str, optional
        Whose latest snapshot a drill restores; default the newest covered snapshot.
    drill_settings : DrillSettings
        How much a drill restores, and where.
    shared_params : bool
        Whether the sites share content parameters with the primary (fast, deduplicated copies,
        one content key) or have independent keys (every blob re-encrypted). ``init_sites``
        creates the replicas so; replication works either way.
    schedule : str, optional
        Cron expression: ``snapvault due --run`` replicates when it is due.
    timezone : str
        IANA zone of ``schedule``.
    hooks : dict of stage to list of str
        Shell commands per stage (:data:`HOOK_STAGES`); they run only where the local allowlist
        has them, as policy hooks do.
    """

    name: str
    primary: Site
    replicas: list[Site] = Field(min_length=1)
    rpo: timedelta
    rto: timedelta | None = None
    policies: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    rto_policy: str | None = None
    drill_settings: DrillSettings = Field(default_factory=DrillSettings)
    shared_params: bool = True
    schedule: str | None = None
    timezone: str = "UTC"
    hooks: dict[str, list[str]] = Field(default_factory=dict)

    _durations = field_validator("rpo", "rto", mode="before")(_duration)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"plan name {v!r} must be 1-64 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("hooks")
    @classmethod
    def _stages(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(v) - set(HOOK_STAGES))
        if unknown:
            raise ValueError(f"unknown hook stage(s) {unknown}; known: {list(HOOK_STAGES)}")
        return v

    @model_validator(mode="after")
    def _checks(self) -> PlanSpec:
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError(f"site names must be unique, not {names}")
        if self.rpo <= timedelta(0) or (self.rto is not None and self.rto <= timedelta(0)):
            raise ValueError("rpo and rto must be positive")
        if self.schedule is not None:
            from snapvault.policy import cron

            try:
                cron.validate(self.schedule)
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return self

    @property
    def sites(self) -> list[Site]:
        """The primary, then the replicas."""
        return [self.primary, *self.replicas]

    def site(self, name: str) -> Site:
        """The site called ``name``.

        Raises
        ------
        ConfigError
            If the plan has none.
        """
        for s in self.sites:
            if s.name == name:
                return s
        raise ConfigError(f"plan {self.name!r} has no site {name!r}; its sites: {[s.name for s in self.sites]}")

    def rpo_of(self, site: Site) -> timedelta:
        return site.rpo or self.rpo

    def rto_of(self, site: Site) -> timedelta | None:
        return site.rto or self.rto


def covers(plan: PlanSpec, policy: str | None, tags: list[str]) -> bool:
    """Whether a snapshot of ``policy`` with ``tags`` is one the plan keeps copies of."""
    if not plan.policies and not plan.tags:
        return True
    return (policy is not None and policy in plan.policies) or any(t in plan.tags for t in tags)


class HookRun(_Frozen):
    """One stored or library hook that ran: its stage, command (or callable name), exit code
    and output (the first 64 KiB)."""

    stage: str
    command: str
    exit_code: int
    output: str = ""


class ReplicationRecord(_Frozen):
    """What one replication run did for one site (written to the primary; the lag history)."""

    id: str
    plan: str
    site: str
    time: AwareDatetime
    ok: bool
    error: str | None = None
    error_type: str | None = None
    copied: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0
    #: The primary's newest covered snapshot time minus the site's, after the run (None: the
    #: site holds no covered snapshot, or could not be reached).
    lag_s: float | None = None


class DrillRecord(_Frozen):
    """A drill: a real restore from one site, what it measured, and whether it passed."""

    id: str
    plan: str
    site: str
    time: AwareDatetime
    ok: bool
    snapshot_id: str | None = None
    snapshot_time: datetime | None = None
    error: str | None = None
    error_type: str | None = None
    #: Where the damage is, as far as the drill could tell.
    path: str | None = None
    pack_id: str | None = None
    files_restored: int = 0
    bytes_restored: int = 0
    snapshot_bytes: int = 0
    setup_s: float = 0.0
    check_s: float = 0.0
    restore_s: float = 0.0
    verify_s: float = 0.0
    throughput_bps: float | None = None
    #: Open and check, plus the snapshot's bytes at the measured throughput.
    rto_estimate_s: float | None = None
    rto_objective_s: float | None = None
    sample: str = "all"


FailoverKind = Literal["failover", "failback"]


class FailoverRecord(_Frozen):
    """A change of primary: from ``time`` on, ``primary`` (repository ``primary_repository_id``)
    takes the covered policies' writes. The newest record (by time, then id) wins."""

    id: str
    plan: str
    time: AwareDatetime
    kind: FailoverKind
    primary: str
    primary_repository_id: str
    previous: str
    reason: str
    hooks: list[HookRun] = Field(default_factory=list)

    def order(self) -> tuple[datetime, str]:
        return (self.time, self.id)
