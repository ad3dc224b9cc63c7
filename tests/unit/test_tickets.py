"""Ticket events: the door's item model, the deterministic id, the bus payload, the priority."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.core.tickets import TicketEventIn, TicketEventRecorded, ticket_event_id, ticket_priority
from shared.events import Envelope


def item(**changes: Any) -> TicketEventIn:
    data = {
        "contract_id": "acme-2026",
        "ticket_id": "SUP-42",
        "type": "opened",
        "at": "2026-10-05T14:00:00+02:00",
        "priority": "P1",
    }
    return TicketEventIn.model_validate(data | changes)


def test_the_id_hashes_the_instant_in_utc_to_the_second() -> None:
    name = "slapay:acme-2026:ticket:SUP-42:opened:2026-10-05T12:00:00Z"
    expected = uuid.uuid5(uuid.NAMESPACE_URL, name)
    assert item().id() == expected
    assert item(at="2026-10-05T12:00:00Z").id() == expected
    assert item(at="2026-10-05T12:00:00.987654Z").id() == expected
    assert item(at="2026-10-05T08:00:00-04:00", priority=None).id() == expected


def test_the_id_tells_apart_what_differs() -> None:
    ids = {
        item().id(),
        item(type="resolved").id(),
        item(ticket_id="SUP-43").id(),
        item(contract_id="acme-2027").id(),
        item(at="2026-10-05T12:00:01Z").id(),
    }
    assert len(ids) == 5


def test_a_given_event_id_is_kept() -> None:
    given = uuid.uuid4()
    assert item(event_id=str(given)).id() == given


def test_the_instant_is_kept_in_utc_without_its_fraction() -> None:
    assert item(at="2026-10-05T14:00:00.9+02:00").at == datetime(2026, 10, 5, 12, tzinfo=UTC)
    assert ticket_event_id("c-1", "t", "opened", datetime(2026, 1, 1, 0, 0, 0, 999_999, UTC)) == (
        uuid.uuid5(uuid.NAMESPACE_URL, "slapay:c-1:ticket:t:opened:2026-01-01T00:00:00Z")
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "closed"}, "type"),
        ({"at": "2026-10-05T12:00:00"}, "at"),
        ({"at": "yesterday"}, "at"),
        ({"priority": "P5"}, "priority"),
        ({"ticket_id": ""}, "ticket_id"),
        ({"ticket_id": "has space"}, "ticket_id"),
        ({"ticket_id": "x" * 129}, "ticket_id"),
        ({"contract_id": "ACME"}, "contract_id"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"subject": "printer on fire"}, "subject"),
    ],
)
def test_a_bad_item_names_its_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        item(**changes)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_the_payload_travels_in_an_envelope() -> None:
    sent = item(at="2026-10-05T14:00:00.5+02:00")
    envelope = Envelope.model_validate(
        {
            "event_id": str(sent.id()),
            "type": TicketEventRecorded.TYPE,
            "schema_version": 1,
            "contract_id": sent.contract_id,
            "occurred_at": sent.at.isoformat(),
            "recorded_at": "2026-10-05T12:00:01Z",
            "source": "agent:helpdesk",
            "data": sent.recorded().model_dump(mode="json"),
        }
    )
    travelled = Envelope.from_json(envelope.to_json())
    assert TicketEventRecorded.model_validate(travelled.data) == sent.recorded()
    assert sent.recorded().model_dump(mode="json") == {
        "ticket_id": "SUP-42",
        "type": "opened",
        "at": "2026-10-05T12:00:00Z",
        "priority": "P1",
    }
    assert TicketEventRecorded.TOPIC == "slapay.tickets"


def test_the_priority_is_the_last_stated_and_the_more_urgent_of_a_tie() -> None:
    assert ticket_priority([item(priority=None)]) is None
    escalated = [
        item(type="responded", at="2026-10-05T15:00:00Z", priority="P1"),
        item(priority="P3"),
        item(type="paused", at="2026-10-05T16:00:00Z", priority=None),
    ]
    assert ticket_priority(escalated) == "P1"
    tie = [item(type="responded", priority="P2"), item(priority="P4")]
    assert ticket_priority(tie) == ticket_priority(tie[::-1]) == "P2"
