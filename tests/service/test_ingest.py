"""Ingest with a fake bus: 202 only for what the bus acknowledged."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.demo import demo_terms
from services.ingest.bootstrap import bootstrap
from shared.auth import issue_token
from shared.bus import Message
from shared.events import TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, Envelope, TermsAgreed, make_event
from tests.fakes import InMemoryBus
from tests.system import SECRET, make_settings

AGENT = {"Authorization": f"Bearer {issue_token(SECRET, 'agent', ['acme-2026'])}"}
KNOWN = ("acme-2026", "other-co")


def agreed_terms(contract_id: str, **changes: Any) -> dict[str, Any]:
    """The demo terms (KPIs availability, latency_ms, resolution_hours) and a `resolved` sum,
    from 2020-01, taking late events for 120 months."""
    terms = demo_terms("2020-01")
    resolved = {**terms["kpis"][0], "name": "resolved", "aggregation": "sum"}
    return {
        **terms,
        "contract_id": contract_id,
        "kpis": [*terms["kpis"], resolved],
        "late_events_months": 120,
        **changes,
    }


async def agree(bus: InMemoryBus, contract_id: str, version: int = 1, **changes: Any) -> None:
    """Put a terms version on the fake bus as the ledger would (see `agreed_terms`)."""
    terms = agreed_terms(contract_id, **changes)
    event = make_event(
        TermsAgreed(version=version, terms=terms), contract_id=contract_id, source="ledger"
    )
    await bus.publish(
        TOPIC_CONTRACTS,
        [Message(key=contract_id, value=event.to_json(), headers={"type": event.type})],
    )


@contextlib.asynccontextmanager
async def ingest(
    tmp_path: Path, bus: InMemoryBus, contracts: tuple[str, ...] = KNOWN, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """Ingest on `bus`, with `contracts` agreed there first."""
    for contract_id in contracts:
        await agree(bus, contract_id)
    app = bootstrap(make_settings(data_dir=tmp_path, **settings), bus=bus)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest"
        ) as client,
    ):
        yield client


def batch(*ids: str | None) -> dict[str, Any]:
    return {
        "measurements": [
            {
                "measurement_id": i,
                "contract_id": "acme-2026",
                "kpi": "availability",
                "value": 1,
                "observed_at": "2026-10-05T12:00:00Z",
            }
            for i in ids
        ]
    }


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


async def test_nothing_is_accepted_while_the_bus_is_down(tmp_path: Path, bus: InMemoryBus) -> None:
    async with ingest(tmp_path, bus) as client:
        bus.down = True
        refused = await client.post("/v1/measurements", json=batch("a", "b"), headers=AGENT)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await client.get("/readyz")).status_code == 503
        bus.down = False
        retried = await client.post("/v1/measurements", json=batch("a", "b"), headers=AGENT)
        assert retried.status_code == 202
        assert retried.json() == {"accepted": 2, "duplicates": 0}


async def test_duplicates_within_and_across_batches_are_counted(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with ingest(tmp_path, bus) as client:
        first = await client.post("/v1/measurements", json=batch("a", "a", "b"), headers=AGENT)
        assert first.json() == {"accepted": 2, "duplicates": 1}
        second = await client.post("/v1/measurements", json=batch("b", "c", None), headers=AGENT)
        assert second.json() == {"accepted": 2, "duplicates": 1}
    published = [Envelope.from_json(r.value) for r in bus.topics[TOPIC_MEASUREMENTS]]
    assert len(published) == 4
    assert all(
        r.key == "acme-2026" and r.headers["type"] == "sla.measurement.recorded"
        for r in bus.topics[TOPIC_MEASUREMENTS]
    )
    assert "traceparent" in bus.topics[TOPIC_MEASUREMENTS][0].headers


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"measurements": []}, 422),
        ({"measurements": [{"contract_id": "acme-2026"}]}, 422),
        ({"measurements": batch("a")["measurements"], "extra": 1}, 422),
        (
            b'{"measurements": [{"contract_id": "acme-2026", "kpi": "a", "value": 1e400, '
            b'"observed_at": "2026-10-05T12:00:00Z"}]}',
            422,
        ),
        (
            b'{"measurements": [{"contract_id": "acme-2026", "kpi": "a", "value": NaN, '
            b'"observed_at": "2026-10-05T12:00:00Z"}]}',
            400,  # NaN is no JSON number
        ),
        (b'{"measurements": [', 400),
        (b"\xff\xfe", 400),
    ],
    ids=["empty", "missing-fields", "unknown-field", "infinite", "nan", "truncated", "not-utf8"],
)
async def test_invalid_batches_publish_nothing(
    tmp_path: Path, bus: InMemoryBus, body: dict[str, Any] | bytes, status: int
) -> None:
    async with ingest(tmp_path, bus) as client:
        if isinstance(body, bytes):
            response = await client.post(
                "/v1/measurements",
                content=body,
                headers={**AGENT, "content-type": "application/json"},
            )
        else:
            response = await client.post("/v1/measurements", json=body, headers=AGENT)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert bus.topics[TOPIC_MEASUREMENTS] == []
