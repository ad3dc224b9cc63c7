"""Accept a batch of ticket events (docs/tickets.md): refuse what can never count, drop what
was already published, publish the rest to `slapay.tickets`, remember it. The same door,
dedupe memory and acknowledgement as measurements (`handlers.py`); a refused batch
publishes nothing."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.ingest import door, store
from services.ingest.bounds import MAX_BATCH
from services.ingest.contracts import Contract, ContractBook
from services.ingest.handlers import Refused, placed, unpublished
from services.ingest.measurements import Accepted
from shared import cloudevents
from shared.bus import Message
from shared.core.clock import TicketSequenceError, check_fragment
from shared.core.tickets import TicketEventIn, at_text
from shared.events import TOPIC_TICKETS, Envelope, TicketEventRecorded, utcnow
from shared.runtime import Runtime
from shared.settings import DEFAULT_MAX_CLOCK_SKEW_S
from shared.telemetry import inject_headers, tracer


class TicketEventItem(TicketEventIn):
    """One posted ticket event: `at` may not lie ahead of our clock (beyond the skew)."""

    @field_validator("at")
    @classmethod
    def _not_ahead_of_the_clock(cls, value: datetime, info: ValidationInfo) -> datetime:
        skew = float((info.context or {}).get("max_clock_skew_s", DEFAULT_MAX_CLOCK_SKEW_S))
        if value > utcnow() + timedelta(seconds=skew):
            raise ValueError(f"at lies more than {skew:g} s ahead of our clock")
        return value


class TicketBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[TicketEventItem] = Field(min_length=1, max_length=MAX_BATCH)


def content_digest(item: TicketEventIn) -> str:
    """What a ticket event says, in 32 hex digits: an `event_id` posted again with another
    digest is a conflict, with the same one a duplicate."""
    said = "\x1f".join((item.ticket_id, item.type, at_text(item.at), item.priority or ""))
    return hashlib.blake2b(said.encode(), digest_size=16).hexdigest()


def event_json(item: TicketEventIn, event_id: str, source: str, recorded_at: datetime) -> bytes:
    """The `ticket.event.recorded` envelope; `occurred_at` is the event's `at`."""
    return Envelope(
        event_id=uuid.UUID(event_id),
        type=TicketEventRecorded.TYPE,
        contract_id=item.contract_id,
        occurred_at=item.at,
        recorded_at=recorded_at,
        source=source,
        data=item.recorded().model_dump(mode="json"),
    ).to_json()


def window_refusal(
    index: int, contract: Contract | None, period: str | None, current: str
) -> door.Refusal | None:
    """Why a ticket event in `period` can never count under the contract's terms, or None:
    an unknown contract, no ticket KPI in the terms in force, or outside its window."""
    if contract is None:
        return door.Refusal(index, "contract_id", "contract_unknown", "no such contract")
    if period is None or period < contract.first:
        where = "is out of range" if period is None else f"falls in {period}"
        return door.Refusal(
            index,
            "at",
            "before_effective_from",
            f"at {where}, before the contract takes effect ({contract.first})",
        )
    terms = door.in_force(contract.versions, period)
    if door.months_between(period, current) > terms.late_events_months:
        return door.Refusal(
            index,
            "at",
            "too_late",
            f"at falls in {period}, more than the contract's late_events_months "
            f"({terms.late_events_months}) before {current}",
        )
    if not terms.has_ticket_kpis():
        return door.Refusal(
            index,
            "contract_id",
            "no_ticket_kpis",
            f"the contract's terms in force in {period} have no ticket KPI (ticket_metric)",
        )
    return None


def sequence_refusals(items: Sequence[TicketEventIn]) -> list[door.Refusal]:
    """The events of each ticket in the batch that no earlier history could make valid."""
    tickets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        tickets[(item.contract_id, item.ticket_id)].append(index)
    refusals = []
    for indexes in tickets.values():
        try:
            check_fragment([items[i] for i in indexes])
        except TicketSequenceError as exc:
            refusals.append(door.Refusal(indexes[exc.index], "type", "ticket_sequence", str(exc)))
    return refusals


async def check_tickets(
    runtime: Runtime, book: ContractBook, items: Sequence[TicketEventIn], now: datetime
) -> list[door.Refusal]:
    """Each event against its contract's terms, and each ticket's events against the clock's
    rules."""
    where = await placed(runtime, book, [(i.contract_id, i.at) for i in items], now)
    refusals = [
        refusal
        for index, place in enumerate(where)
        if (refusal := window_refusal(index, place.contract, place.period, place.current))
    ]
    return refusals + sequence_refusals(items)


async def accept_tickets(
    runtime: Runtime, book: ContractBook, items: Sequence[TicketEventIn], source: str
) -> Accepted:
    """Reply only after the bus acknowledged every new event (raises `BusUnavailable`), or
    raise `Refused` naming every event that can never count."""
    now = utcnow()
    refusals = await check_tickets(runtime, book, items, now)
    event_ids = [str(item.id()) for item in items]
    digests = [content_digest(item) for item in items]
    new, conflicts = await unpublished(runtime, event_ids, digests)
    refusals.extend(
        door.Refusal(
            index,
            "event_id",
            "conflict",
            f"conflict: event_id {event_ids[index]} was published with other content "
            "(ticket_id, type, at or priority); an event, once published, stays as it is",
        )
        for index in conflicts
    )
    if refusals:
        raise Refused(refusals)
    with tracer(__name__).start_as_current_span("ingest.publish tickets"):
        headers = {"type": TicketEventRecorded.TYPE, **inject_headers()}
        messages = [
            Message(
                key=items[i].contract_id,
                value=event_json(items[i], event_id, source, now),
                headers=cloudevents.headers(
                    headers, event_id, TicketEventRecorded.TYPE, items[i].contract_id, items[i].at
                ),
            )
            for event_id, i in new.items()
        ]
        await runtime.bus.publish(TOPIC_TICKETS, messages)
    await store.remember_published(runtime.engine, {e: digests[i] for e, i in new.items()})
    return Accepted(accepted=len(new), duplicates=len(items) - len(new))
