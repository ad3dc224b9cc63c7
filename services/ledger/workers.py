"""The ledger's background work beside the fold: the outbox relay, announcing each month,
closing periods on time."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from services.ledger import journal_store, store
from services.ledger.book import Book, open_book
from services.ledger.fold.apply import GROUP
from shared.bus import Message
from shared.core import periods
from shared.events import (
    JournalEntryPosted,
    PeriodCloseRequested,
    make_event,
)
from shared.publishing import publish_events
from shared.retrying import every
from shared.runtime import Runtime

log = logging.getLogger(__name__)


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
    await every(0.2, functools.partial(relay_outbox, runtime), what="relaying the outbox")


async def request_due_closes(
    runtime: Runtime, now: datetime | None = None
) -> list[tuple[str, str]]:
    """Publish `period.close.requested` for every ended period past its grace days. A
    contract whose deadlines cannot be worked out is logged and skipped: never the others."""
    now = now or datetime.now(UTC)
    due: list[tuple[str, str]] = []
    async with runtime.engine.connect() as conn:
        for contract_id in await store.contracts(conn):
            try:
                due += _due(await open_book(conn, contract_id), now)
            except (ValueError, OverflowError, ValidationError) as exc:
                log.error("auto-close skips %s: %s", contract_id, exc)
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


def _due(book: Book, now: datetime) -> list[tuple[str, str]]:
    """The contract's ended, unclosed periods whose grace days have passed."""
    if not book.versions:
        return []
    first = book.versions[0].effective_from
    last = periods.shift(periods.current_period(now, book.timezone), -1)
    due = []
    for period in periods.periods(first, last):
        found = book.terms_for(period)
        if period in book.closed or found is None:
            continue
        agreed = book.agreed_at[book.versions.index(found[0])]
        deadline = periods.close_deadline(period, book.timezone, agreed, found[0].grace_days)
        if now >= deadline:
            due.append((book.contract_id, period))
    return due


async def announce_periods(
    runtime: Runtime, announced: set[tuple[str, str]], now: datetime | None = None
) -> set[tuple[str, str]]:
    """Mark each contract's current period for a provisional statement the first time this
    process sees it: a month in which nothing arrives still has its statement (base fee,
    and whatever the terms say of missing data)."""
    now = now or datetime.now(UTC)
    fresh: set[tuple[str, str]] = set()
    async with runtime.engine.begin() as conn:
        for contract_id in await store.contracts(conn):
            try:
                book = await open_book(conn, contract_id)
                current = periods.current_period(now, book.timezone)
            except (ValueError, OverflowError, ValidationError) as exc:
                log.error("no statement announced for %s: %s", contract_id, exc)
                continue
            started = bool(book.versions) and book.versions[0].effective_from <= current
            seen = (contract_id, current) in announced or current in book.closed
            if started and not seen:
                fresh.add((contract_id, current))
        await store.mark_dirty(conn, fresh)
    announced |= fresh
    return fresh


async def autoclose_loop(runtime: Runtime) -> None:
    announced: set[tuple[str, str]] = set()

    async def step() -> None:
        await announce_periods(runtime, announced)
        await request_due_closes(runtime)

    await every(runtime.settings.autoclose_interval_s, step, what="requesting due closes")
