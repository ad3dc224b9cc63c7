"""Isolation on both buses: records whose effect fails because of what they hold are set
aside on `slapay.deadletter`, listed to admins, counted on /metrics, and never stop another
contract's events from folding."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import jsonutil
from shared.bus import Message
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_MEASUREMENTS,
    MeasurementRecorded,
    TermsAgreed,
)
from tests.integration.seeded import agree, measurements, period_back, statement_events
from tests.system import System, eventually

pytestmark = pytest.mark.integration
HEALTHY, BROKEN, FORGED = "healthy-co", "broken-co", "forged-co"


async def _store_unreadable_terms(runtime: Any) -> None:
    """Terms stored before today's bounds (here: a text no version of `Terms` reads), as an
    old database may hold them."""
    from services.ledger import store

    unreadable = jsonutil.dumps({"effective_from": period_back(2), "grace_days": 10**9}).decode()
    async with runtime.engine.begin() as conn:
        await conn.execute(
            store.contract_terms.insert().values(
                contract_id=BROKEN,
                version=1,
                effective_from=period_back(2),
                terms=unreadable,
                event_id=str(uuid.uuid4()),
                agreed_at=datetime.now(UTC) - timedelta(days=90),
            )
        )


def _envelope(type_: str, contract_id: str, data: dict[str, Any], at: str) -> bytes:
    """An event as a hostile producer with access to the bus could write it."""
    return jsonutil.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": type_,
            "schema_version": 1,
            "contract_id": contract_id,
            "occurred_at": at,
            "recorded_at": datetime.now(UTC).isoformat(),
            "source": "agent:mallory",
            "data": data,
        }
    )


def _measurement(contract_id: str, value: float, at: str, measurement_id: str) -> Message:
    data = {"kpi": "availability", "value": value, "measurement_id": measurement_id}
    return Message(
        contract_id,
        _envelope(MeasurementRecorded.TYPE, contract_id, data, at),
        {"type": MeasurementRecorded.TYPE},
    )


async def test_poison_records_are_set_aside_and_other_contracts_keep_folding(
    system: System,
) -> None:
    await agree(system, HEALTHY, period_back(1))
    runtime = system.apps["ledger"].state.runtime
    bus, now = runtime.bus, datetime.now(UTC)
    await _store_unreadable_terms(runtime)  # every event of BROKEN now fails in the fold
    forged = {"contract_id": FORGED, "effective_from": "0000-01", "kpis": "none"}
    agreed = _envelope(TermsAgreed.TYPE, FORGED, {"version": 1, "terms": forged}, now.isoformat())
    await bus.publish(TOPIC_CONTRACTS, [Message(FORGED, agreed, {"type": TermsAgreed.TYPE})])
    recent = (now - timedelta(minutes=5)).isoformat()
    await bus.publish(
        TOPIC_MEASUREMENTS,
        [
            _measurement(BROKEN, 1, recent, "poison-1"),
            _measurement(HEALTHY, 1, "0001-01-01T00:00:00Z", "year-one"),
            _measurement(HEALTHY, 1e308, recent, "huge-1"),
            _measurement(HEALTHY, 1e308, recent, "huge-2"),
        ],
    )
    posted = await system.ingest.post(
        "/v1/measurements",
        json=measurements(HEALTHY, 20, "healthy"),
        headers=system.token("agent", [HEALTHY]),
    )
    assert posted.status_code == 202, posted.text

    period = period_back(0)
    await eventually(
        lambda: statement_events(system, HEALTHY, period), lambda n: n >= 20, timeout_s=60
    )
    admin = system.token()
    listed = await eventually(
        lambda: system.ledger.get(f"/v1/deadletter?contract={BROKEN}", headers=admin),
        lambda r: r.status_code == 200 and len(r.json()) >= 1,
    )
    letter = listed.json()[0]
    assert letter["measurement_id"] == "poison-1"
    assert letter["topic"] == TOPIC_MEASUREMENTS and letter["kind"] == "poison"
    assert letter["contract_id"] == BROKEN and letter["event_id"]
    assert "ValidationError" in letter["reason"]
    refused = await eventually(
        lambda: system.ledger.get(f"/v1/deadletter?contract={FORGED}", headers=admin),
        lambda r: r.status_code == 200 and len(r.json()) == 1,
    )
    assert refused.json()[0]["topic"] == TOPIC_CONTRACTS
    assert "ValidationError" in refused.json()[0]["reason"]
    unknown = await system.ledger.get(f"/v1/contracts/{FORGED}", headers=admin)
    assert unknown.status_code == 404  # forged terms never got in

    forbidden = await system.ledger.get("/v1/deadletter", headers=system.token("customer"))
    assert forbidden.status_code == 403
    scrape = (await system.ledger.get("/metrics")).text
    assert "slapay_deadletters" in scrape
    assert 'source_topic="slapay.measurements"' in scrape


async def test_one_contract_failing_never_stops_auto_close_or_provisional_statements(
    system: System,
) -> None:
    """Terms stored before today's bounds (here: a text no version of `Terms` reads) make
    that contract fail; every other contract still closes and gets its statements."""
    from services.ledger import store
    from services.ledger.provisional import Failing, publish_dirty
    from services.ledger.workers import request_due_closes

    await agree(system, HEALTHY, period_back(2))
    runtime = system.apps["ledger"].state.runtime
    await _store_unreadable_terms(runtime)
    async with runtime.engine.begin() as conn:
        await store.mark_dirty(conn, {(BROKEN, period_back(0)), (HEALTHY, period_back(0))})

    due = await request_due_closes(runtime, datetime.now(UTC) + timedelta(days=10))
    assert (HEALTHY, period_back(2)) in due
    assert all(contract == HEALTHY for contract, _ in due)

    failing = Failing()
    for _ in range(3):
        await publish_dirty(runtime, None, failing)
    assert failing.given_up(BROKEN, period_back(0), 1)
    left = {(c, p) for c, p, _ in await store.dirty(runtime.engine)}
    assert (HEALTHY, period_back(0)) not in left  # published and cleared
    assert (BROKEN, period_back(0)) in left  # kept: retried once its data changes
