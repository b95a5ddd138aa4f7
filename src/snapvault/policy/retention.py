"""Retention: which snapshots a policy keeps, which it removes, and why.

A *strategy* is a frozen value describing what to keep. ``strategy.apply(snapshots, now)``
returns a :class:`Decision`: the IDs to keep, the IDs to remove, and the reasons for each ID.
Strategies are pure: they read no clock (``now`` is a parameter) and touch no store, so the
same input in any order gives the same decision.

Rules shared by every strategy:

- A snapshot whose time is after ``now`` is kept with the reason ``"in the future"`` and takes
  no part in any rule, so clock skew between hosts neither removes it nor lets it push an older
  snapshot out of a "last N".
- Snapshots are ordered newest first by ``(time, id)``; the ID breaks ties in time so a
  decision never depends on input order.
- A policy that can keep nothing is refused when it is built (restic refuses an empty policy
  too): ``KeepLast(0)``, ``GFS()``, ``KeepTags([])`` and ``Union([])`` raise ConfigError.

Calendar buckets (:class:`GFS`) use the local wall-clock fields in the strategy's IANA
timezone: hour = local date and hour, day = local date, week = ISO year and ISO week (so
2026-12-28 to 2027-01-03 is one bucket, 2026-W53), month, year. A DST fall-back therefore
makes the repeated local hour (02:00-02:59 twice in Europe/Berlin) ONE hourly bucket; the hour
skipped by a spring-forward simply holds no snapshots. As with restic's ``--keep-daily``, a
count N means the N most recent buckets *that contain snapshots* (not the last N calendar
periods), and the newest snapshot of each is kept.

Wire format: ``to_dict()`` returns ``{"strategy": <wire ID>, <field>: <JSON value>, ...}`` and
:func:`strategy_from_dict` inverts it. Compatibility rule: a wire ID, once released, always
means the same rule over the same fields; a later release may add a field only with a default
that keeps the old meaning; a retired wire ID is never reused. A reader refuses an unknown wire
ID and also an unknown field, because silently ignoring a field written by a newer release
could make a policy keep less than its author meant, and retention deletes data.

Strategies from other packages (see :class:`Strategy` for how to write one) become loadable in
either of two ways: the package declares an entry point in the group ``snapvault.retention``
whose name is the wire ID and whose value is the class (``acme.retention:KeepOdd``), or a
program calls :func:`register_strategy`. Built-in wire IDs cannot be taken over. Lookup is
lazy: a built-in ID never reads entry points, and an entry point's module is imported only
when its wire ID is read. A wire ID that nothing provides raises :class:`UnknownStrategy`,
which names it and says how to provide it. A repository refuses to store a strategy that
would not read back here (:func:`check_loadable`).
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snapvault.errors import ConfigError, UnknownStrategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "GFS",
    "Decision",
    "KeepLast",
    "KeepTags",
    "KeepWithin",
    "SnapshotLike",
    "Strategy",
    "Union",
    "UnknownStrategy",
    "check_loadable",
    "format_duration",
    "parse_duration",
    "register_strategy",
    "strategy_from_dict",
]

#: The entry point group of retention strategies from other packages: each entry point's name
#: is a strategy's wire ID, its value the class (``package.module:Class``).
ENTRY_POINT_GROUP = "snapvault.retention"

_FUTURE = "in the future"
_REMOVED = "not kept by any rule"

# Only fixed-length units: months and years vary in length, and a bare "m" is ambiguous
# (restic reads it as months), which in a deletion policy is too dangerous to guess at.
_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "min": 60, "s": 1}
_DURATION = re.compile(r"(?:[0-9]+(?:w|d|h|min|s))+")
_TERM = re.compile(r"([0-9]+)(w|d|h|min|s)")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``"7d"``, ``"36h"``, ``"2w"`` or ``"1d12h"``.

    Units are ``w``, ``d``, ``h``, ``min`` and ``s``, each at most once, largest first.

    Raises
    ------
    ConfigError
        If the text is not of that form.
    """
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ConfigError(
            f"duration {text!r} must look like '7d', '36h', '2w' or '1d12h' "
            "(units w, d, h, min, s; months and years have no fixed length)"
        )
    ranks = list(_UNITS)
    seconds, last = 0, -1
    for number, unit in _TERM.findall(text):
        if ranks.index(unit) <= last:
            raise ConfigError(f"duration {text!r} must give each unit once, largest first")
        last = ranks.index(unit)
        seconds += int(number) * _UNITS[unit]
    try:
        return timedelta(seconds=seconds)
    except OverflowError as e:
        raise ConfigError(f"duration {text!r} is too long") from e


def format_duration(duration: timedelta) -> str:
    """Return the canonical text of a duration, e.g. ``timedelta(hours=36)`` -> ``"1d12h"``.

    Raises
    ------
    ConfigError
        If the duration is negative or not a whole number of seconds.
    """
    if duration < timedelta(0) or duration.microseconds:
        raise ConfigError(f"duration {duration!r} must be a non-negative whole number of seconds")
    rest = duration // timedelta(seconds=1)
    parts = []
    for unit, size in _UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


class SnapshotLike(Protocol):
    """What retention reads of a snapshot; :class:`snapvault.repository.manifest.Manifest` fits.

    Attributes
    ----------
    id : str
        Unique among the snapshots given to one ``apply``.
    time : datetime
        When the snapshot was taken; timezone-aware.
    tags : sequence of str
        Labels, read by :class:`KeepTags`.
    """

    @property
    def id(self) -> str: ...

    @property
    def time(self) -> datetime: ...

    @property
    def tags(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Decision:
    """The outcome of applying a strategy.

    Attributes
    ----------
    keep, remove : tuple of str
        Snapshot IDs, newest first; together they are the input, without overlap.
    reasons : dict of str to tuple of str
        For every input ID, why it is kept (at least one reason), or
        ``("not kept by any rule",)`` if it is removed.
    """

    keep: tuple[str, ...]
    remove: tuple[str, ...]
    reasons: dict[str, tuple[str, ...]]


def _newest_first(snapshots: Iterable[SnapshotLike]) -> list[SnapshotLike]:
    items = list(snapshots)
    seen: set[str] = set()
    for s in items:
        if s.time.utcoffset() is None:
            raise ConfigError(f"snapshot {s.id}: time must be timezone-aware")
        if s.id in seen:
            raise ConfigError(f"snapshot ID {s.id} is given twice")
        seen.add(s.id)
    return sorted(items, key=lambda s: (s.time, s.id), reverse=True)


class Strategy(abc.ABC):
    """A retention rule: a frozen value with a wire ID and a JSON form.

    A strategy of one's own is a frozen dataclass subclassing this one, with a class attribute
    ``wire_id`` (namespaced, e.g. ``"acme.keep-odd"``) and a ``_select(snapshots, now)`` that
    maps the IDs it keeps to reasons, given past snapshots newest first; ``apply`` adds the
    rules shared by every strategy. Make it loadable with :func:`register_strategy` or an
    entry point (see :mod:`snapvault.retention`) before storing a policy that uses it.
    """

    wire_id: ClassVar[str]
    # Declared so that type checkers accept dataclasses.fields() on any strategy.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def apply(self, snapshots: Iterable[SnapshotLike], now: datetime) -> Decision:
        """Decide which snapshots to keep and which to remove.

        Parameters
        ----------
        snapshots : iterable of SnapshotLike
            Snapshots with unique IDs and timezone-aware times, in any order.
        now : datetime
            The current time, timezone-aware.

        Raises
        ------
        ConfigError
            If ``now`` or a snapshot time is naive, or an ID is given twice.
        """
        if now.utcoffset() is None:
            raise ConfigError("now must be timezone-aware")
        ordered = _newest_first(snapshots)
        reasons = {s.id: [_FUTURE] for s in ordered if s.time > now}
        past = [s for s in ordered if s.time <= now]
        reasons.update(self._select(past, now))
        return Decision(
            keep=tuple(s.id for s in ordered if s.id in reasons),
            remove=tuple(s.id for s in ordered if s.id not in reasons),
            reasons={s.id: tuple(reasons.get(s.id, [_REMOVED])) for s in ordered},
        )

    @abc.abstractmethod
    def _select(self, snapshots: Sequence[SnapshotLike], now: datetime) -> dict[str, list[str]]:
        """Map the IDs this rule keeps to reasons; ``snapshots`` are past ones, newest first."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form, ``{"strategy": <wire ID>, ...}``."""
        out: dict[str, Any] = {"strategy": self.wire_id}
        out.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        return out

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> Strategy:
        return cls(**fields)


def _count(owner: str, name: str, value: object) -> int:
    # bool is an int subclass, but GFS(daily=True) is a mistake, not a count of one.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{owner}.{name} must be a non-negative integer, not {value!r}")
    return value


@dataclass(frozen=True)
class KeepLast(Strategy):
    """Keep the ``n`` newest snapshots (``n`` >= 1)."""

    n: int
    wire_id: ClassVar[str] = "keep-last"

    def __post_init__(self) -> None:
        if _count("KeepLast", "n", self.n) == 0:
            raise ConfigError("KeepLast.n must be at least 1: KeepLast(0) keeps nothing")

    def _select(self, snapshots: Sequence[SnapshotLike], now: datetime) -> dict[str, list[str]]:
        return {s.id: [f"last {self.n}"] for s in snapshots[: self.n]}


@dataclass(frozen=True, init=False)
class KeepWithin(Strategy):
    """Keep every snapshot taken at or after ``now - duration``.

    Parameters
    ----------
    duration : timedelta or str
        A positive whole number of seconds, or its text as read by :func:`parse_duration`.
    """

    duration: timedelta
    wire_id: ClassVar[str] = "keep-within"

    def __init__(self, duration: timedelta | str) -> None:
        value = parse_duration(duration) if isinstance(duration, str) else duration
        if not isinstance(value, timedelta):
            raise ConfigError(f"KeepWithin.duration must be a timedelta or text like '7d', not {duration!r}")
        # Whole seconds only, so that the JSON text form round-trips exactly.
        if value <= timedelta(0) or value.microseconds:
            raise ConfigError(f"KeepWithin.duration must be a positive whole number of seconds, not {value!r}")
        object.__setattr__(self, "duration", value)

    def _select(self, snapshots: Sequence[SnapshotLike], now: datetime) -> dict[str, list[str]]:
        reason = f"within {format_duration(self.duration)}"
        try:
            cutoff = now - self.duration
        except OverflowError:
            # The window reaches past datetime.min: every snapshot is within it.
            cutoff = datetime.min.replace(tzinfo=UTC)
        return {s.id: [reason] for s in snapshots if s.time >= cutoff}

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.wire_id, "duration": format_duration(self.duration)}


def _iso_week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year:04d}-W{week:02d}"


# Bucket labels built from local wall-clock fields; a label is also the bucket's identity.
_BUCKETS: dict[str, Callable[[datetime], str]] = {
    "hourly": lambda t: f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}",
    "daily": lambda t: f"{t.year:04d}-{t.month:02d}-{t.day:02d}",
    "weekly": _iso_week,
    "monthly": lambda t: f"{t.year:04d}-{t.month:02d}",
    "yearly": lambda t: f"{t.year:04d}",
}


@dataclass(frozen=True)
class GFS(Strategy):
    """Grandfather-father-son: the newest snapshot of each of the last N calendar buckets.

    Parameters
    ----------
    hourly, daily, weekly, monthly, yearly : int
        How many of the most recent buckets holding snapshots to keep one from, per period;
        at least one must be non-zero.
    timezone : str
        IANA timezone whose wall clock defines the buckets (see the module docstring).
    """

    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    timezone: str = "UTC"
    wire_id: ClassVar[str] = "gfs"

    def __post_init__(self) -> None:
        if sum(_count("GFS", period, getattr(self, period)) for period in _BUCKETS) == 0:
            raise ConfigError("GFS needs at least one non-zero count (hourly, daily, weekly, monthly, yearly)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError, TypeError) as e:
            raise ConfigError(f"GFS.timezone {self.timezone!r} is not a known IANA timezone") from e

    def _select(self, snapshots: Sequence[SnapshotLike], now: datetime) -> dict[str, list[str]]:
        zone = ZoneInfo(self.timezone)
        local = [(s.id, s.time.astimezone(zone)) for s in snapshots]
        out: dict[str, list[str]] = {}
        for period, bucket_of in _BUCKETS.items():
            count = getattr(self, period)
            # A set rather than "differs from the previous bucket": in a zone whose fall-back
            # crosses midnight, local dates are not monotonic in time.
            seen: set[str] = set()
            for sid, t in local:
                if len(seen) == count:
                    break
                bucket = bucket_of(t)
                if bucket not in seen:
                    seen.add(bucket)
                    out.setdefault(sid, []).append(f"{period} {bucket}")
        return out


@dataclass(frozen=True, init=False)
class KeepTags(Strategy):
    """Keep every snapshot carrying any of ``tags`` (at least one, each non-empty)."""

    tags: tuple[str, ...]
    wire_id: ClassVar[str] = "keep-tags"

    def __init__(self, tags: Iterable[str]) -> None:
        if isinstance(tags, str):
            raise ConfigError(f"KeepTags.tags must be a list of tags, not the string {tags!r}")
        try:
            # dict.fromkeys drops repeats but keeps the order the reasons are listed in.
            value = tuple(dict.fromkeys(tags))
        except TypeError as e:
            raise ConfigError(f"KeepTags.tags must be a list of tags, not {tags!r}") from e
        if not value:
            raise ConfigError("KeepTags needs at least one tag")
        if not all(isinstance(t, str) and t for t in value):
            raise ConfigError(f"KeepTags.tags must be non-empty strings, not {list(value)!r}")
        object.__setattr__(self, "tags", value)

    def _select(self, snapshots: Sequence[SnapshotLike], now: datetime) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s in snapshots:
            why = [f"tag:{t}" for t in self.tags if t in s.tags]
            if why:
                out[s.id] = why
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.wire_id, "tags": list(self.tags)}


@dataclass(frozen=True, init=False)
class Union(Strategy):
    """Keep whatever any member keeps; the reasons of all members are merged."""

    strategies: tuple[Strategy, ...]
    wire_id: ClassVar[str] = "union"

    def __init__(self, strategies: Iterable[Strategy]) -> None:
        members = tuple(strategies)
        if not members:
            raise ConfigError("Union needs at least one strategy")
        for m in members:
            if not isinstance(m, Strategy):
                raise ConfigError(f"Union.strategies must hold strategies, not {m!r}")
        object.__setattr__(self, "strategies", members)

    def _select(self, snapshots: Sequence[SnapshotLike], now: datetime) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for member in self.strategies:
            for sid, why in member._select(snapshots, now).items():
                have = out.setdefault(sid, [])
                have.extend(r for r in why if r not in have)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.wire_id, "strategies": [m.to_dict() for m in self.strategies]}

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> Strategy:
        members = fields.get("strategies")
        if not isinstance(members, list):
            raise ConfigError(f"Union.strategies must be a list, not {members!r}")
        return cls(strategy_from_dict(m) for m in members)


# Built-in wire IDs. Retired IDs (none yet) must stay listed in a comment here, never reused.
_BUILTIN: dict[str, type[Strategy]] = {c.wire_id: c for c in (KeepLast, KeepWithin, GFS, KeepTags, Union)}
# Strategies from other packages, registered by register_strategy() or loaded from an entry point.
_REGISTERED: dict[str, type[Strategy]] = {}
# Namespacing with "." keeps one package's IDs from colliding with another's or with ours.
_WIRE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

S = TypeVar("S", bound=Strategy)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_class(cls: object) -> str:
    """Return the wire ID of a class that can be registered; raise ConfigError otherwise."""
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ConfigError(f"{cls!r} is not a subclass of snapvault.retention.Strategy")
    # to_dict and strategy_from_dict read the fields through dataclasses, and round-trip
    # checks compare values with the dataclass __eq__.
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"retention strategy {_qualname(cls)} must be a (frozen) dataclass")
    if inspect.isabstract(cls):
        raise ConfigError(f"retention strategy {_qualname(cls)} is abstract")
    wire = getattr(cls, "wire_id", None)
    if not isinstance(wire, str) or not _WIRE_ID.match(wire):
        raise ConfigError(
            f"retention strategy {_qualname(cls)} needs a class attribute wire_id: 1-100 letters, digits, "
            f"'.', '_' and '-', starting alphanumeric, such as 'acme.keep-odd' (has {wire!r})"
        )
    return wire


def register_strategy(cls: type[S]) -> type[S]:
    """Make a retention strategy class loadable by its ``wire_id``; usable as a decorator.

    A policy holding the strategy can then be stored and read in this process. Other
    processes need the same registration, or an entry point in the group
    ``snapvault.retention`` (see :mod:`snapvault.retention`). Registering a class again, or a
    reloaded class of the same module and name, is harmless.

    Parameters
    ----------
    cls : type
        A frozen dataclass subclassing :class:`Strategy`, with a class attribute ``wire_id``.

    Returns
    -------
    type
        ``cls``.

    Raises
    ------
    ConfigError
        If ``cls`` is not such a class, or its wire ID is a built-in strategy's or is already
        registered to another class.
    """
    wire = _check_class(cls)
    builtin = _BUILTIN.get(wire)
    if builtin is cls:
        return cls
    if builtin is not None:
        raise ConfigError(
            f"retention strategy {_qualname(cls)} has the wire ID {wire!r} of the built-in {builtin.__name__}; "
            "give it a wire_id of its own"
        )
    have = _REGISTERED.get(wire)
    if have is not None and _qualname(have) != _qualname(cls):
        raise ConfigError(
            f"wire ID {wire!r} is already registered to {_qualname(have)}; {_qualname(cls)} needs a wire_id of its own"
        )
    _REGISTERED[wire] = cls
    return cls


def _from_entry_point(wire: str) -> type[Strategy] | None:
    """The class an installed package declares for ``wire``; None if no package does."""
    # Imported here: reading installed packages' metadata costs milliseconds that a process
    # using only built-in strategies should not pay.
    from importlib.metadata import entry_points

    found = {ep.value: ep for ep in entry_points(group=ENTRY_POINT_GROUP, name=wire)}
    if not found:
        return None
    if len(found) > 1:
        raise UnknownStrategy(
            f"retention strategy {wire!r} is provided by several installed packages ({', '.join(sorted(found))}); "
            "uninstall all but one",
            wire_id=wire,
        )
    [ep] = found.values()
    try:
        cls = ep.load()
    # Loading runs another package's import; whatever it raises, the strategy is unavailable.
    except Exception as e:
        raise UnknownStrategy(
            f"retention strategy {wire!r}: its entry point {ep.value!r} could not be loaded: {type(e).__name__}: {e}",
            wire_id=wire,
        ) from e
    try:
        own = _check_class(cls)
    except ConfigError as e:
        raise UnknownStrategy(
            f"retention strategy {wire!r}: its entry point {ep.value!r} is not a retention strategy class: {e}",
            wire_id=wire,
        ) from None
    if own != wire:
        # The class would write its own ID into every record, which this entry point does not name.
        raise UnknownStrategy(
            f"retention strategy {wire!r}: its entry point {ep.value!r} names {_qualname(cls)}, whose wire_id is "
            f"{own!r}; an entry point's name must be its class's wire_id",
            wire_id=wire,
        )
    return _REGISTERED.setdefault(wire, cls)


def _find(wire: str) -> type[Strategy] | None:
    return _BUILTIN.get(wire) or _REGISTERED.get(wire) or _from_entry_point(wire)


def _members(strategy: Strategy) -> Iterator[Strategy]:
    """The strategy and every strategy nested in its fields (a Union's members), depth first."""
    yield strategy
    for f in dataclasses.fields(strategy):
        value = getattr(strategy, f.name)
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, Strategy):
                yield from _members(item)


def check_loadable(strategy: Strategy) -> None:
    """Raise unless ``strategy`` reads back from its JSON form here as an equal value.

    A repository stores a policy's strategy as JSON; one that could not be read back would
    make the stored policy unreadable, and one that read back as another class would keep
    different snapshots than its author meant.

    Raises
    ------
    UnknownStrategy
        If the strategy, or one nested in it, is neither built in, registered, nor installed
        as an entry point; the message names its class and how to register it.
    ConfigError
        If it is not a :class:`Strategy`, or it would read back as another class or value.
    """
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"retention {strategy!r} is not a snapvault.retention.Strategy, so it cannot be stored")
    for member in _members(strategy):
        cls = type(member)
        wire = _check_class(cls)
        found = _find(wire)
        if found is None:
            raise UnknownStrategy(
                f"retention strategy {_qualname(cls)} (wire ID {wire!r}) is not registered, so a policy using it "
                f"could not be read back; call snapvault.register_strategy({cls.__name__}) first, or declare it as "
                f"an entry point named {wire!r} in the group {ENTRY_POINT_GROUP!r} of the package that provides it",
                wire_id=wire,
            )
        if found is not cls:
            raise ConfigError(
                f"retention strategy {_qualname(cls)} has the wire ID {wire!r}, which reads back as "
                f"{_qualname(found)}; give it a wire_id of its own and register it"
            )
    back = strategy_from_dict(strategy.to_dict())
    if back != strategy:
        raise ConfigError(f"retention strategy {strategy!r} reads back from its JSON form as {back!r}")


def strategy_from_dict(d: Mapping[str, Any]) -> Strategy:
    """Build a strategy from its JSON form, as returned by ``to_dict``.

    A wire ID that is not built in is looked up among registered strategies, then among the
    entry points of the group ``snapvault.retention``.

    Raises
    ------
    UnknownStrategy
        If no strategy with the wire ID is available here.
    ConfigError
        If a field is unknown or missing, or a value is invalid.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"a retention strategy must be a JSON object, not {d!r}")
    wire = d.get("strategy")
    cls = _find(wire) if isinstance(wire, str) else None
    if cls is None:
        known = ", ".join(repr(k) for k in sorted({*_BUILTIN, *_REGISTERED}))
        message = f"unknown retention strategy {wire!r}; known: {known}"
        if not isinstance(wire, str):
            raise ConfigError(message)
        raise UnknownStrategy(
            f"{message}. To use it, install the package that provides it (an entry point named {wire!r} in the "
            f"group {ENTRY_POINT_GROUP!r}) or register its class with snapvault.register_strategy()",
            wire_id=wire,
        )
    spec = {f.name: f for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in d.items() if k != "strategy"}
    unknown = sorted(set(fields) - set(spec))
    if unknown:
        raise ConfigError(f"retention strategy {wire!r} has unknown field(s) {unknown}; refusing to guess")
    missing = sorted(
        name
        for name, f in spec.items()
        if name not in fields and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ConfigError(f"retention strategy {wire!r} is missing field(s) {missing}")
    return cls._from_fields(fields)
