"""Idempotency-Key: same key and body → the first response; other body → 422."""

from __future__ import annotations

from pathlib import Path

from shared.events import TOPIC_MEASUREMENTS
from tests.fakes import InMemoryBus
from tests.service.test_ingest import AGENT, batch, ingest


async def test_a_repeated_key_replays_the_first_response(tmp_path: Path) -> None:
    bus = InMemoryBus()
    headers = {**AGENT, "Idempotency-Key": "k-1"}
    async with ingest(tmp_path, bus) as client:
        first = await client.post("/v1/measurements", json=batch("a", None), headers=headers)
        again = await client.post("/v1/measurements", json=batch("a", None), headers=headers)
        other = await client.post("/v1/measurements", json=batch("b"), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"accepted": 2, "duplicates": 0}
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    # the measurement without an id would have been published twice without the key
    assert len(bus.topics[TOPIC_MEASUREMENTS]) == 2


async def test_a_key_is_released_when_the_request_failed(tmp_path: Path) -> None:
    bus = InMemoryBus()
    headers = {**AGENT, "Idempotency-Key": "k-2"}
    async with ingest(tmp_path, bus) as client:
        bus.down = True
        assert (
            await client.post("/v1/measurements", json=batch("a"), headers=headers)
        ).status_code == 503
        bus.down = False
        retried = await client.post("/v1/measurements", json=batch("a"), headers=headers)
    assert retried.status_code == 202
    assert "idempotent-replayed" not in retried.headers
