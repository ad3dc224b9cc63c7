"""Provisional statements: while a period is open, publish a fresh snapshot when it changes.

Debounced: folds only mark a (contract, period) dirty, in the same transaction; this loop
publishes at most one snapshot per dirty period every `provisional_debounce_s`, so a burst
of 100k measurements yields a handful of snapshots, and a crash loses no mark.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from services.ledger import journal_store, store, ticket_view
from services.ledger.book import (
    RunningStates,
    computed_statement,
    open_book,
    running_statement,
)
from services.ledger.domain import posting
from shared.consuming import POISON_ATTEMPTS
from shared.events import StatementProvisional, make_event, utcnow
from shared.publishing import publish_events
from shared.retrying import blames_the_data, every
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def provisional_loop(runtime: Runtime) -> None:
    running, failing = RunningStates(), Failing()
    await every(
        runtime.settings.provisional_debounce_s,
        functools.partial(publish_dirty, runtime, running, failing),
        what="publishing provisional statements",
        wait_first=True,
    )


@dataclass
class Failing:
    """Dirty periods whose statement failed to compute while the database and the bus
    answered: after `POISON_ATTEMPTS` tries, one is left alone until it changes again."""

    tries: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def given_up(self, contract_id: str, period: str, marks: int) -> bool:
        found = self.tries.get((contract_id, period))
        return found is not None and found[0] == marks and found[1] >= POISON_ATTEMPTS

    def failed(self, contract_id: str, period: str, marks: int) -> None:
        before, count = self.tries.get((contract_id, period), (marks, 0))
        self.tries[(contract_id, period)] = (marks, count + 1 if before == marks else 1)

    def done(self, contract_id: str, period: str) -> None:
        self.tries.pop((contract_id, period), None)


async def publish_dirty(
    runtime: Runtime, running: RunningStates | None = None, failing: Failing | None = None
) -> int:
    """Publish one snapshot per dirty open period; return how many were published. One
    period that fails because of its data never holds up another's."""
    failing = failing or Failing()
    published = 0
    for contract_id, period, marks in await store.dirty(runtime.engine):
        if failing.given_up(contract_id, period, marks):
            continue
        try:
            published += await _publish_one(runtime, contract_id, period, running)
        except Exception as exc:
            if not await blames_the_data(exc, runtime.probe):
                raise
            log.error("provisional statement of %s %s failed: %s", contract_id, period, exc)
            failing.failed(contract_id, period, marks)
            continue
        failing.done(contract_id, period)
        await store.clear_dirty(runtime.engine, contract_id, period, marks)
    return published


async def _publish_one(
    runtime: Runtime, contract_id: str, period: str, running: RunningStates | None
) -> int:
    with runtime.telemetry.handoff.resume((contract_id, period), "ledger.provisional"):
        provisional = await provisional_statement(runtime, contract_id, period, running)
        if provisional is None:
            return 0
        event = make_event(provisional, contract_id=contract_id, source="ledger")
        await publish_events(runtime.bus, [event])
        return 1


async def provisional_statement(
    runtime: Runtime, contract_id: str, period: str, running: RunningStates | None = None
) -> StatementProvisional | None:
    """The open period's computed lines plus adjustments posted into it, with its ticket
    KPIs' breached tickets beside them; None once closed."""
    async with runtime.engine.connect() as conn:
        book = await open_book(conn, contract_id)
        if period in book.closed:
            if running is not None:
                running.forget(contract_id, period)
            return None
        now = utcnow()  # a running ticket is measured up to now, not to the period's end
        computed = (
            await computed_statement(conn, book, period, as_of=now)
            if running is None
            else await running_statement(conn, book, period, running, as_of=now)
        )
        if computed is None:
            return None
        posted_into = await journal_store.entries(conn, contract_id, period)
        breached = ticket_view.breaches(await ticket_view.period_tickets(conn, book, period, now))
    adjustments = [e for e in posted_into if e.kind == posting.ADJUSTMENT]
    statement = posting.compose(computed, adjustments, status="provisional", entries=adjustments)
    return StatementProvisional(
        statement=statement.model_dump(mode="json"), ticket_breaches=breached
    )
