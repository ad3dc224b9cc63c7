"""The portal's ticket tables under a statement: each ticket KPI's tickets and breaches,
and the breached tickets by id with their business hours (docs/tickets.md)."""

from __future__ import annotations

from typing import Any

from services.statements.markup import Html, html, join
from services.statements.views import ticket_summary


def tickets_html(statement: dict[str, Any], breaches: list[dict[str, Any]]) -> Html:
    """Per ticket KPI, its tickets and the breached ones, by id with their business hours
    (docs/tickets.md)."""
    summary = ticket_summary(statement, breaches)
    if not summary:
        return Html("")
    rows = join(
        html(
            '<tr><td>{kpi}</td><td class="num">{n}</td><td class="num">{past}</td>'
            "<td>{how}</td></tr>",
            kpi=t["kpi"],
            n=t["tickets"],
            past="—" if t["breached"] is None else t["breached"],
            how=f"over {t['threshold']:g} business hours"
            if t["threshold"] is not None
            else f"{t['aggregation']} {t['value'] if t['value'] is not None else '—'} h",
        )
        for t in summary
    )
    return html(
        '<h4>Tickets</h4><div class="scroll"><table class="tickets"><thead><tr><th>KPI</th>'
        '<th class="num">Tickets</th><th class="num">Breached</th><th>Limit</th></tr></thead>'
        "<tbody>{rows}</tbody></table></div>{breached}",
        rows=rows,
        breached=_breached_tickets(summary),
    )


def _breached_tickets(summary: list[dict[str, Any]]) -> Html:
    """The breached tickets the ledger published with the statement, worst first."""
    rows = []
    for t in summary:
        for ticket in t["breached_tickets"]:
            rows.append(
                html(
                    '<tr><td>{kpi}</td><td><code>{id}</code></td><td class="num">{hours}</td>'
                    "<td>{state}</td></tr>",
                    kpi=t["kpi"],
                    id=ticket["ticket_id"],
                    hours=ticket["hours"],
                    state="running at close" if ticket["running"] else "stopped",
                )
            )
        more = (t["breached"] or 0) - len(t["breached_tickets"])
        if t["breached_tickets"] and more > 0:
            rows.append(
                html(
                    '<tr><td>{kpi}</td><td colspan="3">and {n} more</td></tr>', kpi=t["kpi"], n=more
                )
            )
    if not rows:
        return Html("")
    return html(
        '<details class="breached"><summary>Breached tickets</summary><div class="scroll">'
        '<table class="tickets"><thead><tr><th>KPI</th><th>Ticket</th>'
        '<th class="num">Business hours</th><th>Clock</th></tr></thead><tbody>{rows}</tbody>'
        "</table></div></details>",
        rows=join(rows),
    )
