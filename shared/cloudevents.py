"""CloudEvents 1.0 attributes of every slapay event, so a subscriber can use any CloudEvents SDK.

On the bus they ride as Kafka binary-mode headers (`ce_*` plus `content-type`; the record's
value, the envelope, is the event's data); a webhook carries them in structured JSON mode.
- `id` is the envelope's `event_id`, `type` its type, `subject` its `contract_id` (left out
  when the event is about no contract, as `token.revoked` is);
- `source` names the service that produced the record, as a URI reference
  (`/slapay/ingest`, `/slapay/reviews`, `/slapay/ledger`), from the type's topic: the
  envelope's own `source` (an agent, an admin) stays in the data;
- `time` is when it happened (`occurred_at`), RFC 3339 in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared import jsonutil
from shared.events import (
    EVENT_TYPES,
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    TOPIC_TICKETS,
    TOPIC_TOKENS,
    Envelope,
)

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
PRODUCERS = {
    TOPIC_CONTRACTS: "ledger",
    TOPIC_MEASUREMENTS: "ingest",
    TOPIC_REVIEWS: "reviews",
    TOPIC_JOURNAL: "ledger",
    TOPIC_TOKENS: "ledger",
    TOPIC_TICKETS: "ingest",
}
"""The service that writes each event topic (ingest, reviews and the ledger's API and fold)."""
UNKNOWN_SOURCE = "/slapay"
SOURCES = {type_: f"/slapay/{PRODUCERS[cls.TOPIC]}" for type_, cls in EVENT_TYPES.items()}
"""`ce_source` of each event type."""


def rfc3339(moment: datetime) -> str:
    """An instant as CloudEvents writes `time`: RFC 3339 in UTC, `Z` for the offset, the same
    text as in the envelope's JSON (written by the same serialiser, which is also the fastest
    way: ingest calls this for every measurement)."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    text: str = jsonutil.dumps(moment)[1:-1].decode()
    return text


def headers(
    base: Mapping[str, str], event_id: str, type_: str, contract_id: str, occurred_at: datetime
) -> dict[str, str]:
    """`base` (the `type` and trace headers) with the CloudEvents binary-mode headers of one
    record."""
    return RecordHeaders(base, type_)(event_id, contract_id, occurred_at)


class RecordHeaders:
    """`headers` of many records of one type with one `base`, what they share counted once:
    ingest makes them, and checks their size, for every measurement it publishes."""

    def __init__(self, base: Mapping[str, str], type_: str) -> None:
        self.base, self.type = base, type_
        self.source = SOURCES.get(type_, UNKNOWN_SOURCE)
        sample = self("", "", datetime.min.replace(tzinfo=UTC))
        self.shared_bytes = header_bytes(sample) - len(sample["ce_time"])

    def __call__(self, event_id: str, contract_id: str, occurred_at: datetime) -> dict[str, str]:
        found = {
            **self.base,
            "ce_specversion": SPECVERSION,
            "ce_id": event_id,
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_time": rfc3339(occurred_at),
            "content-type": CONTENT_TYPE,
        }
        if contract_id:
            found["ce_subject"] = contract_id
        return found

    def bytes_of(self, made: Mapping[str, str]) -> int:
        """`header_bytes(made)` of headers this made, counting only what differs."""
        subject = made.get("ce_subject")
        return (
            self.shared_bytes
            + len(made["ce_id"].encode())
            + len(made["ce_time"])  # RFC 3339: ASCII
            + (0 if subject is None else len("ce_subject") + len(subject.encode()))
        )


def header_bytes(found: Mapping[str, str]) -> int:
    """Record headers' size as the record-size limit counts it: each name's length and each
    value's UTF-8 bytes."""
    return sum(len(name) + len(value.encode()) for name, value in found.items())


def envelope_headers(event: Envelope, base: Mapping[str, str]) -> dict[str, str]:
    """`headers` of an envelope."""
    return headers(base, str(event.event_id), event.type, event.contract_id, event.occurred_at)


def attributes(event: Envelope) -> dict[str, str]:
    """The CloudEvents context attributes of an envelope, by their own names."""
    found = envelope_headers(event, {})
    del found["content-type"]
    return {
        **{name.removeprefix("ce_"): value for name, value in found.items()},
        "datacontenttype": CONTENT_TYPE,
    }


def structured(event: Envelope) -> dict[str, Any]:
    """The event in structured JSON mode (`application/cloudevents+json`): its attributes and,
    as `data`, the envelope."""
    return {**attributes(event), "data": event.model_dump(mode="json")}


def structured_json(event: Envelope) -> bytes:
    return jsonutil.dumps(structured(event))
