"""Bus edge of the ledger: fold contract and measurement events into durable state.

One batch is one database transaction; measurements are keyed by `event_id`, so a batch
delivered twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ledger import store
from shared.events import Envelope, MeasurementRecorded, TermsAgreed
from shared.terms import period_of

GROUP = "ledger"


async def apply_events(engine: AsyncEngine, events: Sequence[Envelope]) -> None:
    async with engine.begin() as conn:
        touched: set[tuple[str, str]] = set()
        for event in events:
            if event.type == TermsAgreed.TYPE:
                touched |= await apply_terms(conn, event) or set()
        measurements = [e for e in events if e.type == MeasurementRecorded.TYPE]
        if measurements:
            timezones = await _timezones(conn, {e.contract_id for e in measurements})
            rows = [_row(e, timezones.get(e.contract_id, "UTC")) for e in measurements]
            new = await store.insert_new_measurements(conn, rows)
            touched |= await store.fold_aggregates(conn, new)
        await store.mark_dirty(conn, touched)


async def apply_terms(conn: AsyncConnection, event: Envelope) -> set[tuple[str, str]] | None:
    """Store a contract version (None if that version exists already); return the periods
    with data, which need a fresh provisional statement."""
    agreed = event.payload()
    assert isinstance(agreed, TermsAgreed)
    added = await store.add_terms(
        conn,
        event.contract_id,
        agreed.version,
        agreed.terms,
        str(event.event_id),
        event.recorded_at,
    )
    return await store.periods_with_data(conn, event.contract_id) if added else None


async def _timezones(conn: AsyncConnection, contract_ids: set[str]) -> dict[str, str]:
    versions = await store.terms_versions(conn, sorted(contract_ids))
    return {c: str(v[-1].get("timezone", "UTC")) for c, v in versions.items() if v}


def _row(event: Envelope, timezone: str) -> store.MeasurementRow:
    data: dict[str, Any] = event.data
    return store.MeasurementRow(
        event_id=str(event.event_id),
        contract_id=event.contract_id,
        period=period_of(event.occurred_at, timezone),
        kpi=str(data["kpi"]),
        value=float(data["value"]),
        occurred_at=event.occurred_at,
    )
