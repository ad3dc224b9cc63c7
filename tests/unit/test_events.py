from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.ingest.measurements import MeasurementIn, event_json
from shared.events import (
    EVENT_TYPES,
    Envelope,
    MeasurementRecorded,
    UnknownEventType,
    deterministic_event_id,
    deterministic_event_id_text,
    make_event,
)


def test_event_id_from_a_producer_id_is_the_pinned_uuid5() -> None:
    expected = uuid.uuid5(uuid.NAMESPACE_URL, "slapay:acme-2026:probe-1:42")
    assert deterministic_event_id("acme-2026", "probe-1:42") == expected
    event = make_event(
        MeasurementRecorded(kpi="a", value=1),
        contract_id="acme-2026",
        source="agent:x",
        producer_id="probe-1:42",
    )
    assert event.event_id == expected


@pytest.mark.parametrize(
    ("contract_id", "producer_id"),
    [("acme-2026", "probe-1:42"), ("c", ""), ("acme-2026", "sonde-é-€-𝄞"), ("a" * 64, "b" * 200)],
)
def test_event_id_text_spells_the_uuid5(contract_id: str, producer_id: str) -> None:
    expected = str(uuid.uuid5(uuid.NAMESPACE_URL, f"slapay:{contract_id}:{producer_id}"))
    assert deterministic_event_id_text(contract_id, producer_id) == expected


def test_envelope_round_trips_through_json() -> None:
    event = make_event(
        MeasurementRecorded(kpi="latency_ms", value=12.5, labels={"probe": "eu"}),
        contract_id="acme-2026",
        source="agent:x",
    )
    again = Envelope.from_json(event.to_json())
    assert again == event
    assert again.payload() == MeasurementRecorded(
        kpi="latency_ms", value=12.5, labels={"probe": "eu"}
    )
    assert again.topic == "slapay.measurements"


def test_events_are_immutable() -> None:
    event = make_event(MeasurementRecorded(kpi="a", value=1), contract_id="acme-2026", source="s")
    with pytest.raises(ValidationError):
        event.contract_id = "other"  # type: ignore[misc]


def test_every_public_type_has_a_topic_and_unknown_types_are_refused() -> None:
    assert set(EVENT_TYPES) == {
        "contract.terms.agreed",
        "period.close.requested",
        "dispute.opened",
        "dispute.resolved",
        "sla.measurement.recorded",
        "sla.batch.signed",
        "review.submitted",
        "reviewer.erased",
        "review.line.released",
        "journal.entry.posted",
        "statement.provisional",
        "statement.finalized",
        "token.revoked",
        "ticket.event.recorded",
    }
    event = make_event(MeasurementRecorded(kpi="a", value=1), contract_id="acme-2026", source="s")
    with pytest.raises(UnknownEventType):
        event.model_copy(update={"type": "nope"}).payload()


def test_naive_timestamps_and_non_finite_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        Envelope.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "type": "x",
                "contract_id": "c",
                "source": "s",
                "occurred_at": "2026-10-01T00:00:00",
                "recorded_at": "2026-10-01T00:00:00Z",
                "data": {},
            }
        )
    with pytest.raises(ValidationError):
        MeasurementRecorded(kpi="a", value=float("nan"))


def test_ingest_fast_path_builds_the_same_envelope() -> None:
    item = MeasurementIn(
        measurement_id="m-1",
        contract_id="acme-2026",
        kpi="availability",
        value=1,
        observed_at=datetime(2026, 10, 5, 12, tzinfo=UTC),
        labels={"a": "b"},
    )
    now = datetime(2026, 10, 5, 12, 0, 1, tzinfo=UTC)
    event_id = str(deterministic_event_id("acme-2026", "m-1"))
    parsed = Envelope.from_json(event_json(item, event_id, "agent:probe", now))
    expected = make_event(
        MeasurementRecorded(kpi="availability", value=1, labels={"a": "b"}, measurement_id="m-1"),
        contract_id="acme-2026",
        source="agent:probe",
        occurred_at=item.observed_at,
        producer_id="m-1",
        recorded_at=now,
    )
    assert parsed == expected
