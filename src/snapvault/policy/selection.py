"""Selecting snapshots, forgetting by ID or by ad-hoc rules, and re-tagging.

Nouns:

- A *filter* (:class:`SnapshotFilter`) picks snapshots by host, tags, paths and policy, with
  restic's rules: a snapshot matches when its host is one of ``hosts``, when it carries every
  tag of at least one of the ``tags`` groups (a group is one string, comma-separated:
  ``"a,b"`` means a and b; several groups mean any of them), when it holds every one of
  ``paths``, and when it was made by ``policy``. An empty part matches everything.
- A *group* (:class:`SnapshotGroup`) is the set of snapshots that share the fields named by
  ``group_by`` (any of ``host``, ``paths``, ``tags``; restic's default is host and paths).
  ``latest`` and ad-hoc retention work per group, so one machine's snapshots never push
  another's out of a "last N".
- *Ad-hoc forget* (:func:`forget_snapshots`) applies retention rules given on the spot, not
  stored in a policy, to every selected snapshot, also those a policy made; or removes the
  snapshots named by ID. The decisions and reasons have the shape of the policy form
  (:class:`snapvault.policy.retention.Decision`).
- *Re-tagging* (:func:`retag`) writes a new manifest with the new tags and every other field
  as it was, plus ``retagged_from``: the ID the snapshot had when it was first written (kept
  through later re-tags). The old manifest is deleted only after the new one is saved, so a
  crash in between leaves both, never neither. Manifests are never edited in place (their ID
  is the hash of their stored bytes).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from snapvault.errors import AppendOnlyError, ConfigError, SnapshotNotFound
from snapvault.policy.retention import GFS, Decision, KeepLast, KeepTags, KeepWithin, Strategy, Union
from snapvault.repository.manifest import Manifest

__all__ = [
    "GROUP_FIELDS",
    "ForgetGroup",
    "SelectionRepository",
    "SnapshotFilter",
    "SnapshotGroup",
    "adhoc_strategy",
    "find_snapshot",
    "forget_snapshots",
    "group_snapshots",
    "latest_per_group",
    "parse_group_by",
    "retag",
    "select",
]

#: The fields snapshots can be grouped by.
GROUP_FIELDS = ("host", "paths", "tags")
#: Why a snapshot named by ID is removed.
NAMED = "named by ID"


class SelectionRepository(Protocol):
    """What selecting, forgetting and re-tagging use of a repository."""

    append_only: bool

    def snapshots(self) -> list[Manifest]:
        """Every readable snapshot's manifest, oldest first."""
        ...

    def resolve(self, ref: str) -> Manifest:
        """A snapshot by full ID, unique prefix or ``latest``."""
        ...

    def save_manifest(self, manifest: Manifest) -> Manifest:
        """Write a manifest; return it with its ID."""
        ...

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot manifest."""
        ...


def _strings(value: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(f"{what} must be a list of strings, not the string {value!r}")
    out = tuple(value)
    if not all(isinstance(v, str) for v in out):
        raise ConfigError(f"{what} must hold strings, not {list(out)!r}")
    return out


def _tag_group(text: str) -> frozenset[str]:
    return frozenset(t for t in text.split(",") if t)


@dataclass(frozen=True, init=False)
class SnapshotFilter:
    """Which snapshots to select (see the module docstring for the rules).

    Parameters
    ----------
    hosts : iterable of str
        Any of these host names.
    tags : iterable of str
        Tag groups: each is comma-separated tags that must all be present; any group suffices.
    paths : iterable of str
        Absolute paths that must all be among the snapshot's paths (compared normalised).
    policy : str, optional
        Only snapshots made by the policy of this name.
    """

    hosts: tuple[str, ...]
    tags: tuple[frozenset[str], ...]
    paths: tuple[str, ...]
    policy: str | None

    def __init__(
        self,
        hosts: Iterable[str] = (),
        tags: Iterable[str] = (),
        paths: Iterable[str] = (),
        policy: str | None = None,
    ) -> None:
        groups = tuple(g for g in map(_tag_group, _strings(tags, "tags")) if g)
        norm = []
        for p in _strings(paths, "paths"):
            if not p.startswith("/"):
                raise ConfigError(f"path filter {p!r} must be absolute (snapshots record absolute paths)")
            norm.append(posixpath.normpath(p))
        object.__setattr__(self, "hosts", _strings(hosts, "hosts"))
        object.__setattr__(self, "tags", groups)
        object.__setattr__(self, "paths", tuple(norm))
        object.__setattr__(self, "policy", policy)

    @property
    def empty(self) -> bool:
        """True if the filter selects every snapshot."""
        return not (self.hosts or self.tags or self.paths or self.policy is not None)

    def matches(self, m: Manifest) -> bool:
        """Whether the snapshot ``m`` is selected."""
        if self.hosts and m.hostname not in self.hosts:
            return False
        if self.tags and not any(g <= set(m.tags) for g in self.tags):
            return False
        if self.paths and not set(self.paths) <= {posixpath.normpath(p) for p in m.paths}:
            return False
        return self.policy is None or m.policy == self.policy


def select(snapshots: Iterable[Manifest], where: SnapshotFilter) -> list[Manifest]:
    """The snapshots ``where`` matches, in the order given."""
    return [m for m in snapshots if where.matches(m)]


@dataclass(frozen=True)
class SnapshotGroup:
    """The fields a group of snapshots shares; a field not grouped by is None.

    Attributes
    ----------
    host : str or None
    paths, tags : tuple of str or None
        Sorted.
    """

    host: str | None = None
    paths: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None

    def label(self) -> str:
        """A short text naming the group, e.g. ``host web1 paths /etc /srv``; ``all`` if ungrouped."""
        parts = []
        if self.host is not None:
            parts.append(f"host {self.host}")
        if self.paths is not None:
            parts.append(f"paths {' '.join(self.paths)}")
        if self.tags is not None:
            parts.append(f"tags {','.join(self.tags) or '-'}")
        return " ".join(parts) or "all"

    def to_json(self) -> dict[str, Any]:
        """The grouped fields as JSON values (lists for paths and tags); absent ones are null."""
        return {
            "host": self.host,
            "paths": None if self.paths is None else list(self.paths),
            "tags": None if self.tags is None else list(self.tags),
        }


def parse_group_by(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"host,paths"`` (or a list of names) as a tuple of group fields; ``""`` groups nothing.

    Raises
    ------
    ConfigError
        If a name is not one of ``host``, ``paths``, ``tags``.
    """
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    out = tuple(dict.fromkeys(n for n in names if n))
    bad = [n for n in out if n not in GROUP_FIELDS]
    if bad:
        raise ConfigError(f"cannot group by {', '.join(map(repr, bad))}; give any of host, paths, tags")
    return out


def _group_of(m: Manifest, group_by: Sequence[str]) -> SnapshotGroup:
    return SnapshotGroup(
        host=m.hostname if "host" in group_by else None,
        paths=tuple(sorted(m.paths)) if "paths" in group_by else None,
        tags=tuple(sorted(set(m.tags))) if "tags" in group_by else None,
    )


def group_snapshots(
    snapshots: Iterable[Manifest], group_by: Iterable[str] = ("host", "paths")
) -> dict[SnapshotGroup, list[Manifest]]:
    """The snapshots by group, each group in the order given, groups by their label."""
    fields = parse_group_by(group_by)
    out: dict[SnapshotGroup, list[Manifest]] = {}
    for m in snapshots:
        out.setdefault(_group_of(m, fields), []).append(m)
    return dict(sorted(out.items(), key=lambda kv: kv[0].label()))


def _newest_first(snapshots: Iterable[Manifest]) -> list[Manifest]:
    return sorted(snapshots, key=lambda m: (m.time, m.id), reverse=True)


def latest_per_group(
    snapshots: Iterable[Manifest], n: int, group_by: Iterable[str] = ("host", "paths")
) -> list[Manifest]:
    """The ``n`` newest snapshots of each group (restic's ``--latest``), oldest first overall.

    Raises
    ------
    ConfigError
        If ``n`` is less than 1.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"latest must be a positive number of snapshots, not {n!r}")
    kept = [m for ms in group_snapshots(snapshots, group_by).values() for m in _newest_first(ms)[:n]]
    return sorted(kept, key=lambda m: (m.time, m.id))


def find_snapshot(repo: SelectionRepository, ref: str, where: SnapshotFilter | None = None) -> Manifest:
    """A snapshot by full ID, unique prefix (4+ hex digits) or ``latest``.

    ``latest`` is the newest snapshot ``where`` matches; an ID names its snapshot whatever
    the filter (as in restic).

    Raises
    ------
    SnapshotNotFound, AmbiguousSnapshot
    """
    if ref != "latest" or where is None or where.empty:
        return repo.resolve(ref)
    chosen = select(repo.snapshots(), where)
    if not chosen:
        raise SnapshotNotFound("no snapshot matches the filters", snapshot_id=ref)
    return chosen[-1]


def adhoc_strategy(
    *,
    keep_last: int | None = None,
    keep_hourly: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    keep_yearly: int | None = None,
    keep_within: timedelta | str | None = None,
    keep_tags: Iterable[str] = (),
    timezone: str = "UTC",
) -> Strategy | None:
    """The retention strategy the ``keep_*`` rules describe; None if no rule is given.

    Several rules are a :class:`~snapvault.policy.retention.Union`: a snapshot any of them
    keeps stays. Counts of 0 are no rule, as in restic.

    Raises
    ------
    ConfigError
        If a count is negative, a duration or timezone invalid.
    """
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0):
        raise ConfigError(f"keep_last must be a non-negative integer, not {keep_last!r}")
    parts: list[Strategy] = []
    if keep_last:
        parts.append(KeepLast(keep_last))
    if keep_within is not None:
        parts.append(KeepWithin(keep_within))
    counts = {"hourly": keep_hourly, "daily": keep_daily, "weekly": keep_weekly}
    counts |= {"monthly": keep_monthly, "yearly": keep_yearly}
    given = {k: v for k, v in counts.items() if v is not None}
    for k, v in given.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"keep_{k} must be a non-negative integer, not {v!r}")
    if any(given.values()):
        parts.append(GFS(timezone=timezone, **given))
    tags = _strings(keep_tags, "keep_tags")
    if tags:
        parts.append(KeepTags(tags))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Union(parts)


@dataclass(frozen=True)
class ForgetGroup:
    """What an ad-hoc ``forget`` decided for one group of snapshots (and did, unless it was a
    dry run); the decision has the shape of the policy form's
    (:class:`snapvault.policy.run.ForgetResult`).

    Attributes
    ----------
    group : SnapshotGroup
        The fields the group's snapshots share.
    decision : Decision
        Keep and remove, newest first, with the reasons of each ID (``"named by ID"`` for a
        snapshot given by ID).
    removed : list of str
        The IDs actually removed (empty in a dry run).
    """

    group: SnapshotGroup
    decision: Decision
    removed: list[str] = field(default_factory=list)


def forget_snapshots(
    repo: SelectionRepository,
    snapshots: Iterable[str] | None = None,
    *,
    rules: Strategy | None = None,
    where: SnapshotFilter | None = None,
    group_by: Iterable[str] = ("host", "paths"),
    now: datetime,
    dry_run: bool = False,
) -> list[ForgetGroup]:
    """Remove the snapshots named by ID, or those ``rules`` do not keep, per group.

    With ``snapshots`` (IDs, unique prefixes, or ``latest``: the newest ``where`` matches),
    exactly those are removed. With ``rules``, the strategy is applied to each group of the
    snapshots ``where`` matches (every snapshot, policy-made or not); what it does not keep
    is removed. Only manifests are removed: the data stays until a prune. Every decision is
    made before the first manifest is removed.

    Raises
    ------
    ConfigError
        If both or neither of ``snapshots`` and ``rules`` are given.
    SnapshotNotFound, AmbiguousSnapshot
        If an ID matches no snapshot or several; nothing is removed.
    AppendOnlyError
        If the handle is append-only and this is not a dry run; nothing is removed.
    """
    ids = None if snapshots is None else _strings(snapshots, "snapshots")
    if ids is not None and not ids:
        ids = None
    if ids is not None and rules is not None:
        raise ConfigError("give snapshot IDs or keep rules, not both")
    if ids is None and rules is None:
        # restic refuses this too: a forget with no rule would remove every snapshot.
        raise ConfigError("nothing to forget: give snapshot IDs or at least one keep rule")
    if now.utcoffset() is None:
        raise ConfigError("now must be timezone-aware")
    fields = parse_group_by(group_by)
    where = where or SnapshotFilter()
    if ids is not None:
        named = {m.id: m for m in (find_snapshot(repo, ref, where) for ref in ids)}
        groups = group_snapshots(named.values(), fields)
        results = []
        for group, members in groups.items():
            order = tuple(m.id for m in _newest_first(members))
            decision = Decision(keep=(), remove=order, reasons=dict.fromkeys(order, (NAMED,)))
            results.append(ForgetGroup(group, decision))
    else:
        assert rules is not None
        results = [
            ForgetGroup(group, rules.apply(members, now))
            for group, members in group_snapshots(select(repo.snapshots(), where), fields).items()
        ]
    if dry_run:
        return results
    if repo.append_only and any(r.decision.remove for r in results):
        raise AppendOnlyError("the repository is opened append-only: snapshots are never forgotten")
    done = []
    for r in results:
        removed = []
        for sid in r.decision.remove:
            repo.delete_snapshot(sid)
            removed.append(sid)
        done.append(ForgetGroup(r.group, r.decision, removed))
    return done


def retag(
    repo: SelectionRepository,
    snapshot: str | Manifest,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    set: Iterable[str] | None = None,
) -> Manifest:
    """Change a snapshot's tags: a new manifest supersedes the old one (module docstring).

    ``set`` replaces the tags (it cannot be combined with ``add``/``remove``); otherwise
    ``remove`` goes, then ``add`` comes (kept in order, without repeats). When the tags do
    not change, nothing is written and the snapshot is returned as it is.

    Returns
    -------
    Manifest
        The new manifest (with its new ID), or the unchanged one.

    Raises
    ------
    ConfigError
        If no change is asked for, ``set`` is combined with ``add``/``remove``, or a tag is
        empty or holds a comma.
    SnapshotNotFound, AmbiguousSnapshot
        If ``snapshot`` names no snapshot or several.
    AppendOnlyError
        If the handle is append-only (the old manifest could not be removed); nothing is written.
    """
    adding, removing = _tags(add, "add"), _tags(remove, "remove")
    setting = None if set is None else _tags(set, "set")
    if setting is not None and (adding or removing):
        raise ConfigError("set replaces every tag; it cannot be combined with add or remove")
    if setting is None and not adding and not removing:
        raise ConfigError("give tags to add, remove or set")
    old = snapshot if isinstance(snapshot, Manifest) else repo.resolve(snapshot)
    if setting is not None:
        new_tags = list(dict.fromkeys(setting))
    else:
        new_tags = list(dict.fromkeys([*(t for t in old.tags if t not in removing), *adding]))
    if new_tags == list(old.tags):
        return old
    if repo.append_only:
        raise AppendOnlyError("the repository is opened append-only: a re-tag would leave the old snapshot")
    doc = old.model_dump()
    doc["tags"] = new_tags
    doc["retagged_from"] = doc.get("retagged_from") or old.id
    # Saved first, deleted after: a crash in between leaves both snapshots, never neither.
    new = repo.save_manifest(Manifest.model_validate(doc))
    repo.delete_snapshot(old.id)
    return new


def _tags(value: Iterable[str], what: str) -> tuple[str, ...]:
    tags = _strings(value, what)
    for t in tags:
        if not t or "," in t:
            raise ConfigError(f"tag {t!r} ({what}) must be non-empty and hold no comma")
    return tags
