"""`GET /metrics` on every service of an embedded system: Prometheus text, each service its
own numbers, and the counters wired where the work happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import SERVICES
from tests.integration.test_end_to_end import CONTRACT, batch, statement_events, terms
from tests.system import System, eventually, make_settings, running_system


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    async with running_system(make_settings(data_dir=tmp_path)) as running:
        yield running


async def scrape(system: System, service: str) -> dict[str, float]:
    """`name{labels}` → value for every sample a service exposes."""
    response = await system.clients[service].get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: dict[str, float], prefix: str, *labels: str) -> float:
    return sum(
        v for k, v in samples.items() if k.startswith(prefix) and all(x in k for x in labels)
    )


async def test_every_service_answers_metrics_with_its_own_numbers(system: System) -> None:
    created = await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    assert created.status_code == 201, created.text
    agent = system.token("agent", [CONTRACT])
    assert (await system.ingest.post("/v1/measurements", json=batch(3), headers=agent)).is_success
    bad = {"measurements": [{"contract_id": CONTRACT, "kpi": "availability"}] * 2}
    assert (
        await system.ingest.post("/v1/measurements", json=bad, headers=agent)
    ).status_code == 422
    await eventually(lambda: statement_events(system), lambda n: n == 3)

    scraped = {service: await scrape(system, service) for service in SERVICES}
    ingest = scraped["ingest"]
    assert total(ingest, "slapay_measurements_total", "'accepted'", "'json'") == 3
    assert total(ingest, "slapay_measurements_total", "'rejected'") == 2
    assert total(ingest, "http_server_duration_milliseconds_count", "/v1/measurements") == 2
    for other in ("reviews", "ledger", "statements"):
        assert total(scraped[other], "slapay_measurements_total") == 0
    ledger = scraped["ledger"]
    assert total(ledger, "slapay_consumer_events_total", "'ledger'", "sla.measurement") == 3
    statements = scraped["statements"]
    assert total(statements, "slapay_consumer_events_total", "statement.provisional") >= 1
    assert any(k.startswith("slapay_consumer_lag") for k in statements)


async def test_scrapes_are_not_traced_nor_metered(system: System) -> None:
    await scrape(system, "reviews")
    samples = await scrape(system, "reviews")
    assert total(samples, "http_server_duration_milliseconds_count", "/metrics") == 0
