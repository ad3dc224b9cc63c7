"""The door tells the truth: what can never count is refused (422 naming it), nothing of a
refused batch is published, and a value is the decimal its JSON number spells."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ingest import store
from shared import db
from shared.auth import issue_token
from shared.bus import BusUnavailable, Record
from shared.events import TOPIC_MEASUREMENTS, Envelope
from tests.fakes import InMemoryBus, InMemoryConsumer
from tests.service.test_ingest import agree, ingest
from tests.system import SECRET

PATH = "/v1/measurements"
ADMIN = {"Authorization": f"Bearer {issue_token(SECRET, 'admin', [])}"}
NOW = datetime.now(UTC)


def item(i: int = 0, **changes: Any) -> dict[str, Any]:
    return {
        "measurement_id": f"m-{i}",
        "contract_id": "acme-2026",
        "kpi": "availability",
        "value": 1,
        "observed_at": (NOW - timedelta(minutes=5, seconds=i)).isoformat(),
        **changes,
    }


def published(bus: InMemoryBus) -> list[Record]:
    return bus.topics[TOPIC_MEASUREMENTS]


async def post(client: httpx.AsyncClient, *items: dict[str, Any]) -> httpx.Response:
    return await client.post(PATH, json={"measurements": list(items)}, headers=ADMIN)


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.mark.parametrize(
    ("bad", "field", "kind"),
    [
        ({"contract_id": "no-such-co"}, "contract_id", "contract_unknown"),
        ({"kpi": "availabilty"}, "kpi", "kpi_unknown"),
        ({"observed_at": "2019-12-31T23:00:00Z"}, "observed_at", "before_effective_from"),
        ({"observed_at": "0001-01-01T00:00:00Z"}, "observed_at", "before_effective_from"),
        ({"value": 1e16}, "value", "value_out_of_range"),
        ({"value": -1.5e15}, "value", "value_out_of_range"),
        ({"value": "1e999999999"}, "value", "value_out_of_range"),
        ({"value": "1e-999999999"}, "value", "too_many_decimal_places"),
    ],
    ids=[
        "unknown-contract",
        "kpi-typo",
        "before-effective-from",
        "year-1",
        "1e16",
        "-1.5e15",
        "1e999999999",
        "1e-999999999",
    ],
)
async def test_an_item_that_can_never_count_is_named_and_nothing_is_published(
    tmp_path: Path, bus: InMemoryBus, bad: dict[str, Any], field: str, kind: str
) -> None:
    async with ingest(tmp_path, bus) as client:
        response = await post(client, item(0), item(1, **bad), item(2))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["invalid_items"] == [1]
    assert [(e["loc"], e["type"]) for e in problem["errors"]] == [
        (["measurements", 1, field], kind)
    ]
    assert published(bus) == []


async def test_an_item_older_than_the_late_events_window_is_refused(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    await agree(bus, "short-memory", late_events_months=1, effective_from="2020-01")
    old, recent = NOW - timedelta(days=70), NOW - timedelta(days=1)
    async with ingest(tmp_path, bus) as client:
        refused = await post(client, item(0, contract_id="short-memory", observed_at=str(old)))
        accepted = await post(client, item(1, contract_id="short-memory", observed_at=str(recent)))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["type"] == "too_late"
    assert accepted.status_code == 202, accepted.text


async def test_the_kpi_is_checked_against_the_terms_in_force_at_observed_at(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    """Version 2 (from this month on) drops latency_ms: last year it still counts."""
    this_month = f"{NOW.year:04d}-{NOW.month:02d}"
    async with ingest(tmp_path, bus) as client:
        await agree(
            bus,
            "acme-2026",
            version=2,
            effective_from=this_month,
            kpis=[
                {
                    "name": "availability",
                    "aggregation": "mean",
                    "objective": ">=",
                    "target": 0.9,
                    "credits": [],
                }
            ],
        )
        await asyncio.sleep(0.2)  # the follower reads the new version
        last_year = (NOW - timedelta(days=400)).isoformat()
        earlier = await post(client, item(0, kpi="latency_ms", observed_at=last_year))
        now = await post(client, item(1, kpi="latency_ms"))
    assert earlier.status_code == 202, earlier.text
    assert now.status_code == 422, now.text
    assert now.json()["errors"][0]["loc"] == ["measurements", 0, "kpi"]


async def test_a_reused_measurement_id_with_other_content_is_a_conflict_not_a_duplicate(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with ingest(tmp_path, bus) as client:
        first = await post(client, item(0, value=0.5))
        same = await post(client, item(0, value=0.50))  # the same decimal
        changed = [
            await post(client, item(0, value=0.6)),
            await post(client, item(0, value=0.5, kpi="latency_ms")),
            await post(client, item(0, value=0.5, labels={"probe": "eu"})),
            await post(client, item(0, value=0.5, observed_at=NOW.isoformat())),
        ]
        within = await post(client, item(7, value=1), item(7, value=2))
    assert first.json() == {"accepted": 1, "duplicates": 0}
    assert same.status_code == 202
    assert same.json() == {"accepted": 0, "duplicates": 1}
    for response in changed:
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert (error["loc"], error["type"]) == (["measurements", 0, "measurement_id"], "conflict")
        assert "conflict" in error["msg"]
    assert within.status_code == 422
    assert within.json()["invalid_items"] == [1]
    assert len(published(bus)) == 1


async def test_a_value_is_the_decimal_its_json_number_spells(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    body = (
        b'{"measurements": ['
        b'{"contract_id": "acme-2026", "kpi": "availability", "value": 0.1, '
        b'"observed_at": "%s"},'
        b'{"contract_id": "acme-2026", "kpi": "availability", '
        b'"value": -123456789012345.123456789012345678, "observed_at": "%s"},'
        b'{"contract_id": "acme-2026", "kpi": "availability", "value": 1E+15, '
        b'"observed_at": "%s"}]}'
    ) % (((NOW - timedelta(minutes=1)).isoformat().encode(),) * 3)
    async with ingest(tmp_path, bus) as client:
        response = await client.post(
            PATH, content=body, headers={**ADMIN, "content-type": "application/json"}
        )
    assert response.status_code == 202, response.text
    values = [r.value.split(b'"value":')[1].split(b",")[0] for r in published(bus)]
    assert values == [b"0.1", b"-123456789012345.123456789012345678", b"1000000000000000"]
    assert [Envelope.from_json(r.value).type for r in published(bus)] == [
        "sla.measurement.recorded"
    ] * 3


async def test_a_value_with_more_than_18_decimal_places_is_refused(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    body = (
        b'{"measurements": [{"contract_id": "acme-2026", "kpi": "availability", '
        b'"value": 0.1234567890123456789, "observed_at": "%s"}]}'
    ) % (NOW - timedelta(minutes=1)).isoformat().encode()
    async with ingest(tmp_path, bus) as client:
        response = await client.post(
            PATH, content=body, headers={**ADMIN, "content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["msg"] == "value has more than 18 decimal places"
    assert published(bus) == []


async def test_an_oversized_item_is_refused_before_anything_is_published(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    items = [item(i) for i in range(50)] + [item(50, labels={"blob": "x" * (1024 * 1024)})]
    async with ingest(tmp_path, bus) as client:
        response = await post(client, *items)
        retried = await post(client, *items)
    for refused in (response, retried):
        assert refused.status_code == 422, refused.text
        assert refused.json()["invalid_items"] == [50]
        assert refused.json()["errors"][0]["type"] == "record_too_large"
    assert published(bus) == []


async def test_more_than_10000_measurements_are_refused_while_decoding(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    many = b'{"measurements": [' + b"{}," * 5_000_000 + b"{}]}"
    full = [item(i) for i in range(10_001)]
    async with ingest(tmp_path, bus) as client:
        headers = {**ADMIN, "content-type": "application/json"}
        tiny_items = await client.post(PATH, content=many, headers=headers)
        one_too_many = await post(client, *full)
        exactly_full = await post(client, *full[:10_000])
    assert tiny_items.status_code == 413, tiny_items.text
    assert one_too_many.status_code == 413, one_too_many.text
    assert exactly_full.status_code == 202, exactly_full.text
    assert len(published(bus)) == 10_000


class SilentBus(InMemoryBus):
    """A bus whose followers never hear anything: only a re-read finds new contracts."""

    def __init__(self) -> None:
        super().__init__()
        self.rereads = 0

    def consumer(self, topics: Any, group: str) -> InMemoryConsumer:
        consumer = super().consumer(topics, group)
        consumer.topics = []
        return consumer

    async def read_chunks(self, topic: str) -> AsyncIterator[list[Record]]:
        self.rereads += 1
        async for chunk in super().read_chunks(topic):
            yield chunk


async def test_a_contract_agreed_a_moment_ago_is_found_by_catching_up_once(
    tmp_path: Path,
) -> None:
    bus = SilentBus()
    async with ingest(tmp_path, bus, contracts=()) as client:
        await agree(bus, "acme-2026")
        found = await post(client, item(0))
        rereads = bus.rereads
        unknown = await post(client, item(1, contract_id="new-co"), item(2, contract_id="old-co"))
    assert found.status_code == 202, found.text
    assert rereads == 1
    assert unknown.status_code == 422
    assert bus.rereads == 2  # one re-read for the two unknown contracts of one request


class UnreadableBus(InMemoryBus):
    async def read_chunks(self, topic: str) -> AsyncIterator[list[Record]]:
        raise BusUnavailable("down")
        yield []


async def test_a_contract_that_cannot_be_looked_up_is_a_retry_not_a_refusal(
    tmp_path: Path,
) -> None:
    bus = UnreadableBus()
    async with ingest(tmp_path, bus, contracts=()) as client:
        response = await post(client, item(0))
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"


async def test_the_dedupe_memory_forgets_what_is_older_than_its_window(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
    try:
        await db.create_schema(engine, store.metadata)
        await store.remember_published(engine, {"e-1": "d-1", "e-2": "d-2"})
        assert await store.already_published(engine, ["e-1", "e-3"]) == {"e-1": "d-1"}
        assert await store.forget_before(engine, NOW - timedelta(days=1)) == 0
        assert await store.forget_before(engine, datetime.now(UTC) + timedelta(seconds=5)) == 2
        assert await store.already_published(engine, ["e-1", "e-2"]) == {}
    finally:
        await engine.dispose()
