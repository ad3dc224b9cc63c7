"""The portal's breached tickets under a statement, from the list the ledger published
beside it (docs/tickets.md)."""

from __future__ import annotations

from typing import Any

from services.statements.tickets_html import tickets_html
from services.statements.views import ticket_summary

STATEMENT: dict[str, Any] = {
    "lines": [
        {
            "kind": "sla_credit",
            "kpi": "p2_resolution",
            "derivation": {"tickets": 3, "aggregation": "max", "value": 30, "threshold": None},
        }
    ]
}


def test_published_breaches_give_the_count_and_the_worst_tickets() -> None:
    published = [
        {
            "kpi": "p2_resolution",
            "breached": 3,
            "tickets": [{"ticket_id": "T<1>", "hours": "30", "running": True}],
        }
    ]
    (summary,) = ticket_summary(STATEMENT, published)
    assert (summary["breached"], len(summary["breached_tickets"])) == (3, 1)
    shown = tickets_html(STATEMENT, published)
    assert '<td><code>T&lt;1&gt;</code></td><td class="num">30</td>' in shown
    assert "<td>running at close</td>" in shown
    assert '<td colspan="3">and 2 more</td>' in shown


def test_without_a_published_list_only_the_counts_are_shown() -> None:
    (summary,) = ticket_summary(STATEMENT)
    assert summary["breached"] is None and summary["breached_tickets"] == []
    assert "Breached tickets" not in tickets_html(STATEMENT, [])
