"""Cron expressions: validation and fire times, with time always passed in.

This module reads no clock and runs nothing; a scheduler (or a test) asks it questions about
instants it supplies. The matching itself is cronsim's.

Nouns
-----
Expression
    Five whitespace-separated fields, ``minute hour day-of-month month day-of-week``, with
    lists, ranges, steps, month and weekday names, ``L``/``LW`` in day-of-month and ``L``/``#``
    in day-of-week, or one of the aliases ``@yearly``, ``@annually``, ``@monthly``,
    ``@weekly``, ``@daily``, ``@midnight`` and ``@hourly``. When neither day field starts with
    ``*`` a day matches if either matches (Vixie/Debian cron); otherwise both must.
Fire time
    An instant at which the expression says a job runs.
Zone
    The timezone whose wall clock the expression is read on.

Daylight saving time
--------------------
cronsim, like Debian cron, sorts expressions into two kinds by their text, and so do we:

*Fixed-time* expressions, whose minute and hour fields both start with something other than
``*`` (``30 2 * * *``, ``0,30 2 * * *``), are read on the wall clock:

- a wall time skipped by a spring-forward gap fires once, at the first instant after the
  gap (``30 2 * * *`` on 2026-03-29 in Europe/Berlin fires at 03:00+02:00); fire times of
  the same day that fall into the gap merge into that one run;
- a wall time repeated by a fall-back fires once, at its *first* occurrence (02:30+02:00 on
  2026-10-25 in Europe/Berlin, not again at 02:30+01:00). A consequence: ``0-59 0-23 * * *``
  is silent during the repeated hour.

*Elapsed-time* expressions, whose minute or hour field starts with ``*`` (``*/15 * * * *``,
``30 * * * *``, ``0 */2 * * *``, ``*/30 2 * * *``), are matched against each real instant:
wall times inside a gap do not exist and never fire, and wall times in a repeated hour fire
at both occurrences, because that much real time passes.

A known cronsim 2.8 defect, left as is: where clocks move by less than an hour
(Australia/Lord_Howe, 30 minutes), cronsim steps elapsed-time expressions through the
spring-forward gap with a 30-minute phase, so ``*/30 0 * * *`` misses 00:00 the day after the
transition. ``tests/test_cron.py`` holds it as a strict expected failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from snapvault.errors import ConfigError

__all__ = ["Scheduled", "is_due", "next_runs", "previous_run", "validate"]

# cronsim does not read aliases; these are the expansions Vixie cron documents.
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Any aware instant will do: cronsim parses in its constructor and iterates lazily.
_PARSE_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)

_SECOND = timedelta(seconds=1)


class Scheduled(Protocol):
    """Anything that carries a cron schedule and the zone it is read in (a policy, a job).

    Read-only properties, so frozen dataclasses and pydantic models satisfy it.
    """

    @property
    def schedule(self) -> str:
        """The cron expression, in any form :func:`validate` accepts."""
        ...

    @property
    def timezone(self) -> str:
        """The IANA name of the zone the schedule is read in, such as ``"Europe/Berlin"``."""
        ...


def validate(expr: str) -> str:
    """Check a cron expression and return its normal form.

    Parameters
    ----------
    expr : str
        Five fields (``minute hour day-of-month month day-of-week``) or an ``@`` alias.
        Names and ``L`` are case-insensitive; runs of whitespace are one separator.

    Returns
    -------
    str
        The expression as five fields joined by single spaces, upper-cased, with an alias
        replaced by its expansion: ``validate(" @Daily ") == "0 0 * * *"`` and
        ``validate("*/15  9-17 * * mon-fri") == "*/15 9-17 * * MON-FRI"``.

    Raises
    ------
    ConfigError
        If the expression is not a string, has other than five fields (cronsim's optional
        seconds field is refused, so that every fire time is on a whole minute), names an
        unknown alias, has a field cronsim rejects, or can never match (``0 0 30 2 *``).
    """
    if not isinstance(expr, str):
        raise ConfigError(f"cron expression must be a string, got {type(expr).__name__}")
    fields = expr.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        alias = fields[0].lower()
        if alias not in _ALIASES:
            known = ", ".join(sorted(_ALIASES))
            raise ConfigError(f"unknown cron alias {fields[0]!r} in {expr!r}; expected one of {known}")
        fields = _ALIASES[alias].split()
    if len(fields) != 5:
        raise ConfigError(
            f"cron expression {expr!r} has {len(fields)} fields; "
            "expected 5 (minute hour day-of-month month day-of-week)"
        )
    normal = " ".join(fields).upper()
    try:
        CronSim(normal, _PARSE_ANCHOR)
    except CronSimError as exc:
        # cronsim names the field ("Bad day-of-month"); keep that, with the whole expression.
        raise ConfigError(f"invalid cron expression {expr!r}: {exc}") from exc
    return normal


def next_runs(
    expr: str,
    *,
    after: datetime,
    count: int = 1,
    timezone: str | None = None,
) -> list[datetime]:
    """Return the next fire times of an expression strictly after an instant.

    Parameters
    ----------
    expr : str
        A cron expression (see :func:`validate`).
    after : datetime
        A timezone-aware instant; a fire time equal to it is not returned.
    count : int, default 1
        How many fire times to return; at least 1.
    timezone : str or None, default None
        The IANA name of the zone whose wall clock the expression is read on. ``None`` reads
        it on ``after``'s own tzinfo.

    Returns
    -------
    list of datetime
        Strictly increasing aware datetimes in the zone, each later than ``after``. Fewer
        than ``count`` only if cronsim finds no further match within 50 years of the last one,
        or the next would fall after the year 9999.

    Raises
    ------
    ConfigError
        If the expression or the zone name is invalid, ``after`` is naive, or ``count < 1``.

    Notes
    -----
    Around daylight-saving transitions, fixed-time expressions (minute and hour fields not
    starting with ``*``) fire once at the first instant after a spring-forward gap and once
    at the first occurrence of a repeated wall time; elapsed-time expressions skip the gap
    and fire at both occurrences (see the module docstring). For example, the schedule
    ``0 2 * * *`` across the spring-forward night in Europe/Berlin:

    >>> berlin = ZoneInfo("Europe/Berlin")
    >>> runs = next_runs("0 2 * * *", after=datetime(2026, 3, 28, tzinfo=berlin), count=3)
    >>> [run.isoformat() for run in runs]
    ['2026-03-28T02:00:00+01:00', '2026-03-29T03:00:00+02:00', '2026-03-30T02:00:00+02:00']
    """
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    normal = validate(expr)
    _require_aware("after", after)
    zone = _zone(timezone) if timezone is not None else after.tzinfo
    assert zone is not None  # _require_aware saw to it; this tells mypy
    return list(islice(_fire_times(normal, after, zone), count))


def previous_run(expr: str, *, before: datetime, timezone: str | None = None) -> datetime | None:
    """Return the latest fire time of an expression strictly before an instant.

    The inverse of :func:`next_runs`, with the same daylight-saving rules: for consecutive
    fire times ``a < b``, ``previous_run(expr, before=b) == a``.

    Parameters
    ----------
    expr : str
        A cron expression (see :func:`validate`).
    before : datetime
        A timezone-aware instant; a fire time equal to it is not returned.
    timezone : str or None, default None
        The IANA name of the zone the expression is read in; ``None`` uses ``before``'s tzinfo.

    Returns
    -------
    datetime or None
        An aware datetime in the zone, or ``None`` if cronsim finds no match in the 50 years
        before ``before`` or before the year 1.

    Raises
    ------
    ConfigError
        If the expression or the zone name is invalid or ``before`` is naive.
    """
    normal = validate(expr)
    _require_aware("before", before)
    zone = _zone(timezone) if timezone is not None else before.tzinfo
    assert zone is not None
    limit = before.astimezone(UTC)
    try:
        # cronsim walks fixed-time expressions backwards on the naive wall clock, which forgets
        # which occurrence of a repeated hour ``before`` is in, so its answer can be up to an
        # hour early. Take it as a starting point and let the forward walk, whose rules
        # next_runs promises, find the last fire time before the limit.
        for candidate in CronSim(normal, before.astimezone(zone), reverse=True):
            latest = None
            for fire in _fire_times(normal, candidate.astimezone(UTC) - _SECOND, zone):
                if fire.astimezone(UTC) >= limit:
                    break
                latest = fire
            if latest is not None:
                return latest
    except OverflowError:
        pass  # the walk reached the year 1, where datetime's range begins
    return None


def is_due(policy: Scheduled, last_run: datetime | None, now: datetime) -> bool:
    """Tell whether a schedule has fired since its last run.

    Parameters
    ----------
    policy : Scheduled
        Supplies ``schedule`` (a cron expression) and ``timezone`` (an IANA name).
    last_run : datetime or None
        When the job last ran, timezone-aware; ``None`` if it never has.
    now : datetime
        The current instant, timezone-aware.

    Returns
    -------
    bool
        ``True`` if a fire time lies in ``(last_run, now]``, so a run exactly at a fire time
        covers that fire time and ``now`` exactly at one is due. ``True`` whenever
        ``last_run`` is ``None``: a job that has never run is due at once rather than at its
        next fire time, so a new backup policy does not wait up to a month for its first
        snapshot. ``False`` if ``last_run`` is after ``now`` (a clock stepped back).

    Raises
    ------
    ConfigError
        If the policy's schedule or timezone is invalid (checked even when ``last_run`` is
        ``None``), or ``last_run`` or ``now`` is naive.
    """
    _require_aware("now", now)
    if last_run is None:
        validate(policy.schedule)
        _zone(policy.timezone)
        return True
    _require_aware("last_run", last_run)
    upcoming = next_runs(policy.schedule, after=last_run, timezone=policy.timezone)
    # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
    return bool(upcoming) and upcoming[0].astimezone(UTC) <= now.astimezone(UTC)


def _fire_times(normal: str, after: datetime, zone: tzinfo) -> Iterator[datetime]:
    """Yield fire times strictly after ``after``, increasing, in ``zone``."""
    floor = after.astimezone(UTC)
    try:
        for fire in CronSim(normal, after.astimezone(zone)):
            instant = fire.astimezone(UTC)
            # cronsim iterates fixed-time expressions on the naive wall clock and labels each
            # result as the first occurrence (fold=0); started inside the second occurrence of
            # a repeated hour it yields the first, which is before ``after``. Drop such times.
            if instant <= floor:
                continue
            floor = instant
            # The round trip through UTC gives the canonical offset and fold for the instant.
            yield instant.astimezone(zone)
    except OverflowError:
        return  # the walk reached the year 9999, where datetime's range ends


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # ValueError: a malformed key ("", "../x"); ZoneInfoNotFoundError: a well-formed unknown one.
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown timezone {name!r}; expected an IANA name such as 'Europe/Berlin'") from exc


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
