"""The Jira webhook mapping docs/agents.md shows: run as printed, its events are valid ticket
events with the pinned ids, in the states the clock expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.ingest.ticket_events import TicketBatch
from shared.core.clock import business_duration, check_fragment
from shared.core.terms import Terms
from tests.ticket_examples import ticket_terms

AGENTS = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
FENCE = "```python\n"


def snippet() -> dict[str, Any]:
    text = AGENTS.read_text()
    start = text.index(FENCE, text.index("<!-- tested: jira-webhook ")) + len(FENCE)
    namespace: dict[str, Any] = {"__name__": "snippet_jira_webhook"}
    exec(compile(text[start : text.index("```", start)], str(AGENTS), "exec"), namespace)
    return namespace


def hook(event: str, millis: int, **more: Any) -> dict[str, Any]:
    issue = {"key": "SUP-42", "fields": {"priority": {"name": "Highest"}, "summary": "secret"}}
    return {"webhookEvent": event, "timestamp": millis, "issue": issue, **more}


def status(before: str, after: str) -> dict[str, Any]:
    return {"changelog": {"items": [{"field": "status", "fromString": before, "toString": after}]}}


T0 = 1_780_302_600_000  # Monday 2026-06-01 10:30 Berlin (08:30 UTC)
HOUR = 3_600_000


def test_a_jira_issue_becomes_ticket_events_the_clock_measures() -> None:
    ticket_events = snippet()["ticket_events"]
    deliveries = [
        hook("jira:issue_created", T0),
        hook("comment_created", T0 + HOUR // 2, comment={"jsdPublic": False}),
        hook("comment_created", T0 + HOUR, comment={"jsdPublic": True}),
        hook("jira:issue_updated", T0 + 2 * HOUR, **status("In Progress", "Waiting for customer")),
        hook("jira:issue_updated", T0 + 3 * HOUR, **status("Waiting for customer", "In Progress")),
        hook("jira:issue_updated", T0 + 4 * HOUR, **status("In Progress", "Resolved")),
        hook("jira:issue_updated", T0 + 5 * HOUR, **status("Open", "In Progress")),
    ]
    events = [e for d in deliveries for e in ticket_events("bavaria-helpdesk", d)]
    assert [e["type"] for e in events] == ["opened", "responded", "paused", "resumed", "resolved"]
    batch = TicketBatch.model_validate({"events": events})
    assert "secret" not in batch.model_dump_json()
    assert {e.priority for e in batch.events} == {"P1", None}
    check_fragment(batch.events)
    calendar = Terms.model_validate(ticket_terms()).calendar
    assert calendar is not None
    assert business_duration(calendar, batch.events, "response") == 1
    assert business_duration(calendar, batch.events, "resolution") == 3  # an hour paused
    again = TicketBatch.model_validate({"events": events})
    assert [e.id() for e in again.events] == [e.id() for e in batch.events]
