"""`POST /v1/tickets/events`: the door of measurements for ticket events — 202 only for what
the bus acknowledged, duplicates counted, what can never count refused naming the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.ingest.ticket_events import event_json
from shared.auth import issue_token
from shared.core.tickets import TicketEventIn, ticket_event_id
from shared.events import TOPIC_TICKETS, Envelope, TicketEventRecorded
from tests.fakes import InMemoryBus
from tests.service.test_ingest import agree, agreed_terms, ingest
from tests.system import SECRET

PATH = "/v1/tickets/events"
AGENT = {"Authorization": f"Bearer {issue_token(SECRET, 'agent', ['helpdesk-co'])}"}
NOW = datetime.now(UTC).replace(microsecond=0)
TICKET_KPI = {
    "name": "p1_response",
    "aggregation": "share_within",
    "threshold": 1,
    "objective": ">=",
    "target": 0.9,
    "credits": [],
    "ticket_metric": "response",
    "priority": "P1",
}


def event(type_: str = "opened", minutes_ago: int = 60, **changes: Any) -> dict[str, Any]:
    return {
        "contract_id": "helpdesk-co",
        "ticket_id": "T-1",
        "type": type_,
        "at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        "priority": "P1",
        **changes,
    }


@pytest.fixture
async def bus() -> InMemoryBus:
    bus = InMemoryBus()
    kpis = agreed_terms("helpdesk-co")["kpis"]
    await agree(bus, "helpdesk-co", kpis=[*kpis, TICKET_KPI], effective_from="2020-01")
    return bus


async def test_ticket_events_are_published_once_with_their_pinned_ids(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    batch = {"events": [event(), event("responded", 30), event("resolved", 10)]}
    async with ingest(tmp_path, bus) as client:
        first = await client.post(PATH, json=batch, headers=AGENT)
        again = await client.post(PATH, json=batch, headers=AGENT)
    assert first.status_code == 202, first.text
    assert first.json() == {"accepted": 3, "duplicates": 0}
    assert again.json() == {"accepted": 0, "duplicates": 3}
    records = bus.topics[TOPIC_TICKETS]
    assert len(records) == 3
    envelopes = [Envelope.from_json(r.value) for r in records]
    opened = envelopes[0]
    assert opened.type == TicketEventRecorded.TYPE
    assert opened.event_id == ticket_event_id(
        "helpdesk-co", "T-1", "opened", NOW - timedelta(hours=1)
    )
    assert opened.occurred_at == NOW - timedelta(hours=1)
    assert opened.payload() == TicketEventRecorded(
        ticket_id="T-1", type="opened", at=NOW - timedelta(hours=1), priority="P1"
    )
    assert records[0].headers["ce_type"] == "ticket.event.recorded"
    assert records[0].headers["ce_source"] == "/slapay/ingest"
    assert {r.key for r in records} == {"helpdesk-co"}


@pytest.mark.parametrize(
    ("bad", "field", "kind"),
    [
        ({"contract_id": "no-such-co"}, "contract_id", "contract_unknown"),
        ({"contract_id": "acme-2026"}, "contract_id", "no_ticket_kpis"),
        ({"at": "2019-12-31T12:00:00Z"}, "at", "before_effective_from"),
        (
            {"type": "resumed", "ticket_id": "T-9", "at": str(NOW - timedelta(minutes=40))},
            "type",
            "ticket_sequence",
        ),
    ],
    ids=["unknown-contract", "no-ticket-kpi", "before-effective-from", "resumed-while-open"],
)
async def test_an_event_that_can_never_count_is_named_and_nothing_is_published(
    tmp_path: Path, bus: InMemoryBus, bad: dict[str, Any], field: str, kind: str
) -> None:
    admin = {"Authorization": f"Bearer {issue_token(SECRET, 'admin', [])}"}
    items = [event(ticket_id="T-9", minutes_ago=50), event(**bad), event("responded", 5)]
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, json={"events": items}, headers=admin)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["invalid_items"] == [1]
    assert [(e["loc"], e["type"]) for e in problem["errors"]] == [(["events", 1, field], kind)]
    assert bus.topics.get(TOPIC_TICKETS, []) == []


async def test_a_lone_resumed_may_follow_an_earlier_pause_and_is_accepted(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, json={"events": [event("resumed")]}, headers=AGENT)
    assert response.status_code == 202, response.text


async def test_shape_errors_and_foreign_contracts(tmp_path: Path, bus: InMemoryBus) -> None:
    async with ingest(tmp_path, bus) as client:
        bad_type = await client.post(PATH, json={"events": [event("closed")]}, headers=AGENT)
        naive = await client.post(
            PATH, json={"events": [event(at="2026-10-05T12:00:00")]}, headers=AGENT
        )
        ahead = await client.post(PATH, json={"events": [event(minutes_ago=-60)]}, headers=AGENT)
        empty = await client.post(PATH, json={"events": []}, headers=AGENT)
        foreign = await client.post(
            PATH, json={"events": [event(contract_id="acme-2026")]}, headers=AGENT
        )
        too_many = await client.post(PATH, json={"events": [event()] * 10_001}, headers=AGENT)
    for response in (bad_type, naive, ahead):
        assert response.status_code == 422, response.text
        assert response.json()["invalid_items"] == [0]
    assert empty.status_code == 422
    assert foreign.status_code == 404  # another party's contract is not even named
    assert too_many.status_code == 413
    assert bus.topics.get(TOPIC_TICKETS, []) == []


async def test_an_event_id_reused_for_other_content_is_a_conflict(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    given = "6f1c1f55-2bb4-4c52-a1a0-6a0d1c1c6f00"
    async with ingest(tmp_path, bus) as client:
        first = await client.post(PATH, json={"events": [event(event_id=given)]}, headers=AGENT)
        other = await client.post(
            PATH, json={"events": [event(event_id=given, priority="P2")]}, headers=AGENT
        )
    assert first.status_code == 202
    assert other.status_code == 422
    assert other.json()["errors"][0]["loc"] == ["events", 0, "event_id"]


async def test_nothing_is_accepted_while_the_bus_is_down(tmp_path: Path, bus: InMemoryBus) -> None:
    async with ingest(tmp_path, bus) as client:
        bus.down = True
        response = await client.post(PATH, json={"events": [event()]}, headers=AGENT)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_the_envelope_parses_back() -> None:
    item = TicketEventIn.model_validate(event())
    raw = event_json(item, str(item.id()), "agent:x", NOW)
    assert Envelope.from_json(raw).payload() == item.recorded()


async def test_a_measurement_of_a_ticket_kpi_is_refused(tmp_path: Path, bus: InMemoryBus) -> None:
    measurement = {
        "contract_id": "helpdesk-co",
        "kpi": "p1_response",
        "value": 0.5,
        "observed_at": (NOW - timedelta(minutes=5)).isoformat(),
    }
    async with ingest(tmp_path, bus) as client:
        response = await client.post(
            "/v1/measurements", json={"measurements": [measurement]}, headers=AGENT
        )
    assert response.status_code == 422, response.text
    assert [(e["loc"], e["type"]) for e in response.json()["errors"]] == [
        (["measurements", 0, "kpi"], "ticket_kpi")
    ]
