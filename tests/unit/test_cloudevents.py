"""Every record is a CloudEvent in Kafka binary mode, as the CloudEvents SDK reads it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http, kafka

from services.ingest.measurements import MeasurementIn, event_json
from shared import cloudevents, jsonutil
from shared.events import (
    EVENT_TYPES,
    Envelope,
    MeasurementRecorded,
    PeriodCloseRequested,
    TokenRevoked,
    make_event,
)
from shared.publishing import to_message

TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


def _read(headers: dict[str, str], key: str, value: bytes) -> BaseCloudEvent:
    encoded = {name: text.encode() for name, text in headers.items()}
    return kafka.from_binary_event(kafka.KafkaMessage(headers=encoded, key=key, value=value))


def test_a_published_event_reads_back_with_the_sdk() -> None:
    at = datetime(2026, 10, 5, 12, 0, 0, 123000, tzinfo=UTC)
    event = make_event(
        PeriodCloseRequested(period="2026-09", requested_by="admin:x"),
        contract_id="acme-2026",
        source="ledger-api",
        occurred_at=at,
    )
    message = to_message(event, TRACE)
    parsed = _read(message.headers, message.key, message.value)
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == str(event.event_id)
    assert parsed.get_type() == "period.close.requested"
    assert parsed.get_source() == "/slapay/ledger"
    assert parsed.get_subject() == "acme-2026"
    assert parsed.get_time() == at
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == event.model_dump(mode="json")
    assert message.headers["type"] == "period.close.requested"
    assert message.headers["traceparent"] == TRACE["traceparent"]


def test_ingest_hot_path_headers_match_the_envelope() -> None:
    """Ingest builds its records without an Envelope; they carry the same attributes."""
    item = MeasurementIn(
        measurement_id="m-1",
        contract_id="acme-2026",
        kpi="availability",
        value=1,
        observed_at=datetime(2026, 10, 5, 12, 0, 0, 5, tzinfo=UTC),
    )
    event_id = str(uuid.uuid4())
    value = event_json(item, event_id, "agent:probe", datetime.now(UTC))
    headers = cloudevents.headers(
        {"type": MeasurementRecorded.TYPE},
        event_id,
        MeasurementRecorded.TYPE,
        item.contract_id,
        item.observed_at,
    )
    envelope = Envelope.from_json(value)
    assert headers == cloudevents.envelope_headers(envelope, {"type": MeasurementRecorded.TYPE})
    assert headers["ce_time"] == jsonutil.loads(value)["occurred_at"]
    assert headers["ce_source"] == "/slapay/ingest"


def test_time_is_rfc3339_in_utc() -> None:
    moment = datetime(2026, 10, 5, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert cloudevents.rfc3339(moment) == "2026-10-05T12:00:00.000005Z"
    assert cloudevents.rfc3339(datetime(2026, 10, 5, tzinfo=UTC)) == "2026-10-05T00:00:00Z"


def test_an_event_about_no_contract_has_no_subject() -> None:
    event = make_event(
        TokenRevoked(jti="j1", revoked_by="admin:x"), contract_id="", source="ledger"
    )
    message = to_message(event, {})
    assert "ce_subject" not in message.headers
    parsed = _read(message.headers, message.key, message.value)
    assert parsed.get_subject() is None


def test_every_type_names_its_producing_service() -> None:
    assert set(cloudevents.SOURCES) == set(EVENT_TYPES)
    assert {cloudevents.SOURCES[t] for t in EVENT_TYPES} == {
        "/slapay/ingest",
        "/slapay/reviews",
        "/slapay/ledger",
    }


def test_structured_mode_reads_back_with_the_sdk() -> None:
    event = make_event(
        PeriodCloseRequested(period="2026-09", requested_by="admin:x"),
        contract_id="acme-2026",
        source="ledger-api",
    )
    body = cloudevents.structured_json(event)
    headers = {"content-type": cloudevents.STRUCTURED_CONTENT_TYPE}
    parsed = http.from_http_event(http.HTTPMessage(headers=headers, body=body))
    assert parsed.get_id() == str(event.event_id)
    assert parsed.get_subject() == "acme-2026"
    assert parsed.get_data() == event.model_dump(mode="json")


def test_record_headers_count_their_bytes_as_a_whole_walk_does() -> None:
    made = cloudevents.RecordHeaders(
        {
            "type": MeasurementRecorded.TYPE,
            "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        },
        MeasurementRecorded.TYPE,
    )
    for contract_id, occurred_at in [
        ("acme-2026", datetime(2026, 10, 5, 12, 0, tzinfo=UTC)),
        ("", datetime(2026, 10, 5, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=-7)))),
        ("contrat-été-€", datetime(1, 1, 1, tzinfo=UTC)),
    ]:
        headers = made(str(uuid.uuid4()), contract_id, occurred_at)
        assert made.bytes_of(headers) == cloudevents.header_bytes(headers)
