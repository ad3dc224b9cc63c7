"""The ledger's use cases behind its HTTP edge: agree terms, request a close, open and
resolve disputes. Each checks what it needs against the books, publishes its event and
raises a `Refused` the edge turns into a problem; the fold applies the events."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import journal_store, store, ticket_view
from services.ledger.book import Book, open_book
from services.ledger.fold.apply import apply_terms
from shared.bus import Bus
from shared.core import money, periods
from shared.core.terms import Terms
from shared.events import (
    DisputeOpened,
    DisputeResolved,
    PeriodCloseRequested,
    TermsAgreed,
    make_event,
)
from shared.publishing import publish_events

SOURCE = "ledger-api"


class Refused(Exception):
    """A request the books refuse: `status` and `title` say how (404, 409, 422)."""

    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.field = status, title, detail, field


def _unknown(contract_id: str) -> Refused:
    return Refused(404, "Not found", f"no contract {contract_id!r}")


async def versions(engine: AsyncEngine, contract_id: str) -> list[dict[str, Any]]:
    """Every agreed version of the contract's terms, oldest first."""
    async with engine.connect() as conn:
        return (await store.terms_versions(conn, [contract_id])).get(contract_id, [])


async def agree(engine: AsyncEngine, bus: Bus, terms: Terms, by: str, *, revision: bool) -> int:
    """Publish `contract.terms.agreed` (v1, or a revision from a later month), then apply it
    here too so the reply reads its write; return the version."""
    existing = await versions(engine, terms.contract_id)
    if existing and not revision:
        raise Refused(409, "Contract exists", f"contract {terms.contract_id} already exists")
    if revision and not existing:
        raise _unknown(terms.contract_id)
    if revision and terms.effective_from <= existing[-1]["effective_from"]:
        after = existing[-1]["effective_from"]
        raise Refused(
            422,
            "Revision must start later",
            f"effective_from must be after {after}",
            field="effective_from",
        )
    version = len(existing) + 1
    agreed = TermsAgreed(version=version, terms=terms.model_dump(mode="json"))
    event = make_event(agreed, contract_id=terms.contract_id, source=by)
    await publish_events(bus, [event])
    async with engine.begin() as conn:
        touched = await apply_terms(conn, event)
        ours = await store.version_event(conn, terms.contract_id, version) == str(event.event_id)
        if touched is None and not ours:
            raise Refused(
                409, "Contract exists", f"{terms.contract_id} v{version} was agreed concurrently"
            )
        await store.mark_dirty(conn, touched or set())  # None: the fold applied ours first
    return version


async def _book(engine: AsyncEngine, contract_id: str) -> Book:
    async with engine.connect() as conn:
        book = await open_book(conn, contract_id)
    if not book.versions:
        raise _unknown(contract_id)
    return book


async def request_close(
    engine: AsyncEngine, bus: Bus, contract_id: str, period: str, by: str, now: datetime
) -> None:
    """Ask the fold to close an ended period (it posts the final entries)."""
    book = await _book(engine, contract_id)
    if period in book.closed:
        raise Refused(409, "Period already closed", f"{contract_id} {period} is final")
    if book.terms_for(period) is None:
        raise Refused(422, "No terms in force", f"no terms of {contract_id} apply to {period}")
    if not periods.has_ended(period, book.timezone, now):
        raise Refused(422, "Period has not ended", f"{period} is still running")
    request = PeriodCloseRequested(period=period, requested_by=by)
    await publish_events(bus, [make_event(request, contract_id=contract_id, source=SOURCE)])


async def open_dispute(
    engine: AsyncEngine,
    bus: Bus,
    contract_id: str,
    period: str,
    line_id: str,
    reason: str,
    evidence_event_ids: list[uuid.UUID],
    by: str,
) -> str:
    """Dispute a line of a final statement; return the new dispute's id."""
    await _book(engine, contract_id)
    async with engine.connect() as conn:
        final = await journal_store.final_statement(conn, contract_id, period)
    if final is None:
        raise Refused(409, "No final statement", f"{period} is not closed; dispute a final one")
    if line_id not in {line["line_id"] for line in final["lines"]}:
        detail = f"the final statement of {period} has no line {line_id!r}"
        raise Refused(409, "No such line", detail)
    opened = DisputeOpened(
        dispute_id=str(uuid.uuid4()),
        period=period,
        line_id=line_id,
        reason=reason,
        evidence_event_ids=evidence_event_ids,
        opened_by=by,
    )
    event = make_event(opened, contract_id=contract_id, source=SOURCE)
    await publish_events(bus, [event])
    async with engine.begin() as conn:  # read-your-write; the fold applies it idempotently
        await journal_store.put_dispute(
            conn,
            {
                **opened.model_dump(mode="json"),
                "contract_id": contract_id,
                "status": "open",
                "opened_at": event.recorded_at.isoformat(),
            },
        )
    return opened.dispute_id


async def resolve_dispute(
    engine: AsyncEngine,
    bus: Bus,
    contract_id: str,
    dispute_id: str,
    decision: str,
    amount: str | None,
    note: str,
) -> None:
    """Accept (with the adjustment's amount) or reject an open dispute."""
    book = await _book(engine, contract_id)
    async with engine.connect() as conn:
        dispute = await journal_store.dispute(conn, dispute_id)
    if dispute is None or dispute["contract_id"] != contract_id:
        raise Refused(404, "Not found", f"no dispute {dispute_id!r}")
    if dispute["status"] != "open":
        raise Refused(409, "Dispute already resolved", f"it was {dispute['status']}")
    resolved = DisputeResolved(
        dispute_id=dispute_id,
        decision="accepted" if decision == "accepted" else "rejected",
        amount=_amount(decision, amount, book.versions[-1].currency),
        note=note,
    )
    await publish_events(bus, [make_event(resolved, contract_id=contract_id, source=SOURCE)])


def _amount(decision: str, text: str | None, currency: str) -> Decimal | None:
    if decision != "accepted":
        return None
    if text is None:
        raise Refused(
            422, "Amount required", "an accepted dispute needs the adjustment amount", "amount"
        )
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise Refused(422, "Invalid amount", "not a decimal", "amount") from None
    if (
        not amount.is_finite()
        or not money.fits_minor_unit(amount, currency)
        or abs(amount) >= 10**15
    ):
        raise Refused(422, "Invalid amount", f"must be a finite {currency} amount", "amount")
    return amount


async def disputes(engine: AsyncEngine, contract_id: str) -> list[dict[str, object]]:
    await _book(engine, contract_id)
    async with engine.connect() as conn:
        return await journal_store.contract_disputes(conn, contract_id)


async def period_tickets(
    engine: AsyncEngine, contract_id: str, period: str, kpi: str, now: datetime
) -> ticket_view.PeriodTicketsView:
    """One ticket KPI's counted tickets in a period, each with its hours, breach and spans
    (docs/tickets.md): a closed period's as its final statement counted them."""
    book = await _book(engine, contract_id)
    found = book.terms_for(period)
    if found is None:
        raise Refused(409, "No terms in force", f"no terms of {contract_id} apply to {period}")
    named = {k.name: k for k in found[0].kpis}
    if kpi not in named:
        raise Refused(404, "Not found", f"no KPI {kpi!r} in the terms of {period}")
    if named[kpi].ticket_metric is None:
        raise Refused(422, "Not a ticket KPI", f"{kpi!r} is measured, not from tickets", "kpi")
    async with engine.connect() as conn:
        counted = await ticket_view.requested(conn, book, period, now)
    assert counted is not None  # terms are in force
    return ticket_view.kpi_tickets(counted, contract_id, period, kpi)
