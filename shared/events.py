"""The event envelope and every event type of the public contract (docs/architecture.md,
"Events and topics").

Events are immutable values. The envelope is what travels on the bus; `data` holds the
type-specific payload, which `payload()` parses into its frozen model. Type strings and
field names are public: a change bumps `schema_version`, and readers keep every version.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from shared import jsonutil
from shared.core.agents import Party
from shared.core.decimals import measurement_value
from shared.core.journal import JournalEntry

TOPIC_CONTRACTS = "slapay.contracts"
TOPIC_MEASUREMENTS = "slapay.measurements"
TOPIC_REVIEWS = "slapay.reviews"
TOPIC_JOURNAL = "slapay.journal"
TOPIC_DEADLETTER = "slapay.deadletter"
TOPIC_TOKENS = "slapay.tokens"
TOPIC_TICKETS = "slapay.tickets"
ALL_TOPICS = (
    TOPIC_CONTRACTS,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    TOPIC_JOURNAL,
    TOPIC_DEADLETTER,
    TOPIC_TOKENS,
    TOPIC_TICKETS,
)

CONTRACT_ID_PATTERN = r"^[a-z0-9-]{3,64}$"
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC instant
        raise ValueError("the instant is out of range in UTC") from None


AwareDatetime = Annotated[
    pydantic.AwareDatetime,
    AfterValidator(_utc),
]
"""An instant: pydantic refuses a naive timestamp (in its core, cheaply); we normalise to UTC."""
ContractId = Annotated[str, Field(pattern=CONTRACT_ID_PATTERN)]
Period = Annotated[str, Field(pattern=PERIOD_PATTERN)]
TICKET_ID_PATTERN = r"^[A-Za-z0-9._~#/@+=-]{1,128}$"
TicketEventType = Literal["opened", "responded", "paused", "resumed", "resolved", "reopened"]
Priority = Literal["P1", "P2", "P3", "P4"]


def to_the_second(instant: datetime) -> datetime:
    """`instant` in UTC without its fraction of a second (a ticket's clock counts whole
    seconds; docs/tickets.md)."""
    return instant.astimezone(UTC).replace(microsecond=0)


Second = Annotated[AwareDatetime, AfterValidator(to_the_second)]
TicketId = Annotated[str, Field(pattern=TICKET_ID_PATTERN)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def deterministic_event_id(contract_id: str, producer_id: str) -> uuid.UUID:
    """The id every implementation derives from a producer-supplied id (docs/architecture.md,
    "Events and topics")."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"slapay:{contract_id}:{producer_id}")


_URL_NAMESPACE = hashlib.sha1(uuid.NAMESPACE_URL.bytes, usedforsecurity=False)


def deterministic_event_id_text(contract_id: str, producer_id: str) -> str:
    """`str(deterministic_event_id(...))`, spelled straight from the SHA-1 of a UUID version 5
    (RFC 9562), at a fraction of the cost: ingest derives one for every measurement."""
    digest = _URL_NAMESPACE.copy()
    digest.update(f"slapay:{contract_id}:{producer_id}".encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC's variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _is_none(value: object) -> bool:
    return value is None


class EventData(BaseModel):
    """Base of every payload; `TYPE` is the public type string."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]


def _value_json(value: Decimal) -> float | str:
    """A JSON number where a double holds the decimal (its shortest repr spells it), else
    the decimal's text, which every reader takes as exactly that decimal."""
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


MeasurementValue = Annotated[
    Decimal,
    BeforeValidator(measurement_value),
    PlainSerializer(_value_json, when_used="json"),
    WithJsonSchema({"type": "number"}),
]
"""The decimal the JSON number spells (0.1 is 1/10), within what every reader holds."""


class MeasurementRecorded(EventData):
    """A measurement; one that came in a signed request names that request's `batch`
    (a `sla.batch.signed` digest), its `batch_index` in it and the signing key's `party`."""

    TYPE: ClassVar[str] = "sla.measurement.recorded"
    TOPIC: ClassVar[str] = TOPIC_MEASUREMENTS
    kpi: str
    value: MeasurementValue
    labels: dict[str, str] = Field(default_factory=dict)
    measurement_id: str | None = None
    batch: str | None = Field(default=None, exclude_if=_is_none)
    batch_index: int | None = Field(default=None, ge=0, exclude_if=_is_none)
    party: Party | None = Field(default=None, exclude_if=_is_none)


class BatchSigned(EventData):
    """A signed request to ingest, as it came (docs/architecture.md, "Signed measurements"):
    enough to check its RFC 9421 signature offline. Published before its measurements, once
    per contract it names; `digest` is `"sha256:" + hex(sha256(body))`."""

    TYPE: ClassVar[str] = "sla.batch.signed"
    TOPIC: ClassVar[str] = TOPIC_MEASUREMENTS
    digest: str
    key_id: str
    party: Party
    method: str
    path: str
    content_type: str | None = None
    content_digest: str
    signature_input: str
    signature: str
    body: str
    """The request body, byte for byte (it is UTF-8 JSON)."""


class TermsAgreed(EventData):
    TYPE: ClassVar[str] = "contract.terms.agreed"
    TOPIC: ClassVar[str] = TOPIC_CONTRACTS
    version: int = Field(ge=1)
    terms: dict[str, Any]


class PeriodCloseRequested(EventData):
    TYPE: ClassVar[str] = "period.close.requested"
    TOPIC: ClassVar[str] = TOPIC_CONTRACTS
    period: Period
    requested_by: str


class DisputeOpened(EventData):
    TYPE: ClassVar[str] = "dispute.opened"
    TOPIC: ClassVar[str] = TOPIC_CONTRACTS
    dispute_id: str
    period: Period
    line_id: str
    reason: str
    evidence_event_ids: list[uuid.UUID] = Field(default_factory=list)
    opened_by: str


class DisputeResolved(EventData):
    TYPE: ClassVar[str] = "dispute.resolved"
    TOPIC: ClassVar[str] = TOPIC_CONTRACTS
    dispute_id: str
    decision: Literal["accepted", "rejected"]
    amount: Decimal | None = None
    note: str = ""


class ReviewSubmitted(EventData):
    TYPE: ClassVar[str] = "review.submitted"
    TOPIC: ClassVar[str] = TOPIC_REVIEWS
    review_id: str
    reviewer_pseudonym: str
    rating: int = Field(ge=1, le=5)
    dimensions: dict[str, int] = Field(default_factory=dict)
    comment_ciphertext: str | None = None
    comment_nonce: str | None = None
    key_id: str | None = None
    flags: list[str] = Field(default_factory=list)


class ReviewerErased(EventData):
    TYPE: ClassVar[str] = "reviewer.erased"
    TOPIC: ClassVar[str] = TOPIC_REVIEWS
    reviewer_pseudonym: str


class ReviewLineReleased(EventData):
    """An admin released the review line of `period`, held because the reviews service
    flagged a burst; it covers the reviews before it on the bus."""

    TYPE: ClassVar[str] = "review.line.released"
    TOPIC: ClassVar[str] = TOPIC_REVIEWS
    period: Period
    released_by: str


class JournalEntryPosted(EventData):
    TYPE: ClassVar[str] = "journal.entry.posted"
    TOPIC: ClassVar[str] = TOPIC_JOURNAL
    entry: JournalEntry


MAX_BREACHED_TICKETS = 1000
"""The most breached tickets a statement event lists per ticket KPI."""


def _is_empty(value: object) -> bool:
    return not value


class BreachedTicket(BaseModel):
    """A ticket past its KPI's bound: its id (never its text), business hours as a decimal
    string, and whether its clock was still running at close."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ticket_id: TicketId
    hours: str
    running: bool


class TicketBreaches(BaseModel):
    """A ticket KPI's breached tickets in the statement's period (docs/tickets.md): how many,
    and the worst of them by hours, at most 1000."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kpi: str
    breached: int = Field(ge=0)
    tickets: list[BreachedTicket] = Field(max_length=MAX_BREACHED_TICKETS)


class StatementProvisional(EventData):
    """A running period's statement; `ticket_breaches` beside it, never inside it (only for
    terms with ticket KPIs)."""

    TYPE: ClassVar[str] = "statement.provisional"
    TOPIC: ClassVar[str] = TOPIC_JOURNAL
    statement: dict[str, Any]
    ticket_breaches: list[TicketBreaches] = Field(default_factory=list, exclude_if=_is_empty)


class StatementFinalized(EventData):
    """A closed period's signed statement; `ticket_breaches` beside it, outside the signed
    document (only for terms with ticket KPIs)."""

    TYPE: ClassVar[str] = "statement.finalized"
    TOPIC: ClassVar[str] = TOPIC_JOURNAL
    statement: dict[str, Any]
    ticket_breaches: list[TicketBreaches] = Field(default_factory=list, exclude_if=_is_empty)


class TokenRevoked(EventData):
    """An admin revoked a token id (`jti`); every service refuses it from then on. Not about
    one contract: the envelope's `contract_id` is empty."""

    TYPE: ClassVar[str] = "token.revoked"
    TOPIC: ClassVar[str] = TOPIC_TOKENS
    jti: str = Field(min_length=1, max_length=128)
    revoked_by: str


class TicketEventRecorded(EventData):
    """A ticket's lifecycle step (docs/tickets.md); the envelope's `occurred_at` equals `at`."""

    TYPE: ClassVar[str] = "ticket.event.recorded"
    TOPIC: ClassVar[str] = TOPIC_TICKETS
    ticket_id: TicketId
    type: TicketEventType
    at: Second
    priority: Priority | None = None


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.TYPE: cls
    for cls in (
        MeasurementRecorded,
        BatchSigned,
        TermsAgreed,
        PeriodCloseRequested,
        DisputeOpened,
        DisputeResolved,
        ReviewSubmitted,
        ReviewerErased,
        ReviewLineReleased,
        JournalEntryPosted,
        StatementProvisional,
        StatementFinalized,
        TokenRevoked,
        TicketEventRecorded,
    )
}


class UnknownEventType(ValueError):
    pass


class Envelope(BaseModel):
    """What travels on the bus (Kafka key = `contract_id`)."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    type: str
    schema_version: int = 1
    contract_id: str
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    source: str
    data: dict[str, Any]

    @property
    def topic(self) -> str:
        return event_class(self.type).TOPIC

    def payload(self) -> EventData:
        """The typed, validated payload of this event."""
        return event_class(self.type).model_validate(self.data)

    def to_json(self) -> bytes:
        return jsonutil.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """Parse an envelope; a measurement's value is the decimal its JSON spells (pydantic
        alone reads a JSON number as the nearest double)."""
        event = cls.model_validate_json(raw)
        if event.type != MeasurementRecorded.TYPE or not isinstance(event.data.get("value"), float):
            return event
        try:
            spelled = _spelled_value.decode(raw).data.value
        except msgspec.DecodeError:  # unreachable: pydantic has read the same JSON
            return event
        if isinstance(spelled, Decimal) and Decimal(repr(event.data["value"])) != spelled:
            return event.model_copy(update={"data": {**event.data, "value": spelled}})
        return event


class _SpelledData(msgspec.Struct):
    value: Any = None


class _Spelled(msgspec.Struct):
    data: _SpelledData


_spelled_value = msgspec.json.Decoder(_Spelled, float_hook=Decimal)
"""Reads just `data.value`, a JSON number with a fraction or exponent read as a `Decimal`."""


def event_class(type_: str) -> type[EventData]:
    try:
        return EVENT_TYPES[type_]
    except KeyError:
        raise UnknownEventType(f"unknown event type {type_!r}") from None


def make_event(
    data: EventData,
    *,
    contract_id: str,
    source: str,
    occurred_at: datetime | None = None,
    producer_id: str | None = None,
    recorded_at: datetime | None = None,
) -> Envelope:
    """Wrap a payload in an envelope; a producer-supplied id makes the event id deterministic."""
    now = recorded_at or utcnow()
    event_id = (
        deterministic_event_id(contract_id, producer_id)
        if producer_id is not None
        else uuid.uuid4()
    )
    return Envelope(
        event_id=event_id,
        type=data.TYPE,
        contract_id=contract_id,
        occurred_at=occurred_at or now,
        recorded_at=now,
        source=source,
        data=data.model_dump(mode="json"),
    )
