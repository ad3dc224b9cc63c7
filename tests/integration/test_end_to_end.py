"""Contract → measurements → provisional statement, on both buses; nothing counted twice."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from services.demo import demo_terms
from shared.bus import Message
from shared.core.periods import current_period, months_between
from shared.events import TOPIC_MEASUREMENTS
from tests.system import System, eventually

pytestmark = pytest.mark.integration
CONTRACT = "acme-2026"
PERIOD = "2026-10"


def terms() -> dict[str, Any]:
    document = copy.deepcopy(demo_terms(PERIOD))
    document["contract_id"] = CONTRACT
    return document


def batch(n: int, kpi: str = "availability", prefix: str = "m") -> dict[str, Any]:
    return {
        "measurements": [
            {
                "measurement_id": f"{prefix}-{i}",
                "contract_id": CONTRACT,
                "kpi": kpi,
                "value": 1 if i % 100 else 0,
                "observed_at": f"2026-10-{1 + i % 28:02d}T12:{i % 60:02d}:00Z",
            }
            for i in range(n)
        ]
    }


async def statement_events(system: System, kpi: str = "availability") -> int:
    response = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/statements/{PERIOD}",
        headers=system.token("customer", [CONTRACT]),
    )
    if response.status_code != 200:
        return -1
    line = next(x for x in response.json()["lines"] if x.get("kpi") == kpi)
    return int(line["derivation"]["events"])


async def test_measurements_reach_the_provisional_statement_once(system: System) -> None:
    created = await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    assert created.status_code == 201, created.text
    assert created.json() == {"contract_id": CONTRACT, "version": 1}

    agent = system.token("agent", [CONTRACT])
    first = await system.ingest.post("/v1/measurements", json=batch(1000), headers=agent)
    assert first.status_code == 202, first.text
    assert first.json() == {"accepted": 1000, "duplicates": 0}
    await eventually(lambda: statement_events(system), lambda n: n == 1000)

    again = await system.ingest.post("/v1/measurements", json=batch(1000), headers=agent)
    assert again.json() == {"accepted": 0, "duplicates": 1000}

    # Even if ingest forgot what it published, the ledger dedupes: replay the raw events
    # straight onto the bus, followed by one new measurement as a marker.
    history = await system.apps["ingest"].state.runtime.bus.read_all(TOPIC_MEASUREMENTS)
    await system.apps["ingest"].state.runtime.bus.publish(
        TOPIC_MEASUREMENTS, [Message(r.key, r.value, r.headers) for r in history]
    )
    marker = await system.ingest.post(
        "/v1/measurements", json=batch(1, prefix="marker"), headers=agent
    )
    assert marker.json() == {"accepted": 1, "duplicates": 0}
    await eventually(lambda: statement_events(system), lambda n: n == 1001)

    statement = (
        await system.statements.get(
            f"/v1/contracts/{CONTRACT}/statements/{PERIOD}",
            headers=system.token("provider", [CONTRACT]),
        )
    ).json()
    assert statement["status"] == "provisional"
    kinds = [line["kind"] for line in statement["lines"]]
    assert kinds[0] == "base_fee" and statement["lines"][0]["amount"] == "10000.00"
    availability = next(x for x in statement["lines"] if x.get("kpi") == "availability")
    assert availability["derivation"]["value"] == pytest.approx(
        990 / 1001
    )  # 10 + 1 (the marker) zeros
    listed = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/statements", headers=system.token("auditor", [CONTRACT])
    )
    # every month from effective_from to the current one, those without events included
    periods = [s["period"] for s in listed.json()]
    assert periods[0] == PERIOD and periods == sorted(periods)
    assert len(periods) == months_between(PERIOD, current_period(datetime.now(UTC), "UTC")) + 1


async def test_health_and_readiness(system: System) -> None:
    for client in system.clients.values():
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert (await client.get("/openapi.json")).status_code == 200


async def test_tokens_never_reach_other_contracts(system: System) -> None:
    await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    other = system.token("customer", ["someone-else"])
    hidden = await system.statements.get(f"/v1/contracts/{CONTRACT}/statements", headers=other)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"].startswith("application/problem+json")
    assert (await system.ledger.get(f"/v1/contracts/{CONTRACT}", headers=other)).status_code == 404
    posted = await system.ingest.post(
        "/v1/measurements", json=batch(1), headers=system.token("agent", ["x-y-z"])
    )
    assert posted.status_code == 404
    as_customer = await system.ingest.post(
        "/v1/measurements", json=batch(1), headers=system.token("customer", [CONTRACT])
    )
    assert as_customer.status_code == 403
    agent_reads = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/statements", headers=system.token("agent", [CONTRACT])
    )
    assert agent_reads.status_code == 403
    assert (await system.statements.get(f"/v1/contracts/{CONTRACT}/statements")).status_code == 401


async def test_a_bad_item_rejects_the_whole_batch(system: System) -> None:
    body = batch(5)
    body["measurements"][1]["value"] = "high"
    body["measurements"][3]["observed_at"] = "2026-10-01T00:00:00"  # naive
    response = await system.ingest.post(
        "/v1/measurements", json=body, headers=system.token("agent", [CONTRACT])
    )
    assert response.status_code == 422
    assert response.json()["invalid_items"] == [1, 3]
    malformed = await system.ingest.post(
        "/v1/measurements",
        content=b"{not json",
        headers={**system.token("agent", [CONTRACT]), "content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert await system.apps["ingest"].state.runtime.bus.read_all(TOPIC_MEASUREMENTS) == []


async def test_an_existing_contract_is_a_conflict(system: System) -> None:
    assert (
        await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    ).status_code == 201
    again = await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    assert again.status_code == 409
    shown = await system.ledger.get(
        f"/v1/contracts/{CONTRACT}", headers=system.token("customer", [CONTRACT])
    )
    assert shown.json()["versions"][0]["base_fee"] == "10000.00"


async def test_running_state_gives_the_statement_a_full_recomputation_gives(system: System) -> None:
    from services.ledger.book import RunningStates, computed_statement, open_book, running_statement

    await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    agent = system.token("agent", [CONTRACT])
    engine = system.apps["ledger"].state.runtime.engine
    running = RunningStates()
    for part in range(3):  # the running state is read incrementally between batches
        body = batch(400, prefix=f"p{part}")
        for i, item in enumerate(body["measurements"]):
            item["kpi"] = ("availability", "latency_ms", "resolution_hours")[i % 3]
            item["value"] = (i * 37 % 101) / (100 if i % 3 == 0 else 1)
        await system.ingest.post("/v1/measurements", json=body, headers=agent)
        await eventually(
            lambda: statement_events(system, "latency_ms"), lambda n, p=part: n >= 133 * (p + 1)
        )
        async with engine.connect() as conn:
            book = await open_book(conn, CONTRACT)
            incremental = await running_statement(conn, book, PERIOD, running)
            full = await computed_statement(conn, book, PERIOD)
        assert incremental is not None and full is not None
        assert incremental.model_dump() == full.model_dump()
