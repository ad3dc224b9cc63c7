"""The ledger's background work: the fold, the outbox relay, closing periods on time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from services.ledger import journal_store, store
from services.ledger.book import open_book
from services.ledger.consumer import GROUP, apply_delivered
from services.ledger.domain import periods
from shared.bus import Message
from shared.consuming import Incoming, run_delivered_consumer
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    JournalEntryPosted,
    PeriodCloseRequested,
    make_event,
)
from shared.publishing import publish_events
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def fold_loop(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer([TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, TOPIC_REVIEWS], GROUP)

    async def fold(delivered: Sequence[Incoming]) -> None:
        touched = await apply_delivered(runtime.engine, delivered)
        runtime.telemetry.handoff.remember(touched)  # provisional statements continue the trace

    await run_delivered_consumer(
        runtime.bus,
        consumer,
        fold,
        observer=runtime.telemetry.metrics.consumer(GROUP),
        measurements=True,
        read_ahead="signalled",
    )


async def relay_outbox(runtime: Runtime) -> int:
    """Publish staged messages in order, then forget them; a crash in between republishes
    (event ids are deterministic, so subscribers dedupe)."""
    relayed = 0
    while rows := await journal_store.pending(runtime.engine):
        by_topic: dict[str, list[Message]] = {}
        for row in rows:
            by_topic.setdefault(row.topic, []).append(
                Message(row.key, bytes(row.value), _headers(row.headers))
            )
        for topic, messages in by_topic.items():
            await runtime.bus.publish(topic, messages)
        await journal_store.sent(runtime.engine, [row.id for row in rows])
        _count_relayed(runtime, [m for messages in by_topic.values() for m in messages])
        relayed += len(rows)
    return relayed


def _count_relayed(runtime: Runtime, messages: Sequence[Message]) -> None:
    metrics = runtime.telemetry.metrics
    for message in messages:
        kind = message.headers.get("type")
        if kind == JournalEntryPosted.TYPE:
            metrics.journal_entries.add(1)
        elif kind == "deadletter":
            source = message.headers.get("source-topic", "unknown")
            metrics.deadletters.add(1, {"group": GROUP, "source_topic": source})


def _headers(raw: str) -> dict[str, str]:
    from shared import jsonutil

    return dict(jsonutil.loads(raw))


async def outbox_loop(runtime: Runtime) -> None:
    await _every(runtime, 0.2, relay_outbox)


async def request_due_closes(
    runtime: Runtime, now: datetime | None = None
) -> list[tuple[str, str]]:
    """Publish `period.close.requested` for every ended period past its grace days."""
    now = now or datetime.now(UTC)
    due: list[tuple[str, str]] = []
    async with runtime.engine.connect() as conn:
        for contract_id in await store.contracts(conn):
            book = await open_book(conn, contract_id)
            first = book.versions[0].effective_from
            last = periods.shift(periods.current_period(now, book.timezone), -1)
            for period in periods.periods(first, last):
                found = book.terms_for(period)
                if period in book.closed or found is None:
                    continue
                agreed = book.agreed_at[book.versions.index(found[0])]
                deadline = periods.close_deadline(
                    period, book.timezone, agreed, found[0].grace_days
                )
                if now >= deadline:
                    due.append((contract_id, period))
    events = [
        make_event(
            PeriodCloseRequested(period=p, requested_by="ledger:grace-days"),
            contract_id=c,
            source="ledger",
            producer_id=f"auto-close:{p}",
        )
        for c, p in due
    ]
    if events:
        await publish_events(runtime.bus, events)
    return due


async def autoclose_loop(runtime: Runtime) -> None:
    await _every(runtime, runtime.settings.autoclose_interval_s, request_due_closes)


async def _every(runtime: Runtime, interval_s: float, step: object) -> None:
    while True:
        try:
            await step(runtime)  # type: ignore[operator]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; will retry", getattr(step, "__name__", step))
        await asyncio.sleep(interval_s)
