"""The report of a disaster-recovery plan: JSON, Markdown, or one self-contained HTML page.

:func:`render_report` turns what :meth:`snapvault.DRPlan.status` found, and the records earlier
runs left (replications, drills, failovers), into one document. It is pure: no I/O and no
clock. Every age is measured at ``status.time``, and records dated after it are left out, so a
report of a past moment shows what was known then. Verdicts are the status's, never recomputed
here: the report and ``status`` cannot disagree.

The three formats carry the same information. JSON is the document itself; Markdown and HTML
lay it out as headings and tables, and the page adds a small inline SVG chart per site of the
replication lag and of the drills' RTO estimates against the objective (the numbers behind
every point are in the tables too). The page runs no script and loads nothing, and every
string taken from the data is escaped: errors, reasons, hook commands and paths can hold
anything.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from snapvault.dr.charts import num, span, svg_chart
from snapvault.dr.model import DrillRecord, FailoverRecord, PlanSpec, ReplicationRecord
from snapvault.dr.status import ObjectiveState, PlanStatus, SiteStatus
from snapvault.errors import ConfigError

__all__ = ["FORMATS", "render_report"]

#: The formats :func:`render_report` writes.
FORMATS = ("json", "markdown", "html")


def render_report(
    plan: PlanSpec,
    status: PlanStatus,
    *,
    replications: Sequence[ReplicationRecord],
    drills: Sequence[DrillRecord],
    failovers: Sequence[FailoverRecord],
    format: Literal["json", "markdown", "html"] = "json",
) -> str:
    """Render a plan's objectives, sites, history and verdicts.

    Parameters
    ----------
    plan : PlanSpec
        The plan (its objectives, per-site overrides and what it covers).
    status : PlanStatus
        The plan's status at ``status.time`` (timezone-aware): the primary in force, each
        site's state, and the verdict per objective and site, shown as they are.
    replications, drills, failovers : sequence of records
        The history, in any order; records dated after ``status.time`` are left out.
    format : {"json", "markdown", "html"}
        JSON: one document (keys ``plan``, ``time``, ``primary``, ``verdict``, ``objectives``,
        ``sites``, ``failovers``, ``replication_history``, ``drill_history``). Markdown:
        headings and tables. HTML: one page with inline CSS and SVG charts, no script, no
        external resource.

    Returns
    -------
    str
        The report.

    Raises
    ------
    ConfigError
        If ``format`` is not one of :data:`FORMATS`, or ``status.time`` is naive.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown report format {format!r}; choose one of {', '.join(FORMATS)}")
    if status.time.tzinfo is None or status.time.utcoffset() is None:
        raise ConfigError("status.time must be timezone-aware")
    data = _Data.collect(plan, status, replications, drills, failovers)
    doc = _document(data)
    if format == "json":
        return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False)
    blocks = _blocks(doc)
    return _markdown(blocks) if format == "markdown" else _html(doc, blocks, data)


# -- the document ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """The inputs, filtered to ``status.time`` and grouped by site (in the plan's order)."""

    plan: PlanSpec
    status: PlanStatus
    names: list[str]
    replications: dict[str, list[ReplicationRecord]]
    drills: dict[str, list[DrillRecord]]
    failovers: list[FailoverRecord]

    @classmethod
    def collect(
        cls,
        plan: PlanSpec,
        status: PlanStatus,
        replications: Sequence[ReplicationRecord],
        drills: Sequence[DrillRecord],
        failovers: Sequence[FailoverRecord],
    ) -> _Data:
        until = status.time
        fails = {f.id: f for f in failovers if f.time <= until}
        # The failover in force is history too, even if the caller's list lacks it.
        if status.failover is not None and status.failover.time <= until:
            fails.setdefault(status.failover.id, status.failover)
        reps = sorted((r for r in replications if r.time <= until), key=lambda r: (r.time, r.id))
        drs = sorted((d for d in drills if d.time <= until), key=lambda d: (d.time, d.id))
        known = [s.name for s in plan.sites]
        # A record of a site the plan no longer has is still history: listed after the plan's.
        extra = {s.site for s in status.sites} | {r.site for r in reps} | {d.site for d in drs}
        names = known + sorted(extra - set(known))
        return cls(
            plan=plan,
            status=status,
            names=names,
            replications={n: [r for r in reps if r.site == n] for n in names},
            drills={n: [d for d in drs if d.site == n] for n in names},
            failovers=sorted(fails.values(), key=lambda f: f.order()),
        )


def _document(data: _Data) -> dict[str, Any]:
    st = data.status
    verdict = "ok"
    if not st.ok:
        failed = any(o.verdict == "failed" for s in st.sites for o in s.objectives)
        verdict = "failed" if failed else "violated"
    in_force = None if st.failover is None else st.failover.id
    return {
        "plan": data.plan.name,
        "time": st.time.isoformat(),
        "primary": st.primary,
        "verdict": verdict,
        "objectives": _objectives(data.plan),
        "sites": [_site(data.plan, s, st.time) for s in st.sites],
        "failovers": [_failover(f, f.id == in_force) for f in data.failovers],
        "replication_history": {n: [_replication(r) for r in data.replications[n]] for n in data.names},
        "drill_history": {n: [_drill(d) for d in data.drills[n]] for n in data.names},
    }


def _span_pair(name: str, value: float | timedelta | None) -> dict[str, Any]:
    """``{name_s: seconds, name: "2h 05m"}``: the number for programs, the text for people."""
    seconds = num(value.total_seconds() if isinstance(value, timedelta) else value)
    return {f"{name}_s": seconds, name: span(seconds)}


def _objectives(plan: PlanSpec) -> dict[str, Any]:
    every = not plan.policies and not plan.tags
    sites = [
        {"site": s.name, "rpo_override": s.rpo is not None, "rto_override": s.rto is not None}
        | _span_pair("rpo", plan.rpo_of(s))
        | _span_pair("rto", plan.rto_of(s))
        for s in plan.sites
    ]
    return {
        **_span_pair("rpo", plan.rpo),
        **_span_pair("rto", plan.rto),
        "covers": {"policies": list(plan.policies), "tags": list(plan.tags), "everything": every},
        "rto_policy": plan.rto_policy,
        "sites": sites,
    }


def _site(plan: PlanSpec, s: SiteStatus, now: datetime) -> dict[str, Any]:
    newest = {group: {"time": _iso(when)} | _span_pair("age", _age(now, when)) for group, when in s.newest.items()}
    return {
        "site": s.site,
        "region": s.region,
        "role": "primary" if s.primary else "replica",
        "primary": s.primary,
        "planned_primary": s.site == plan.primary.name,
        "reachable": s.reachable,
        "error": s.error,
        "error_type": s.error_type,
        "stale": s.stale,
        "ok": s.ok,
        "newest": newest,
        "last_replication": None if s.last_replication is None else _replication(s.last_replication),
        "last_drill": None if s.last_drill is None else _drill(s.last_drill),
        "verdicts": [_verdict(o) for o in s.objectives],
    }


def _verdict(o: ObjectiveState) -> dict[str, Any]:
    over = num(o.margin_s)
    return {
        "objective": o.objective,
        "verdict": o.verdict,
        # How far past the objective, for people: only a violation with a number has one.
        "by": span(over) if o.verdict == "violated" and over is not None and over > 0 else None,
        "margin_s": over,
        "detail": o.detail,
        **_span_pair("target", o.target_s),
        **_span_pair("actual", o.actual_s),
    }


def _failover(f: FailoverRecord, in_force: bool) -> dict[str, Any]:
    return {
        "id": f.id,
        "time": f.time.isoformat(),
        "kind": f.kind,
        "from": f.previous,
        "to": f.primary,
        "reason": f.reason,
        "in_force": in_force,
        "hooks": [{"stage": h.stage, "command": h.command, "exit_code": h.exit_code} for h in f.hooks],
    }


def _record(rec: ReplicationRecord | DrillRecord) -> dict[str, Any]:
    """Every field of a record (times as ``isoformat()``, as elsewhere in the report)."""
    out = rec.model_dump(mode="json", exclude={"plan", "site"})
    out = {k: num(v) if isinstance(v, float) else v for k, v in out.items()}
    out["time"] = rec.time.isoformat()
    return out


def _replication(r: ReplicationRecord) -> dict[str, Any]:
    return {**_record(r), "lag": span(r.lag_s)}


def _drill(d: DrillRecord) -> dict[str, Any]:
    throughput = None if num(d.throughput_bps) is None else f"{_bytes(d.throughput_bps)}/s"
    return {
        **_record(d),
        "snapshot_time": _iso(d.snapshot_time),
        "restore": span(d.restore_s),
        "throughput": throughput,
        "rto_estimate": span(d.rto_estimate_s),
        "rto_objective": span(d.rto_objective_s),
    }


# -- plain values ----------------------------------------------------------------------------


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _age(now: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    try:
        return (now - then).total_seconds()
    except TypeError:  # a naive time cannot be compared with an aware one; say nothing rather than guess
        return None


def _bytes(n: float | None) -> str:
    x, unit = num(n) or 0.0, "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if abs(x) < 1024:
            break
        x, unit = x / 1024, bigger
    return f"{x:.0f} B" if unit == "B" else f"{x:.1f} {unit}"


def _or(text: Any, empty: str = "-") -> str:
    return empty if text is None or text == "" else str(text)


# -- layout shared by Markdown and HTML ------------------------------------------------------

#: A table cell: its text, or its text and a CSS class (used by the page only).
_Cell = str | tuple[str, str]


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True)
class _Para:
    text: str


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    rows: list[tuple[_Cell, ...]]


@dataclass(frozen=True)
class _Chart:
    kind: Literal["lag", "rto"]
    site: str


_Block = _Heading | _Para | _Table | _Chart


def _verdict_cell(v: dict[str, Any]) -> _Cell:
    text = v["verdict"] if v["by"] is None else f"{v['verdict']} by {v['by']}"
    return (text, f"v-{v['verdict']}")


def _result_cell(ok: bool) -> _Cell:
    return ("ok", "v-met") if ok else ("failed", "v-failed")


def _blocks(doc: dict[str, Any]) -> list[_Block]:
    out: list[_Block] = [_Heading(1, f"Disaster-recovery report: {doc['plan']}")]
    in_force = next((f for f in doc["failovers"] if f["in_force"]), None)
    since = "-" if in_force is None else f"{in_force['time']} ({in_force['kind']} from {in_force['from']})"
    summary: list[tuple[_Cell, ...]] = [
        ("Plan", doc["plan"]),
        ("Time", doc["time"]),
        ("Verdict", (doc["verdict"], "v-met" if doc["verdict"] == "ok" else f"v-{doc['verdict']}")),
        ("Primary in force", doc["primary"]),
        ("Primary since", since),
    ]
    out.append(_Table(("Item", "Value"), summary))

    out.append(_Heading(2, "Verdicts"))
    rows: list[tuple[_Cell, ...]] = [
        (s["site"], v["objective"], _verdict_cell(v), _or(v["target"]), _or(v["actual"]), _or(v["detail"]))
        for s in doc["sites"]
        for v in s["verdicts"]
    ]
    out.append(_Table(("Site", "Objective", "Verdict", "Target", "Actual", "Detail"), rows))

    obj = doc["objectives"]
    out.append(_Heading(2, "Objectives"))
    cov = obj["covers"]
    covered = "every snapshot" if cov["everything"] else _covers_text(cov["policies"], cov["tags"])
    drilled = obj["rto_policy"] and f"; drills restore the latest snapshot of policy {obj['rto_policy']}"
    out.append(_Para(f"RPO {obj['rpo']}, RTO {_or(obj['rto'], 'none')}; covers {covered}{drilled or ''}."))
    rows = [
        (
            s["site"],
            _or(s["rpo"]) + (" (site)" if s["rpo_override"] else ""),
            _or(s["rto"], "none") + (" (site)" if s["rto_override"] else ""),
        )
        for s in obj["sites"]
    ]
    out.append(_Table(("Site", "RPO", "RTO"), rows))

    out.append(_Heading(2, "Sites"))
    rows = [_site_row(s) for s in doc["sites"]]
    out.append(_Table(("Site", "Region", "Role", "Reachable", "Stale", "Last replication", "Last drill"), rows))
    out.append(_Heading(3, "Newest covered snapshots"))
    rows = [
        (s["site"], "all covered" if group == "*" else group, _or(n["time"], "none"), _or(n["age"]))
        for s in doc["sites"]
        for group, n in s["newest"].items()
    ]
    out.append(_Table(("Site", "Policy", "Newest", "Age"), rows))

    out.append(_Heading(2, "Failovers"))
    if doc["failovers"]:
        rows = [
            (
                f["time"] + (" (in force)" if f["in_force"] else ""),
                f["kind"],
                f["from"],
                f["to"],
                f["reason"],
                _or("; ".join(f"{h['stage']}: {h['command']} (exit {h['exit_code']})" for h in f["hooks"])),
            )
            for f in doc["failovers"]
        ]
        out.append(_Table(("Time", "Kind", "From", "To", "Reason", "Hooks"), rows))
    else:
        out.append(_Para("No failover: the plan's own primary has always taken the writes."))

    out.append(_Heading(2, "Replication history"))
    for site, reps in doc["replication_history"].items():
        out += [_Heading(3, site), _Chart("lag", site)]
        if not reps:
            out.append(_Para("No replication run recorded."))
            continue
        rows = [
            (
                r["time"],
                _result_cell(r["ok"]),
                _or(r["lag"]),
                str(r["copied"]),
                _bytes(r["bytes_uploaded"]),
                _or(span(r["seconds"])),
                _error(r),
            )
            for r in reps
        ]
        out.append(_Table(("Time", "Result", "Lag", "Copied", "Uploaded", "Took", "Error"), rows))

    out.append(_Heading(2, "Drill history"))
    for site, drs in doc["drill_history"].items():
        out += [_Heading(3, site), _Chart("rto", site)]
        if not drs:
            out.append(_Para("No drill recorded."))
            continue
        rows = [
            (
                d["time"],
                _result_cell(d["ok"]),
                _or(d["snapshot_id"] and d["snapshot_id"][:12]),
                _or(d["restore"]),
                _or(d["throughput"]),
                _or(d["rto_estimate"]),
                _or(d["rto_objective"], "none"),
                _error(d),
                _or(d["path"]),
                _or(d["pack_id"]),
            )
            for d in drs
        ]
        cols = ("Time", "Result", "Snapshot", "Restore", "Throughput", "RTO estimate", "RTO objective")
        out.append(_Table((*cols, "Error", "Path", "Pack"), rows))
    return out


def _covers_text(policies: list[str], tags: list[str]) -> str:
    parts = []
    if policies:
        parts.append("policies " + ", ".join(policies))
    if tags:
        parts.append("tags " + ", ".join(tags))
    return " or ".join(parts)


def _error(entry: dict[str, Any]) -> str:
    if entry["error"] is None:
        return "-"
    return entry["error"] if entry["error_type"] is None else f"{entry['error_type']}: {entry['error']}"


def _site_row(s: dict[str, Any]) -> tuple[_Cell, ...]:
    role = s["role"] + (" (plan's primary)" if s["planned_primary"] and not s["primary"] else "")
    if s["reachable"]:
        reach: _Cell = ("yes", "v-met")
    else:
        reach = ("no: " + _error(s) if s["error"] is not None else "no", "v-failed")
    stale: _Cell = ("yes: missed a failover", "v-violated") if s["stale"] else "no"
    rep, drill = s["last_replication"], s["last_drill"]
    last_rep = "never" if rep is None else f"{rep['time']} {'ok' if rep['ok'] else 'failed'}, lag {_or(rep['lag'])}"
    last_drill = "never"
    if drill is not None:
        last_drill = f"{drill['time']} {'ok' if drill['ok'] else 'failed'}, RTO estimate {_or(drill['rto_estimate'])}"
    return (s["site"], _or(s["region"]), role, reach, stale, last_rep, last_drill)


# -- Markdown --------------------------------------------------------------------------------

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|#"})


def _md(text: str) -> str:
    """One line of Markdown text showing ``text`` literally: no markup, HTML or table break."""
    return html.escape(" ".join(text.split()), quote=False).translate(_MD_SPECIAL)


def _markdown(blocks: list[_Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, _Heading):
            out += ["#" * b.level + " " + _md(b.text), ""]
        elif isinstance(b, _Para):
            out += [_md(b.text), ""]
        elif isinstance(b, _Table):
            out.append("| " + " | ".join(_md(c) for c in b.columns) + " |")
            out.append("|" + "---|" * len(b.columns))
            out += ["| " + " | ".join(_md(_text(c)) for c in row) + " |" for row in b.rows]
            out.append("")
        # Charts are drawn on the page only; their numbers are in the history tables.
    return "\n".join(out)


def _text(c: _Cell) -> str:
    return c if isinstance(c, str) else c[0]


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#1f2328;margin:2rem auto;max-width:80rem;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td{overflow-wrap:anywhere}
.v-met{color:#1a7f37}.v-violated{color:#bc4c00;font-weight:600}
.v-failed{color:#cf222e;font-weight:600}.v-unknown{color:#6e7781}
svg.chart{display:block;border:1px solid #d0d7de;background:#fff;margin:.25rem 0 .5rem}
svg.chart text{font:10px sans-serif;fill:#57606a}
"""
# No script may run and nothing may load, even if escaping were ever missed somewhere.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html(doc: dict[str, Any], blocks: list[_Block], data: _Data) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        f"<title>{_e('Disaster-recovery report: ' + doc['plan'])}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
    ]
    for b in blocks:
        if isinstance(b, _Heading):
            out.append(f"<h{b.level}>{_e(b.text)}</h{b.level}>")
        elif isinstance(b, _Para):
            out.append(f"<p>{_e(b.text)}</p>")
        elif isinstance(b, _Table):
            out.append("<table>")
            out.append("<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in b.columns) + "</tr></thead>")
            out.append("<tbody>")
            out += ["<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in b.rows]
            out.append("</tbody></table>")
        else:
            out.append(_chart_for(b, data))
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _td(c: _Cell) -> str:
    if isinstance(c, str):
        return f"<td>{_e(c)}</td>"
    return f'<td class="{_e(c[1])}">{_e(c[0])}</td>'


def _chart_for(c: _Chart, data: _Data) -> str:
    if c.kind == "lag":
        series = [(r.time, num(r.lag_s), r.ok) for r in data.replications.get(c.site, [])]
        return svg_chart(c.kind, c.site, f"Replication lag at {c.site} (UTC)", "lag", series, None)
    drills = data.drills.get(c.site, [])
    series = [(d.time, num(d.rto_estimate_s), d.ok) for d in drills]
    spec = next((s for s in data.plan.sites if s.name == c.site), None)
    rto = None if spec is None else data.plan.rto_of(spec)
    # A site the plan no longer has: the objective its last drill was measured against.
    recorded = [o for d in drills if (o := num(d.rto_objective_s)) is not None]
    objective = rto.total_seconds() if rto is not None else (recorded[-1] if recorded else None)
    return svg_chart(c.kind, c.site, f"Drill RTO estimates at {c.site} (UTC)", "RTO estimate", series, objective)
