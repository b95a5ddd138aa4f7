"""Retention strategies: golden calendar cases, validation, the wire form, and properties."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapvault.errors import ConfigError
from snapvault.policy.retention import (
    GFS,
    Decision,
    KeepLast,
    KeepTags,
    KeepWithin,
    SnapshotLike,
    Strategy,
    Union,
    format_duration,
    parse_duration,
    strategy_from_dict,
)
from snapvault.repository.manifest import Manifest

BERLIN = "Europe/Berlin"
# Later than every golden snapshot, so that none of them is "in the future".
LATER = datetime(2101, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Snap:
    id: str
    time: datetime
    tags: tuple[str, ...] = ()


def at(*stamps: str) -> list[Snap]:
    """Snapshots whose ID is their own UTC timestamp, so expected lists read as times."""
    return [Snap(s, datetime.fromisoformat(s)) for s in stamps]


def keep_remove(
    strategy: Strategy, snaps: Sequence[SnapshotLike], now: datetime = LATER
) -> tuple[list[str], list[str]]:
    d = strategy.apply(snaps, now)
    return list(d.keep), list(d.remove)


# --- golden cases: GFS buckets -------------------------------------------------------------


def test_gfs_keeps_newest_snapshot_of_each_bucket() -> None:
    snaps = at(
        "2026-03-01T08:00Z",
        "2026-03-01T18:00Z",
        "2026-03-02T09:00Z",
        "2026-02-27T10:00Z",
        "2026-03-01T12:00Z",
        "2026-03-02T21:00Z",
    )
    d = GFS(daily=2).apply(snaps, LATER)
    assert d.keep == ("2026-03-02T21:00Z", "2026-03-01T18:00Z")
    assert d.remove == ("2026-03-02T09:00Z", "2026-03-01T12:00Z", "2026-03-01T08:00Z", "2026-02-27T10:00Z")
    assert d.reasons["2026-03-02T21:00Z"] == ("daily 2026-03-02",)
    assert d.reasons["2026-03-01T18:00Z"] == ("daily 2026-03-01",)
    assert d.reasons["2026-03-01T08:00Z"] == ("not kept by any rule",)


def test_gfs_counts_buckets_that_hold_snapshots_not_calendar_days() -> None:
    # restic semantics: daily=2 reaches back over the empty days to the 5th.
    snaps = at("2026-01-01T10:00Z", "2026-01-05T10:00Z", "2026-01-20T10:00Z")
    assert keep_remove(GFS(daily=2), snaps) == (["2026-01-20T10:00Z", "2026-01-05T10:00Z"], ["2026-01-01T10:00Z"])


def test_gfs_merges_reasons_of_all_periods() -> None:
    # 2026-03-02 is a Monday (W10); 03-01 and 02-28 are Sunday and Saturday of W09.
    snaps = at("2026-03-02T10:00Z", "2026-03-01T10:00Z", "2026-02-28T10:00Z", "2026-02-20T10:00Z", "2026-01-15T10:00Z")
    d = GFS(daily=2, weekly=2, monthly=2).apply(snaps, LATER)
    assert d.keep == ("2026-03-02T10:00Z", "2026-03-01T10:00Z", "2026-02-28T10:00Z")
    assert d.remove == ("2026-02-20T10:00Z", "2026-01-15T10:00Z")
    assert d.reasons["2026-03-02T10:00Z"] == ("daily 2026-03-02", "weekly 2026-W10", "monthly 2026-03")
    assert d.reasons["2026-03-01T10:00Z"] == ("daily 2026-03-01", "weekly 2026-W09")
    assert d.reasons["2026-02-28T10:00Z"] == ("monthly 2026-02",)


def test_hourly_across_berlin_spring_forward_has_no_0200_bucket() -> None:
    # 2026-03-29 01:00Z: 02:00 CET jumps to 03:00 CEST.
    snaps = at(
        "2026-03-29T00:30Z",  # 01:30 CET
        "2026-03-29T00:59Z",  # 01:59 CET
        "2026-03-29T01:00Z",  # 03:00 CEST
        "2026-03-29T01:30Z",  # 03:30 CEST
        "2026-03-29T02:10Z",  # 04:10 CEST
    )
    d = GFS(hourly=3, timezone=BERLIN).apply(snaps, LATER)
    assert d.keep == ("2026-03-29T02:10Z", "2026-03-29T01:30Z", "2026-03-29T00:59Z")
    assert d.remove == ("2026-03-29T01:00Z", "2026-03-29T00:30Z")
    assert [d.reasons[i] for i in d.keep] == [
        ("hourly 2026-03-29T04",),
        ("hourly 2026-03-29T03",),
        ("hourly 2026-03-29T01",),
    ]


@pytest.mark.parametrize(
    ("tz", "keep"),
    [
        # Local 02:00-02:59 happens twice (CEST, then CET) and is one bucket.
        (BERLIN, ["2026-10-25T02:20Z", "2026-10-25T01:40Z", "2026-10-24T23:50Z"]),
        ("UTC", ["2026-10-25T02:20Z", "2026-10-25T01:40Z", "2026-10-25T00:50Z"]),
    ],
)
def test_hourly_across_berlin_fall_back_merges_repeated_hour(tz: str, keep: list[str]) -> None:
    snaps = at(
        "2026-10-24T23:50Z",  # 01:50 CEST
        "2026-10-25T00:10Z",  # 02:10 CEST
        "2026-10-25T00:50Z",  # 02:50 CEST
        "2026-10-25T01:10Z",  # 02:10 CET
        "2026-10-25T01:40Z",  # 02:40 CET
        "2026-10-25T02:20Z",  # 03:20 CET
    )
    d = GFS(hourly=3, timezone=tz).apply(snaps, LATER)
    assert list(d.keep) == keep
    if tz == BERLIN:
        assert d.reasons["2026-10-25T01:40Z"] == ("hourly 2026-10-25T02",)
        assert d.remove == ("2026-10-25T01:10Z", "2026-10-25T00:50Z", "2026-10-25T00:10Z")


@pytest.mark.parametrize(
    ("tz", "keep", "remove"),
    [
        (
            BERLIN,  # 2026-03-29 has 23 hours: 28T23:00Z to 29T22:00Z
            ["2026-03-29T22:30Z", "2026-03-29T21:30Z", "2026-03-28T22:30Z"],
            ["2026-03-28T23:30Z"],
        ),
        ("UTC", ["2026-03-29T22:30Z", "2026-03-28T23:30Z"], ["2026-03-29T21:30Z", "2026-03-28T22:30Z"]),
    ],
)
def test_daily_across_berlin_spring_forward(tz: str, keep: list[str], remove: list[str]) -> None:
    snaps = at(
        "2026-03-28T22:30Z",  # 28th 23:30 CET
        "2026-03-28T23:30Z",  # 29th 00:30 CET
        "2026-03-29T21:30Z",  # 29th 23:30 CEST
        "2026-03-29T22:30Z",  # 30th 00:30 CEST
    )
    assert keep_remove(GFS(daily=3, timezone=tz), snaps) == (keep, remove)


def test_daily_across_berlin_fall_back() -> None:
    # 2026-10-25 has 25 hours: 24T22:00Z to 25T23:00Z.
    snaps = at(
        "2026-10-24T21:30Z",  # 24th 23:30 CEST
        "2026-10-24T22:30Z",  # 25th 00:30 CEST
        "2026-10-25T22:30Z",  # 25th 23:30 CET
        "2026-10-25T23:30Z",  # 26th 00:30 CET
    )
    d = GFS(daily=3, timezone=BERLIN).apply(snaps, LATER)
    assert d.keep == ("2026-10-25T23:30Z", "2026-10-25T22:30Z", "2026-10-24T21:30Z")
    assert d.remove == ("2026-10-24T22:30Z",)
    assert d.reasons["2026-10-25T22:30Z"] == ("daily 2026-10-25",)
    assert d.reasons["2026-10-25T23:30Z"] == ("daily 2026-10-26",)


def test_leap_day_2024_is_its_own_day_and_part_of_february() -> None:
    snaps = at("2024-02-28T12:00Z", "2024-02-29T06:00Z", "2024-02-29T18:00Z", "2024-03-01T12:00Z")
    d = GFS(daily=3).apply(snaps, LATER)
    assert d.keep == ("2024-03-01T12:00Z", "2024-02-29T18:00Z", "2024-02-28T12:00Z")
    assert d.remove == ("2024-02-29T06:00Z",)
    assert d.reasons["2024-02-29T18:00Z"] == ("daily 2024-02-29",)
    assert keep_remove(GFS(monthly=2), snaps) == (
        ["2024-03-01T12:00Z", "2024-02-29T18:00Z"],
        ["2024-02-29T06:00Z", "2024-02-28T12:00Z"],
    )


@pytest.mark.parametrize(
    ("tz", "keep", "remove"),
    [
        # 2100 is not a leap year: 23:30Z on Feb 28 is already 00:30 on March 1 in Berlin.
        (BERLIN, ["2100-03-01T10:00Z", "2100-02-28T22:00Z"], ["2100-02-28T23:30Z"]),
        ("UTC", ["2100-03-01T10:00Z", "2100-02-28T23:30Z"], ["2100-02-28T22:00Z"]),
    ],
)
def test_year_2100_february_ends_on_the_28th(tz: str, keep: list[str], remove: list[str]) -> None:
    snaps = at("2100-02-28T22:00Z", "2100-02-28T23:30Z", "2100-03-01T10:00Z")
    for strategy in (GFS(daily=2, timezone=tz), GFS(monthly=2, timezone=tz)):
        assert keep_remove(strategy, snaps) == (keep, remove)
    reasons = GFS(daily=2, monthly=2, timezone=tz).apply(snaps, LATER).reasons
    if tz == BERLIN:
        assert reasons["2100-02-28T22:00Z"] == ("daily 2100-02-28", "monthly 2100-02")


def test_iso_week_53_spans_the_new_year() -> None:
    # 2026-12-28 (Mon) .. 2027-01-03 (Sun) is ISO 2026-W53; 2027-01-04 starts 2027-W01.
    days = [f"2026-12-{d}T12:00Z" for d in range(26, 32)] + [f"2027-01-0{d}T12:00Z" for d in range(1, 5)]
    d = GFS(weekly=3).apply(at(*days), LATER)
    assert d.keep == ("2027-01-04T12:00Z", "2027-01-03T12:00Z", "2026-12-27T12:00Z")
    assert d.remove == (
        "2027-01-02T12:00Z",
        "2027-01-01T12:00Z",
        "2026-12-31T12:00Z",
        "2026-12-30T12:00Z",
        "2026-12-29T12:00Z",
        "2026-12-28T12:00Z",
        "2026-12-26T12:00Z",
    )
    assert [d.reasons[i] for i in d.keep] == [("weekly 2027-W01",), ("weekly 2026-W53",), ("weekly 2026-W52",)]
    # Across the calendar new year but inside W53: one weekly bucket, two yearly ones.
    pair = at("2026-12-31T12:00Z", "2027-01-01T12:00Z")
    assert keep_remove(GFS(weekly=2), pair) == (["2027-01-01T12:00Z"], ["2026-12-31T12:00Z"])
    assert keep_remove(GFS(yearly=2), pair) == (["2027-01-01T12:00Z", "2026-12-31T12:00Z"], [])


@pytest.mark.parametrize(
    ("tz", "keep", "remove"),
    [
        (BERLIN, ["2027-01-01T10:00Z", "2026-12-31T22:30Z"], ["2026-12-31T23:30Z", "2026-06-01T12:00Z"]),
        ("UTC", ["2027-01-01T10:00Z", "2026-12-31T23:30Z"], ["2026-12-31T22:30Z", "2026-06-01T12:00Z"]),
    ],
)
def test_yearly_new_year_in_local_time(tz: str, keep: list[str], remove: list[str]) -> None:
    # 2026-12-31T23:30Z is 2027-01-01 00:30 in Berlin.
    snaps = at("2026-06-01T12:00Z", "2026-12-31T22:30Z", "2026-12-31T23:30Z", "2027-01-01T10:00Z")
    d = GFS(yearly=2, timezone=tz).apply(snaps, LATER)
    assert (list(d.keep), list(d.remove)) == (keep, remove)
    assert [d.reasons[i] for i in keep] == [("yearly 2027",), ("yearly 2026",)]


# --- golden cases: the other strategies ----------------------------------------------------

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)


def test_keep_within_boundary_is_inclusive() -> None:
    snaps = [
        Snap("now", NOW),
        Snap("boundary", datetime(2026, 3, 25, 12, tzinfo=UTC)),
        Snap("boundary-cet", datetime(2026, 3, 25, 13, tzinfo=timezone(timedelta(hours=1)))),
        Snap("just-outside", datetime(2026, 3, 25, 11, 59, 59, 999999, tzinfo=UTC)),
        Snap("future", NOW + timedelta(microseconds=1)),
    ]
    for strategy in (KeepWithin("7d"), KeepWithin(timedelta(days=7))):
        d = strategy.apply(snaps, NOW)
        assert d.keep == ("future", "now", "boundary-cet", "boundary")
        assert d.remove == ("just-outside",)
        assert d.reasons["boundary"] == ("within 1w",)
        assert d.reasons["future"] == ("in the future",)


def test_future_snapshots_are_kept_and_do_not_use_up_counts() -> None:
    snaps = [
        Snap("skewed", NOW + timedelta(hours=1)),
        Snap("newest", NOW - timedelta(hours=1)),
        Snap("older", NOW - timedelta(hours=2)),
    ]
    d = KeepLast(1).apply(snaps, NOW)
    assert d.keep == ("skewed", "newest")
    assert d.remove == ("older",)
    assert d.reasons == {"skewed": ("in the future",), "newest": ("last 1",), "older": ("not kept by any rule",)}
    # Same local day as "newest": the future snapshot must not take the daily slot.
    assert keep_remove(GFS(daily=1), snaps, NOW) == (["skewed", "newest"], ["older"])


@pytest.mark.parametrize("reverse", [False, True])
def test_equal_times_break_ties_by_id_whatever_the_input_order(reverse: bool) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    snaps = [Snap("aaa", t), Snap("bbb", t), Snap("ccc", t - timedelta(seconds=1))]
    d = KeepLast(1).apply(snaps[::-1] if reverse else snaps, NOW)
    assert d.keep == ("bbb",)
    assert d.remove == ("aaa", "ccc")


def test_keep_tags_keeps_any_tag_with_each_matching_tag_as_reason() -> None:
    snaps = [
        Snap("both", NOW - timedelta(days=1), ("monthly", "keep")),
        Snap("one", NOW - timedelta(days=2), ("keep",)),
        Snap("other", NOW - timedelta(days=3), ("nightly",)),
        Snap("none", NOW - timedelta(days=4)),
    ]
    d = KeepTags(["keep", "monthly"]).apply(snaps, NOW)
    assert d.keep == ("both", "one")
    assert d.remove == ("other", "none")
    assert d.reasons["both"] == ("tag:keep", "tag:monthly")
    assert d.reasons["one"] == ("tag:keep",)


def test_union_keeps_what_any_member_keeps_and_merges_reasons() -> None:
    snaps = [
        Snap("a", NOW - timedelta(hours=1), ("keep",)),
        Snap("b", NOW - timedelta(hours=2)),
        Snap("c", NOW - timedelta(days=30), ("keep",)),
        Snap("d", NOW - timedelta(days=40)),
    ]
    d = Union([KeepLast(1), KeepTags(["keep"]), KeepLast(1)]).apply(snaps, NOW)
    assert d.keep == ("a", "c")
    assert d.remove == ("b", "d")
    assert d.reasons["a"] == ("last 1", "tag:keep")  # the repeated "last 1" is listed once
    assert d.reasons["c"] == ("tag:keep",)


def test_manifests_are_snapshots() -> None:
    def manifest(sid: str, hours_ago: int, tags: list[str]) -> Manifest:
        return Manifest(id=sid, time=NOW - timedelta(hours=hours_ago), hostname="h", paths=["/"], tree="t", tags=tags)

    ms = [manifest("m1", 1, []), manifest("m2", 2, []), manifest("m3", 3, ["keep"])]
    assert keep_remove(Union([KeepLast(1), KeepTags(["keep"])]), ms, NOW) == (["m1", "m3"], ["m2"])


def test_empty_input_gives_empty_decision() -> None:
    assert GFS(daily=1).apply([], NOW) == Decision(keep=(), remove=(), reasons={})


# --- validation ----------------------------------------------------------------------------


# Some values have the wrong type on purpose: policies are read from JSON and user input.
@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: GFS(daily=-1), r"GFS\.daily must be a non-negative integer"),
        (lambda: GFS(weekly=1.5), r"GFS\.weekly must be a non-negative integer"),  # type: ignore[arg-type]
        (lambda: GFS(monthly=True), r"GFS\.monthly must be a non-negative integer"),
        (lambda: GFS(hourly="3"), r"GFS\.hourly must be a non-negative integer"),  # type: ignore[arg-type]
        (lambda: GFS(yearly=None), r"GFS\.yearly must be a non-negative integer"),  # type: ignore[arg-type]
        (lambda: GFS(), "GFS needs at least one non-zero count"),
        (lambda: GFS(daily=1, timezone="Mars/Olympus"), r"GFS\.timezone"),
        (lambda: GFS(daily=1, timezone="Europe"), r"GFS\.timezone"),
        (lambda: GFS(daily=1, timezone="../etc/passwd"), r"GFS\.timezone"),
        (lambda: KeepLast(-1), r"KeepLast\.n must be a non-negative integer"),
        (lambda: KeepLast(0), r"KeepLast\.n must be at least 1"),
        (lambda: KeepWithin(timedelta(0)), r"KeepWithin\.duration must be a positive"),
        (lambda: KeepWithin(timedelta(seconds=-1)), r"KeepWithin\.duration must be a positive"),
        (lambda: KeepWithin(timedelta(microseconds=5)), r"KeepWithin\.duration must be a positive whole"),
        (lambda: KeepWithin(7), r"KeepWithin\.duration must be a timedelta"),  # type: ignore[arg-type]
        (lambda: KeepWithin("7x"), "duration '7x' must look like"),
        (lambda: KeepTags("keep"), r"KeepTags\.tags must be a list"),
        (lambda: KeepTags([]), "KeepTags needs at least one tag"),
        (lambda: KeepTags(["keep", ""]), r"KeepTags\.tags must be non-empty strings"),
        (lambda: KeepTags(3), r"KeepTags\.tags must be a list"),  # type: ignore[arg-type]
        (lambda: Union([]), "Union needs at least one strategy"),
        (lambda: Union([{"strategy": "keep-last", "n": 1}]), r"Union\.strategies must hold strategies"),  # type: ignore[list-item]
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(build: Callable[[], object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


@pytest.mark.parametrize(
    "snaps",
    [
        [Snap("naive", datetime(2026, 1, 1))],
        [Snap("dup", NOW - timedelta(1)), Snap("dup", NOW - timedelta(2))],
    ],
)
def test_apply_refuses_naive_times_and_repeated_ids(snaps: list[Snap]) -> None:
    with pytest.raises(ConfigError, match=r"timezone-aware|twice"):
        KeepLast(1).apply(snaps, NOW)


def test_apply_refuses_naive_now() -> None:
    with pytest.raises(ConfigError, match="now must be timezone-aware"):
        KeepLast(1).apply([], datetime(2026, 1, 1))


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("7d", timedelta(days=7), "1w"),
        ("36h", timedelta(hours=36), "1d12h"),
        ("2w", timedelta(weeks=2), "2w"),
        ("1d12h", timedelta(days=1, hours=12), "1d12h"),
        ("90min", timedelta(minutes=90), "1h30min"),
        ("1w2d3h4min5s", timedelta(days=9, hours=3, minutes=4, seconds=5), "1w2d3h4min5s"),
        ("0s", timedelta(0), "0s"),
    ],
)
def test_parse_and_format_duration(text: str, value: timedelta, canonical: str) -> None:
    assert parse_duration(text) == value
    assert format_duration(value) == canonical


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "1m", "1y", "-1d", "7 d", "1.5h", "12h1d", "1d1d", "٣d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [timedelta(seconds=-1), timedelta(milliseconds=1500)])
def test_format_duration_rejects_what_text_cannot_hold(value: timedelta) -> None:
    with pytest.raises(ConfigError, match="whole number of seconds"):
        format_duration(value)


@given(st.integers(0, 10**12))
def test_duration_text_round_trips(seconds: int) -> None:
    td = timedelta(seconds=seconds)
    assert parse_duration(format_duration(td)) == td


# --- wire form -----------------------------------------------------------------------------


def test_wire_ids_are_stable() -> None:
    # Changing one of these breaks every stored policy: add new IDs, never rename or reuse.
    assert [c.wire_id for c in (KeepLast, KeepWithin, GFS, KeepTags, Union)] == [
        "keep-last",
        "keep-within",
        "gfs",
        "keep-tags",
        "union",
    ]


def test_to_dict_golden_forms() -> None:
    policy = Union([KeepLast(3), KeepWithin("36h"), GFS(daily=7, timezone=BERLIN), KeepTags(["keep"])])
    assert policy.to_dict() == {
        "strategy": "union",
        "strategies": [
            {"strategy": "keep-last", "n": 3},
            {"strategy": "keep-within", "duration": "1d12h"},
            {
                "strategy": "gfs",
                "hourly": 0,
                "daily": 7,
                "weekly": 0,
                "monthly": 0,
                "yearly": 0,
                "timezone": BERLIN,
            },
            {"strategy": "keep-tags", "tags": ["keep"]},
        ],
    }
    assert strategy_from_dict({"strategy": "gfs", "monthly": 6}) == GFS(monthly=6)


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"strategy": "keep-oldest", "n": 1}, "unknown retention strategy 'keep-oldest'; known: 'gfs'"),
        ({"n": 1}, "unknown retention strategy None"),
        ([("strategy", "gfs")], "must be a JSON object"),
        ({"strategy": "gfs", "daily": 1, "secondly": 5}, r"unknown field\(s\) \['secondly'\]"),
        ({"strategy": "keep-last"}, r"missing field\(s\) \['n'\]"),
        ({"strategy": "gfs", "daily": "3"}, r"GFS\.daily must be a non-negative integer"),
        ({"strategy": "keep-within", "duration": "1m"}, "duration '1m' must look like"),
        ({"strategy": "union", "strategies": "keep-last"}, r"Union\.strategies must be a list"),
        ({"strategy": "union", "strategies": [{"strategy": "nope"}]}, "unknown retention strategy 'nope'"),
    ],
)
def test_strategy_from_dict_rejects(d: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        strategy_from_dict(d)


# --- properties ----------------------------------------------------------------------------

ZONES = ["UTC", BERLIN, "America/Sao_Paulo", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham"]
TAGS = ["keep", "prod", "nightly"]

gfs_counts = st.tuples(*[st.integers(0, 4)] * 5).filter(any)
leaf_strategies = st.one_of(
    st.builds(KeepLast, st.integers(1, 6)),
    st.builds(KeepWithin, st.integers(1, 90 * 86400).map(lambda s: timedelta(seconds=s))),
    st.builds(
        lambda c, tz: GFS(hourly=c[0], daily=c[1], weekly=c[2], monthly=c[3], yearly=c[4], timezone=tz),
        gfs_counts,
        st.sampled_from(ZONES),
    ),
    st.builds(KeepTags, st.lists(st.sampled_from(TAGS), min_size=1, max_size=2)),
)
any_strategy = st.recursive(
    leaf_strategies, lambda inner: st.lists(inner, min_size=1, max_size=3).map(Union), max_leaves=6
)
History = tuple[list[Snap], datetime]  # snapshots and the "now" to apply at
nows = st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Snapshots around ``now``: mostly past, some future, some sharing a time."""
    now = draw(nows)
    # A coarse grid makes equal times and shared buckets common.
    step = draw(st.sampled_from([timedelta(minutes=20), timedelta(hours=7), timedelta(days=3)]))
    entries = draw(
        st.lists(
            st.tuples(st.integers(-150, 3), st.lists(st.sampled_from(TAGS), max_size=2), st.sampled_from(ZONES)),
            max_size=25,
        )
    )
    snaps = [
        Snap(f"s{i:02d}", (now + k * step).astimezone(ZoneInfo(zone)), tuple(tags))
        for i, (k, tags, zone) in enumerate(entries)
    ]
    return snaps, now


def newest_first(snaps: list[Snap]) -> list[str]:
    return [s.id for s in sorted(snaps, key=lambda s: (s.time, s.id), reverse=True)]


@given(any_strategy, histories())
def test_decision_partitions_the_input_with_reasons(strategy: Strategy, history: History) -> None:
    snaps, now = history
    d = strategy.apply(snaps, now)
    order = newest_first(snaps)
    assert sorted(d.keep + d.remove) == sorted(order)
    assert list(d.keep) == [i for i in order if i in set(d.keep)]
    assert list(d.remove) == [i for i in order if i in set(d.remove)]
    assert set(d.reasons) == set(order)
    for sid in d.keep:
        assert d.reasons[sid]
        assert "not kept by any rule" not in d.reasons[sid]
    for sid in d.remove:
        assert d.reasons[sid] == ("not kept by any rule",)
    future = {s.id for s in snaps if s.time > now}
    assert future <= set(d.keep)


@given(any_strategy, histories())
def test_apply_is_idempotent(strategy: Strategy, history: History) -> None:
    snaps, now = history
    first = strategy.apply(snaps, now)
    kept = [s for s in snaps if s.id in set(first.keep)]
    second = strategy.apply(kept, now)
    assert second.remove == ()
    assert second.keep == first.keep
    assert second.reasons == {sid: first.reasons[sid] for sid in first.keep}


@given(any_strategy, histories(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(strategy: Strategy, history: History, rnd: random.Random) -> None:
    snaps, now = history
    shuffled = list(snaps)
    rnd.shuffle(shuffled)
    assert strategy.apply(shuffled, now) == strategy.apply(snaps, now)


@given(st.integers(1, 30), histories())
def test_keep_last_keeps_the_n_newest(n: int, history: History) -> None:
    snaps, now = history
    past = [s for s in snaps if s.time <= now]
    future = [s for s in snaps if s.time > now]
    d = KeepLast(n).apply(snaps, now)
    assert len(d.keep) == min(n, len(past)) + len(future)
    assert set(d.keep) == {s.id for s in future} | set(newest_first(past)[:n])


@given(st.integers(1, 90 * 86400), histories())
def test_keep_within_keeps_exactly_the_window(seconds: int, history: History) -> None:
    snaps, now = history
    window = timedelta(seconds=seconds)
    d = KeepWithin(window).apply(snaps, now)
    assert set(d.keep) == {s.id for s in snaps if s.time >= now - window}


@given(st.integers(1, 6), st.sampled_from(ZONES), histories())
def test_gfs_daily_keeps_newest_of_each_recent_local_day(n: int, zone: str, history: History) -> None:
    snaps, now = history
    past = [s for s in snaps if s.time <= now]
    day = {s.id: s.time.astimezone(ZoneInfo(zone)).date() for s in past}
    d = GFS(daily=n, timezone=zone).apply(snaps, now)
    kept_past = [sid for sid in d.keep if sid in day]
    assert len(kept_past) == min(n, len(set(day.values())))
    assert len({day[sid] for sid in kept_past}) == len(kept_past)
    for sid in kept_past:
        same_day = [s for s in past if day[s.id] == day[sid]]
        assert newest_first(same_day)[0] == sid
        assert d.reasons[sid] == (f"daily {day[sid].isoformat()}",)


@given(st.lists(leaf_strategies, min_size=1, max_size=4), histories())
def test_union_keeps_the_union_of_its_members(members: list[Strategy], history: History) -> None:
    snaps, now = history
    d = Union(members).apply(snaps, now)
    parts = [m.apply(snaps, now) for m in members]
    assert set(d.keep) == set().union(*(p.keep for p in parts))
    for p in parts:
        for sid in p.keep:
            assert set(p.reasons[sid]) <= set(d.reasons[sid])


@given(any_strategy)
def test_strategies_round_trip_through_json(strategy: Strategy) -> None:
    wire = json.loads(json.dumps(strategy.to_dict()))
    assert strategy_from_dict(wire) == strategy
    assert strategy_from_dict(wire).to_dict() == wire
