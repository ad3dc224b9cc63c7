"""Dead letters: records a consumer could not parse or apply, parked on `slapay.deadletter`
with the reason, so the stream goes on and an admin can see what was left out.

Every producer of a dead letter (the consumer loop, the ledger's refusals) builds it here,
so the ledger can list them all in one shape (`GET /v1/deadletter`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import jsonutil
from shared.bus import Message
from shared.events import TOPIC_DEADLETTER, utcnow

HEADER_TYPE = "deadletter"
REASON_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record left out of a stream, and why."""

    topic: str
    key: str
    value: bytes
    reason: str
    partition: int | None = None
    offset: int | None = None
    event_id: str | None = None
    measurement_id: str | None = None
    group: str | None = None
    kind: str = "unreadable"
    """`unreadable` (could not be parsed), `poison` (its effect failed every attempt), or a
    refusal the consumer made on purpose (e.g. `late_events_months`)."""
    dead_lettered_at: datetime = field(default_factory=utcnow)

    @property
    def contract_id(self) -> str:
        return self.key

    def to_message(self) -> Message:
        body = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "contract_id": self.key,
            "event_id": self.event_id,
            "measurement_id": self.measurement_id,
            "group": self.group,
            "kind": self.kind,
            "reason": self.reason[:REASON_CHARS],
            "dead_lettered_at": self.dead_lettered_at.isoformat().replace("+00:00", "Z"),
            "value": self.value.decode("utf-8", "replace"),
        }
        return Message(
            key=self.key,
            value=jsonutil.dumps(body),
            headers={"type": HEADER_TYPE, "source-topic": self.topic, "reason": self.kind},
        )


def outbox_item(letter: DeadLetter) -> tuple[str, Message]:
    """A dead letter as the ledger's outbox holds it (published with the batch's effects)."""
    return TOPIC_DEADLETTER, letter.to_message()


def ids_in(value: bytes) -> tuple[str | None, str | None]:
    """The event id and measurement id a record's envelope names, if it can be read at all."""
    try:
        document = jsonutil.loads(value)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    data = document.get("data")
    measurement_id = data.get("measurement_id") if isinstance(data, dict) else None
    event_id = document.get("event_id")
    return (
        event_id if isinstance(event_id, str) else None,
        measurement_id if isinstance(measurement_id, str) else None,
    )


def parse(value: bytes) -> dict[str, Any] | None:
    """The listing fields of a dead letter as published (None if it is not one)."""
    try:
        body = jsonutil.loads(value)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("topic"), str):
        return None
    return body
