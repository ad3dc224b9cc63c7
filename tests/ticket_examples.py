"""A month of helpdesk tickets under a Bavarian calendar, with its statement worked out by
hand (docs/tickets.md). Office hours Mon-Fri 09:00-18:00 Berlin; June 2026 has one
Bavarian public holiday on a weekday, Corpus Christi (Thursday 4 June).

P1 response (within 1 h): A 0.5, B 1.5 (Wed 17-18 + Fri 09:00-09:30, Thursday closed),
D 9 (still unanswered at close), E 0.75 → 2 of 4 within: 0.5, tier 5 %.
P1 resolution (within 8 h): A 5, B 4 (Wed 1 + Fri 1 + Mon 2, the weekend paused anyway),
D 9 and E 18 running past 8 h at close → 2 of 4 within: 0.5, tier 5 %.
P2 response (mean ≤ 4 h): C 4 → met. P2 resolution (max ≤ 16 h): C 18 → tier 3 %.
Credits 13 % of 10,000.00 EUR: total 8,700.00 EUR.
"""

from __future__ import annotations

import copy
from typing import Any

CONTRACT = "bavaria-helpdesk"
PERIOD = "2026-06"
TIERS = [{"breach": 0.9, "percent": 5}, {"breach": 0.5, "percent": 10}]
CALENDAR = {
    "timezone": "Europe/Berlin",
    "hours": {
        **{day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "sat": [],
        "sun": [],
    },
    "holidays": {"country": "DE", "subdivision": "BY"},
}


def share_kpi(name: str, metric: str, priority: str, hours: int) -> dict[str, Any]:
    return {
        "name": name,
        "aggregation": "share_within",
        "threshold": hours,
        "objective": ">=",
        "target": 0.9,
        "credits": TIERS,
        "ticket_metric": metric,
        "priority": priority,
    }


def ticket_terms(effective_from: str = PERIOD) -> dict[str, Any]:
    """A fresh copy of the terms, free to change."""
    return {
        "contract_id": CONTRACT,
        "provider": "Helpdesk Co",
        "customer": "Brauerei GmbH",
        "currency": "EUR",
        "base_fee": "10000.00",
        "effective_from": effective_from,
        "timezone": "Europe/Berlin",
        "calendar": copy.deepcopy(CALENDAR),
        "kpis": [
            share_kpi("p1_response", "response", "P1", 1),
            share_kpi("p1_resolution", "resolution", "P1", 8),
            {
                "name": "p2_response",
                "aggregation": "mean",
                "objective": "<=",
                "target": 4,
                "credits": [{"breach": 4, "percent": 2}],
                "ticket_metric": "response",
                "priority": "P2",
            },
            {
                "name": "p2_resolution",
                "aggregation": "max",
                "objective": "<=",
                "target": 16,
                "credits": [{"breach": 16, "percent": 3}],
                "ticket_metric": "resolution",
                "priority": "P2",
            },
        ],
    }


def _event(ticket: str, type_: str, local: str, priority: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "contract_id": CONTRACT,
        "ticket_id": ticket,
        "type": type_,
        "at": f"2026-{local}:00+02:00",
    }
    return found if priority is None else {**found, "priority": priority}


JUNE = [
    _event("A", "opened", "06-02T10:00", "P1"),
    _event("A", "responded", "06-02T10:30"),
    _event("A", "resolved", "06-02T15:00"),
    _event("B", "opened", "06-03T17:00", "P1"),
    _event("B", "responded", "06-05T09:30"),
    _event("B", "paused", "06-05T10:00"),
    _event("B", "resumed", "06-08T10:00"),
    _event("B", "resolved", "06-08T12:00"),
    _event("C", "opened", "06-15T09:00", "P2"),
    _event("C", "responded", "06-15T13:00"),
    _event("C", "resolved", "06-16T18:00"),
    _event("D", "opened", "06-30T09:00", "P1"),
    _event("E", "opened", "06-29T09:00", "P1"),
    _event("E", "responded", "06-29T09:45"),
]
"""June's ticket events; E is resolved in July (`JULY`)."""
JULY = [_event("E", "resolved", "07-01T10:00")]

EXPECTED = {
    "p1_response": ("-500.00", 4, "0.5"),
    "p1_resolution": ("-500.00", 4, "0.5"),
    "p2_response": ("0.00", 1, "4"),
    "p2_resolution": ("-300.00", 1, "18"),
}
"""Per ticket KPI line: amount, tickets counted, value."""
TOTAL = "8700.00"
