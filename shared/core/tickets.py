"""Ticket lifecycle events: what an agent posts, the id it gets, and the payload on the bus.

Ticket ids are opaque references into the helpdesk; no ticket text ever enters slapay.
Instants are kept to the whole second (the clock's resolution), in UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from shared.events import (
    TICKET_ID_PATTERN,
    TOPIC_TICKETS,
    ContractId,
    Priority,
    Second,
    TicketEventRecorded,
    TicketEventType,
    TicketId,
    to_the_second,
)

__all__ = [
    "TICKET_ID_PATTERN",
    "TOPIC_TICKETS",
    "Priority",
    "TicketEventIn",
    "TicketEventRecorded",
    "TicketEventType",
    "at_text",
    "ticket_event_id",
    "ticket_priority",
    "to_the_second",
]


def at_text(instant: datetime) -> str:
    """The form of an instant inside a ticket event id: UTC, whole seconds, "Z"."""
    return to_the_second(instant).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def ticket_event_id(contract_id: str, ticket_id: str, type_: str, at: datetime) -> uuid.UUID:
    """The id any implementation derives for a ticket event posted without `event_id`.

    `at` enters as `at_text(at)`, e.g. "2026-10-05T12:00:00Z", so the same instant written
    with another offset or a fraction of a second gives the same id, and a retry never
    counts twice.
    """
    name = f"slapay:{contract_id}:ticket:{ticket_id}:{type_}:{at_text(at)}"
    return uuid.uuid5(uuid.NAMESPACE_URL, name)


class TicketEventIn(BaseModel):
    """One item of `POST /v1/tickets/events`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_id: uuid.UUID | None = None
    contract_id: ContractId
    ticket_id: TicketId
    type: TicketEventType
    at: Second
    priority: Priority | None = None

    def id(self) -> uuid.UUID:
        """The given `event_id`, else the deterministic one."""
        if self.event_id is not None:
            return self.event_id
        return ticket_event_id(self.contract_id, self.ticket_id, self.type, self.at)

    def recorded(self) -> TicketEventRecorded:
        return TicketEventRecorded(
            ticket_id=self.ticket_id, type=self.type, at=self.at, priority=self.priority
        )


class Prioritised(Protocol):
    """What `ticket_priority` reads of an event (posted, recorded, or a formula's record)."""

    @property
    def at(self) -> datetime: ...

    @property
    def priority(self) -> Priority | None: ...


def ticket_priority(events: Iterable[Prioritised]) -> Priority | None:
    """A ticket's priority: the last one its events state, in time order (None if none does).

    A ticket escalated from P3 to P1 is measured against P1 over its whole life, as
    helpdesks do when a ticket's priority changes; of two stated at once, the more urgent.
    """
    stated = [(event.at, event.priority) for event in events if event.priority is not None]
    if not stated:
        return None
    return max(stated, key=lambda pair: (pair[0], -int(pair[1][1])))[1]
