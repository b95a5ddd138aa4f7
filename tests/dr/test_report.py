"""The DR report renderer on hand-built statuses and records: JSON carries every site's verdicts
and the history (nothing after the status's time), Markdown has a verdict row per site and
objective, the HTML page is balanced, runs no script, loads nothing, escapes hostile strings and
draws one point per replication with a lag; a failed drill names its path and pack; empty or
one-record histories render; an unknown format is refused."""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from snapvault.dr.model import DrillRecord, FailoverRecord, HookRun, PlanSpec, ReplicationRecord, Site
from snapvault.dr.report import render_report
from snapvault.dr.status import ObjectiveState, PlanStatus, SiteStatus
from snapvault.errors import ConfigError

T = datetime(2026, 6, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)
XSS = "<script>alert(1)</script>"
PACK = "ef" * 32


def _plan() -> PlanSpec:
    return PlanSpec(
        name="web",
        primary=Site(name="local", url="memory://x", region="on-prem"),
        replicas=[Site(name="a", url="memory://a", rto="30min"), Site(name="b", url="memory://b")],
        rpo="6h",
        rto="1h",
        policies=["nightly"],
    )


def _site(name: str, objectives: list[ObjectiveState], **kw: object) -> SiteStatus:
    fields: dict[str, object] = {
        "site": name,
        "region": "",
        "primary": False,
        "reachable": True,
        "error": None,
        "error_type": None,
        "stale": False,
        "newest": {"nightly": T - 2 * H},
        "objectives": objectives,
        "last_drill": None,
        "last_replication": None,
    }
    fields.update(kw)
    return SiteStatus(**fields)  # type: ignore[arg-type]


FAILOVER = FailoverRecord(
    id="f1",
    plan="web",
    time=T - 24 * H,
    kind="failover",
    primary="a",
    primary_repository_id="r" * 64,
    previous="local",
    reason="region|down\n<b>lost</b>",
    hooks=[HookRun(stage="promote", command="update-dns a", exit_code=0)],
)


def _status() -> PlanStatus:
    """After a failover to ``a``: ``local`` is a stale former primary, ``a`` misses its RTO by
    2h 05m, ``b`` is unreachable with a hostile error and failed its last drill."""
    sites = [
        _site(
            "local",
            [
                ObjectiveState("rpo:nightly", "met", 21600, 7200, -14400),
                ObjectiveState("rto", "unknown", 3600, None, None),
            ],
            stale=True,
        ),
        _site(
            "a",
            [
                ObjectiveState("rpo:nightly", "met", 21600, 7200, -14400),
                ObjectiveState("rto", "violated", 1800, 9300, 7500, "estimated 2h 35m"),
            ],
            primary=True,
        ),
        _site(
            "b",
            [
                ObjectiveState("rpo:nightly", "unknown", 21600, None, None, "site unreachable"),
                ObjectiveState("rto", "failed", 3600, None, None, "pack failed"),
            ],
            reachable=False,
            error=XSS,
            error_type="BackendUnavailable",
            newest={"nightly": None},
        ),
    ]
    return PlanStatus("web", T, "a", FAILOVER, sites, ["a: rto violated", "b: rto failed", "b: unreachable"])


def _rep(site: str, at: datetime, lag: float | None, ok: bool = True) -> ReplicationRecord:
    error = None if ok else XSS
    return ReplicationRecord(id=f"{site}-{at:%H}", plan="web", site=site, time=at, ok=ok, lag_s=lag, error=error)


REPLICATIONS = [
    _rep("a", T - 4 * H, 0.0),
    _rep("a", T - 3 * H, 600.0),
    _rep("a", T - 2 * H, None, ok=False),  # the site could not be reached: no lag to draw
    _rep("a", T - 1 * H, 1200.0),
    _rep("b", T - 1 * H, 300.0, ok=False),  # failed part-way, with a lag measured
    _rep("a", T + 1 * H, 99.0),  # after the status's time: not in the report
]
DRILLS = [
    DrillRecord(
        id="d1",
        plan="web",
        site="a",
        time=T - 2 * H,
        ok=True,
        snapshot_id="ab" * 32,
        restore_s=12.5,
        throughput_bps=5e6,
        rto_estimate_s=9300,
        rto_objective_s=1800,
    ),
    DrillRecord(
        id="d2",
        plan="web",
        site="b",
        time=T - H,
        ok=False,
        snapshot_id="cd" * 32,
        error="pack failed authentication",
        error_type="IntegrityError",
        path="/srv/data/f1.bin",
        pack_id=PACK,
    ),
]


def _render(fmt: str, **kw: object) -> str:
    args: dict[str, object] = {"replications": REPLICATIONS, "drills": DRILLS, "failovers": [FAILOVER]}
    args.update(kw)
    return render_report(_plan(), _status(), format=fmt, **args)  # type: ignore[arg-type]


@dataclass
class _Page(HTMLParser):
    """Every element with the attributes of the ``<svg>`` it is in, and any nesting error."""

    VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"})
    elements: list[tuple[str, dict[str, str | None], dict[str, str | None]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)
    svg: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_startendtag(tag, attrs)
        if tag == "svg":
            self.svg = dict(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), self.svg))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag == "svg":
            self.svg = {}

    def in_chart(self, tag: str, site: str, kind: str) -> list[dict[str, str | None]]:
        chart = {"data-site": site, "data-kind": kind}
        return [a for t, a, s in self.elements if t == tag and chart.items() <= s.items()]


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    assert p.errors == []
    assert p.stack == []
    return p


def test_json_carries_each_sites_verdicts_and_the_history_up_to_the_status_time() -> None:
    doc = json.loads(_render("json"))

    assert set(doc) == {
        "plan",
        "time",
        "primary",
        "verdict",
        "objectives",
        "sites",
        "failovers",
        "replication_history",
        "drill_history",
    }
    assert (doc["plan"], doc["primary"], doc["verdict"]) == ("web", "a", "failed")
    verdicts = {(s["site"], v["objective"]): (v["verdict"], v["by"]) for s in doc["sites"] for v in s["verdicts"]}
    assert verdicts == {
        ("local", "rpo:nightly"): ("met", None),
        ("local", "rto"): ("unknown", None),
        ("a", "rpo:nightly"): ("met", None),
        ("a", "rto"): ("violated", "2h 05m"),
        ("b", "rpo:nightly"): ("unknown", None),
        ("b", "rto"): ("failed", None),
    }
    # The record after the status's time is left out.
    assert {k: len(v) for k, v in doc["replication_history"].items()} == {"local": 0, "a": 4, "b": 1}
    assert {k: len(v) for k, v in doc["drill_history"].items()} == {"local": 0, "a": 1, "b": 1}
    [fo] = doc["failovers"]
    assert (fo["from"], fo["to"], fo["in_force"], fo["hooks"][0]["exit_code"]) == ("local", "a", True, 0)
    local = doc["sites"][0]
    assert (local["stale"], local["newest"]["nightly"]["age"], local["newest"]["nightly"]["age_s"]) == (
        True,
        "2h 00m",
        7200.0,
    )
    assert [s["rto"] for s in doc["objectives"]["sites"]] == ["1h 00m", "30m 00s", "1h 00m"]
    assert [s["rto_override"] for s in doc["objectives"]["sites"]] == [False, True, False]


def test_markdown_has_a_verdict_row_per_site_and_objective_and_one_line_per_table_row() -> None:
    md = _render("markdown")

    for site, objective, verdict in [
        ("local", "rpo:nightly", "met"),
        ("local", "rto", "unknown"),
        ("a", "rpo:nightly", "met"),
        ("a", "rto", "violated by 2h 05m"),
        ("b", "rpo:nightly", "unknown"),
        ("b", "rto", "failed"),
    ]:
        assert f"| {site} | {objective} | {verdict} |" in md
    # The reason holds a pipe and a newline: still one row of six cells.
    [row] = [line for line in md.splitlines() if "update-dns" in line]
    assert len(re.findall(r"(?<!\\)\|", row)) == 7
    assert XSS not in md
    assert "<b>" not in md


def test_the_page_is_balanced_runs_no_script_and_loads_nothing() -> None:
    page = _render("html")
    p = _parse(page)

    assert "<script" not in page.lower()
    assert sum(1 for t, _, _ in p.elements if t == "svg") == 2 * 3  # lag and RTO, per site
    for tag, attrs, _ in p.elements:
        assert not {"src", "href", "xlink:href"} & set(attrs), tag
    assert "url(" not in page
    assert "@import" not in page


def test_hostile_strings_appear_escaped_never_raw() -> None:
    page = _render("html")

    assert XSS not in page
    assert html.escape(XSS) in page
    assert "<b>lost</b>" not in page
    # JSON carries the string as data, exactly.
    assert json.loads(_render("json"))["sites"][2]["error"] == XSS


def test_the_charts_draw_a_point_per_replication_with_a_lag_and_the_rto_objective_dashed() -> None:
    p = _parse(_render("html"))

    shown = [r for r in REPLICATIONS if r.time <= T]
    for site in ("local", "a", "b"):
        mine = [r for r in shown if r.site == site]
        points = p.in_chart("circle", site, "lag")
        assert len(points) == sum(1 for r in mine if r.lag_s is not None)
        assert len(p.in_chart("path", site, "lag")) == sum(1 for r in mine if r.lag_s is None)
        assert sum(1 for a in points if "failed" in (a["class"] or "")) == sum(1 for r in mine if not r.ok and r.lag_s)
    # Later lag is higher on the chart (smaller y), in time order left to right.
    ys = [float(a["cy"] or 0) for a in p.in_chart("circle", "a", "lag")]
    xs = [float(a["cx"] or 0) for a in p.in_chart("circle", "a", "lag")]
    assert ys == sorted(ys, reverse=True)
    assert xs == sorted(xs)
    # Each drilled site's chart has its RTO objective as a dashed line (``a`` its own 30 min).
    for site in ("a", "b"):
        [line] = [a for a in p.in_chart("line", site, "rto") if a.get("class") == "objective"]
        assert line["stroke-dasharray"]


def test_a_failed_drill_shows_failed_with_its_path_and_pack() -> None:
    md = _render("markdown")
    [row] = [line for line in md.splitlines() if PACK in line]
    assert "| failed |" in row
    assert "/srv/data/f1.bin" in row
    assert "IntegrityError: pack failed authentication" in row

    page = _render("html")
    [tr] = [line for line in page.splitlines() if PACK in line and line.startswith("<tr>")]
    assert '<td class="v-failed">failed</td>' in tr
    assert "<td>/srv/data/f1.bin</td>" in tr

    [drill] = json.loads(_render("json"))["drill_history"]["b"]
    assert (drill["ok"], drill["path"], drill["pack_id"]) == (False, "/srv/data/f1.bin", PACK)


def test_no_history_and_a_single_record_render_in_every_format() -> None:
    for fmt in ("json", "markdown", "html"):
        assert _render(fmt, replications=[], drills=[], failovers=[])
    doc = json.loads(_render("json", replications=[], drills=[], failovers=[]))
    assert all(v == [] for v in doc["replication_history"].values())
    # The failover in force is history even when the caller's list lacks it.
    assert len(doc["failovers"]) == 1
    p = _parse(_render("html", replications=[], drills=[], failovers=[]))
    assert not any(t == "circle" for t, _, _ in p.elements)

    # One record with a lag and one without, each alone on its chart.
    page = _render("html", replications=[_rep("a", T - H, 30.0), _rep("b", T - H, None, ok=False)], drills=[])
    p = _parse(page)
    [point] = p.in_chart("circle", "a", "lag")
    assert 0 < float(point["cx"] or 0) < 560
    assert 0 < float(point["cy"] or 0) < 190
    assert len(p.in_chart("path", "b", "lag")) == 1
    for tag, attrs, _ in p.elements:
        for name in {"x", "y", "cx", "cy", "x1", "y1", "x2", "y2"} & set(attrs) if tag != "svg" else ():
            assert math.isfinite(float(attrs[name] or "nan")), (tag, attrs)


def test_an_unknown_format_or_a_naive_time_is_refused() -> None:
    with pytest.raises(ConfigError, match="pdf"):
        _render("pdf")
    naive = PlanStatus("web", datetime(2026, 6, 1), "local", None, [])
    with pytest.raises(ConfigError, match="timezone"):
        render_report(_plan(), naive, replications=[], drills=[], failovers=[])
