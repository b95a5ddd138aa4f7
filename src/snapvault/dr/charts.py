"""Static SVG charts for the DR report, and the number formats the report and status share.

Plain Python, no plotting library: a point per record, a cross where a run left no value, the
objective as a dashed line, a few round ticks. Every string drawn is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

__all__ = ["Sample", "num", "span", "svg_chart"]

_W, _H = 560, 190  # the chart's size; the plot leaves room for tick labels left and below
_LEFT, _RIGHT, _TOP, _BOTTOM = 66, 14, 30, 30


#: One record on a chart: when, its value (None: none to draw), and whether the run passed.
Sample = tuple[datetime, float | None, bool]


def num(x: float | None) -> float | None:
    """A finite number, else None (JSON has no NaN, and a chart cannot place one)."""
    return None if x is None or not math.isfinite(x) else float(x)


def span(seconds: float | None) -> str | None:
    """``1d 02h``, ``2h 05m``, ``3m 10s``, ``12s``, ``2.5s``, ``250ms``: how long, for people."""
    x = num(seconds)
    if x is None:
        return None
    sign, a = ("-" if x < 0 else ""), abs(x)
    if a < 1 and a != 0:
        ms = a * 1000
        return f"{sign}{ms:.1f}ms" if ms < 10 else f"{sign}{ms:.0f}ms"
    if a < 10 and a != int(a):
        return f"{sign}{a:.1f}s"
    s = round(a)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{sign}{d}d {h:02d}h"
    if h:
        return f"{sign}{h}h {m:02d}m"
    if m:
        return f"{sign}{m}m {sec:02d}s"
    return f"{sign}{sec}s"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _steps() -> Iterator[float]:
    """Tick steps people read easily: seconds, minutes, hours, days, weeks, then decades of weeks."""
    yield from (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800)
    yield from (3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
    week = 604800.0
    while True:
        for m in (2, 5, 10):
            yield week * m
        week *= 10


def _scale(values: list[float]) -> tuple[float, float, list[float]]:
    """The value axis: bounds that include 0 and every value, on a round step, and its ticks."""
    lo, hi = min([0.0, *values]), max([0.0, *values])
    if hi <= lo:
        hi = lo + 1
    step = next(s for s in _steps() if math.ceil(hi / s) - math.floor(lo / s) <= 4)
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    return lo, hi, [lo + i * step for i in range(round((hi - lo) / step) + 1)]


def svg_chart(kind: str, site: str, title: str, what: str, series: list[Sample], objective: float | None) -> str:
    """A static chart: a point per record with a value (red: the run failed), a cross on the
    time axis per record without one (a failed or unreachable run), the objective dashed."""
    head = (
        f'<svg class="chart" data-kind="{_e(kind)}" data-site="{_e(site)}" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{_e(title)}">'
    )
    out = [head, f"<title>{_e(title)}</title>", f'<text x="{_LEFT}" y="16">{_e(title)}</text>']
    if not series:
        out += [f'<text x="{_W // 2}" y="{_H // 2}" text-anchor="middle">no data</text>', "</svg>"]
        return "\n".join(out)
    stamps = [t.timestamp() for t, _, _ in series]
    t0, t1 = min(stamps), max(stamps)
    if t1 - t0 < 1:  # one moment: centre it in a two-hour window
        t0, t1 = t0 - 3600, t1 + 3600
    lo, hi, ticks = _scale([v for _, v, _ in series if v is not None] + ([] if objective is None else [objective]))
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _H - _BOTTOM, _TOP

    def x(t: float) -> float:  # points keep clear of the value axis and the right edge
        return x0 + 12 + (t - t0) / (t1 - t0) * (x1 - x0 - 24)

    def y(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    for v in ticks:
        out.append(f'<line x1="{x0}" y1="{y(v):.1f}" x2="{x1}" y2="{y(v):.1f}" stroke="#eaeef2"/>')
        out.append(f'<text x="{x0 - 5}" y="{y(v) + 3:.1f}" text-anchor="end">{_e(span(v))}</text>')
    base = y(0.0)
    out.append(f'<line x1="{x0}" y1="{y1}" x2="{x0}" y2="{y0}" stroke="#57606a"/>')
    out.append(f'<line x1="{x0}" y1="{base:.1f}" x2="{x1}" y2="{base:.1f}" stroke="#57606a"/>')
    for stamp, anchor in ((t0, "start"), ((t0 + t1) / 2, "middle"), (t1, "end")):
        when = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M")
        out.append(f'<text x="{x(stamp):.1f}" y="{y0 + 18}" text-anchor="{anchor}">{when}</text>')
    if objective is not None:
        oy, label = y(objective), _e(f"objective {span(objective)}")
        out.append(
            f'<line class="objective" x1="{x0}" y1="{oy:.1f}" x2="{x1}" y2="{oy:.1f}" '
            'stroke="#9a6700" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        out.append(f'<text x="{x1}" y="{oy - 4:.1f}" text-anchor="end">{label}</text>')
    drawn = sorted(((t, v, ok) for t, v, ok in series if v is not None), key=lambda p: p[0])
    if len(drawn) > 1:
        line = " ".join(f"{x(t.timestamp()):.1f},{y(v):.1f}" for t, v, _ in drawn)
        out.append(f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-opacity="0.5"/>')
    for t, v, ok in drawn:
        state, colour = ("ok", "#0969da") if ok else ("failed", "#cf222e")
        label = _e(f"{t.isoformat()}: {what} {span(v)}" + ("" if ok else " (failed)"))
        out.append(
            f'<circle class="{_e(kind)} {state}" cx="{x(t.timestamp()):.1f}" cy="{y(v):.1f}" r="3.5" '
            f'fill="{colour}"><title>{label}</title></circle>'
        )
    for t, _, _ in sorted((p for p in series if p[1] is None), key=lambda p: p[0]):
        cross = f"M{x(t.timestamp()) - 4:.1f} {base - 4:.1f}l8 8m-8 0l8 -8"
        label = _e(f"{t.isoformat()}: no {what} (failed or unreachable)")
        out.append(f'<path class="miss" d="{cross}" stroke="#cf222e" stroke-width="2"><title>{label}</title></path>')
    out.append("</svg>")
    return "\n".join(out)
