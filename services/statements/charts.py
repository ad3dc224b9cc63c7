"""Charts as inline SVG, drawn on the server: no script, no library, no CDN.

Each chart is an `<svg role="img">` with a label and a `<title>` per mark (the browser's
tooltip); colours come from classes styled in static/portal.css. Floats only place marks:
every number a reader sees is the text of the statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.statements.markup import Html, html, join

WIDTH, HEIGHT = 600, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 16, 34
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class KpiPoint:
    """A KPI's value in one period (None: no data) and whether it met its target."""

    period: str
    value: float | None
    met: bool | None


@dataclass(frozen=True)
class MoneySeries:
    """One kind of money per period, e.g. the SLA credits; `css` names its colour class."""

    label: str
    css: str
    amounts: Sequence[Decimal]


def _x(index: int, count: int) -> float:
    return LEFT + PLOT_W * (index + 0.5) / max(count, 1)


def _scale(low: float, high: float) -> tuple[float, float]:
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.12
    return low - pad, high + pad


def _y(value: float, low: float, high: float) -> float:
    return TOP + PLOT_H * (1 - (value - low) / (high - low))


def _frame(label: str, periods: Sequence[str], body: Html, ticks: Html) -> Html:
    step = max(1, len(periods) // 8)  # at most ~8 period labels fit
    names = join(
        html(
            '<text class="axis" x="{x:.1f}" y="{y}" text-anchor="middle">{p}</text>',
            x=_x(i, len(periods)),
            y=HEIGHT - 12,
            p=period,
        )
        for i, period in enumerate(periods)
        if i % step == 0
    )
    return html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">'
        "<title>{label}</title>"
        '<line class="frame" x1="{l}" y1="{t}" x2="{l}" y2="{b}"/>'
        '<line class="frame" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>'
        "{ticks}{body}{names}</svg>",
        w=WIDTH,
        h=HEIGHT,
        label=label,
        l=LEFT,
        t=TOP,
        b=TOP + PLOT_H,
        r=WIDTH - RIGHT,
        ticks=ticks,
        body=body,
        names=names,
    )


def _tick(value: float, text: str, low: float, high: float, css: str = "grid") -> Html:
    y = _y(value, low, high)
    return html(
        '<line class="{css}" x1="{l}" y1="{y:.1f}" x2="{r}" y2="{y:.1f}"/>'
        '<text class="axis" x="{tx}" y="{ty:.1f}" text-anchor="end">{text}</text>',
        css=css,
        l=LEFT,
        r=WIDTH - RIGHT,
        y=y,
        tx=LEFT - 6,
        ty=y + 4,
        text=text,
    )


def _ticks(marks: Sequence[tuple[float, str, str]], low: float, high: float) -> Html:
    """Horizontal rules with labels; a label too close to an earlier one is left out."""
    placed: list[float] = []
    out = []
    for value, text, css in marks:
        y = _y(value, low, high)
        crowded = any(abs(y - other) < 14 for other in placed)
        out.append(_tick(value, "" if crowded else text, low, high, css))
        if not crowded:
            placed.append(y)
    return join(out)


def kpi_chart(kpi: str, objective: str, target: float, points: Sequence[KpiPoint]) -> Html:
    """A KPI's value per period against its target (dashed); red marks missed the target."""
    values = [p.value for p in points if p.value is not None]
    low, high = _scale(min([*values, target]), max([*values, target]))
    marks_at = [(target, f"{objective} {target:.6g}", "target")]
    extremes = sorted({min(values), max(values)}) if values else []
    marks_at += [(v, f"{v:.6g}", "grid") for v in extremes]
    ticks = _ticks(marks_at, low, high)
    marks, path = [], []
    for i, point in enumerate(points):
        if point.value is None:
            continue
        x, y = _x(i, len(points)), _y(point.value, low, high)
        path.append(f"{x:.1f},{y:.1f}")
        verdict = "met" if point.met else "missed"
        marks.append(
            html(
                '<circle class="{verdict}" cx="{x:.1f}" cy="{y:.1f}" r="5">'
                "<title>{period}: {kpi} {value:.6g}, target {objective} {target:.6g} — {verdict}"
                "</title></circle>",
                verdict=verdict,
                x=x,
                y=y,
                period=point.period,
                kpi=kpi,
                value=point.value,
                objective=objective,
                target=target,
            )
        )
    line = html('<polyline class="series" points="{p}"/>', p=" ".join(path)) if path else ""
    if not path:
        line = html(
            '<text class="empty" x="{x}" y="{y}" text-anchor="middle">no data in any period</text>',
            x=LEFT + PLOT_W / 2,
            y=TOP + PLOT_H / 2 - 8,
        )
    body = join([html("{line}", line=line), *marks])
    label = f"{kpi} per period against its target ({objective} {target:.6g})"
    return _frame(label, [p.period for p in points], body, ticks)


def compliance_chart(periods: Sequence[str], met: Sequence[int], measured: Sequence[int]) -> Html:
    """The share of KPIs with data that met their target, per period (0 to 100 %)."""
    bars = []
    width = PLOT_W / max(len(periods), 1) * 0.6
    for i, period in enumerate(periods):
        share = met[i] / measured[i] if measured[i] else 0.0
        top = _y(share * 100, 0, 115)  # headroom for the labels
        bars.append(
            html(
                '<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}">'
                "<title>{period}: {met} of {n} KPIs met their target</title></rect>"
                '<text class="value" x="{cx:.1f}" y="{ty:.1f}" text-anchor="middle">'
                "{met}/{n}</text>",
                css="met" if measured[i] and met[i] == measured[i] else "missed",
                x=_x(i, len(periods)) - width / 2,
                y=top,
                w=width,
                h=TOP + PLOT_H - top,
                period=period,
                met=met[i],
                n=measured[i],
                cx=_x(i, len(periods)),
                ty=top - 5,
            )
        )
    ticks = _ticks([(0, "0 %", "grid"), (50, "50 %", "grid"), (100, "100 %", "grid")], 0, 115)
    return _frame("Share of KPIs meeting their target", periods, join(bars), ticks)


def money_chart(periods: Sequence[str], series: Sequence[MoneySeries], currency: str) -> Html:
    """Credits, bonuses and adjustments per period as bars around zero."""
    amounts = [float(a) for s in series for a in s.amounts]
    low, high = _scale(min([0.0, *amounts]), max([0.0, *amounts]))
    slot = PLOT_W / max(len(periods), 1)
    width = slot * 0.7 / max(len(series), 1)
    zero = _y(0, low, high)
    bars = []
    for k, s in enumerate(series):
        for i, amount in enumerate(s.amounts):
            y = _y(float(amount), low, high)
            bars.append(
                html(
                    '<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}">'
                    "<title>{period}: {label} {amount} {currency}</title></rect>",
                    css=s.css,
                    x=_x(i, len(periods)) - slot * 0.35 + k * width,
                    y=min(y, zero),
                    w=width,
                    h=max(abs(zero - y), 0.5),
                    period=periods[i],
                    label=s.label,
                    amount=amount,
                    currency=currency,
                )
            )
    extremes = sorted({min(amounts, default=0.0), max(amounts, default=0.0)} - {0.0})
    ticks = _ticks([(0, "0", "target"), *((a, f"{a:,.2f}", "grid") for a in extremes)], low, high)
    return _frame(f"Credits and bonuses per period ({currency})", periods, join(bars), ticks)
