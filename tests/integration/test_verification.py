"""`GET …/verify` runs beside the statements service, not inside it: statement reads are
answered while a verification of a large-ish contract runs, and a verified chain asked again
is answered from the cache until a new journal entry moves its head."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_ledger import (
    CONTRACT,
    availability,
    final_statement,
    get,
    journal,
    terms,
)
from tests.system import System, eventually, make_settings, running_system

pytestmark = pytest.mark.integration
STATEMENT = f"/v1/contracts/{CONTRACT}/statements/2026-09"
VERIFY = f"{STATEMENT}/verify"
BATCH = 5_000


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    """The embedded system: verification processes read the same SQLite files."""
    async with running_system(make_settings(data_dir=tmp_path)) as running:
        yield running


async def closed_september(system: System, n: int) -> None:
    """September closed on `n` availability probes, every one up."""
    created = await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    assert created.status_code == 201, created.text
    agent = system.token("agent", [CONTRACT])
    for start in range(0, n, BATCH):
        batch = availability(min(BATCH, n - start), BATCH, prefix=f"p{start}")
        posted = await system.ingest.post("/v1/measurements", json=batch, headers=agent)
        assert posted.status_code == 202, posted.text
    await eventually(
        lambda: get(system, STATEMENT),
        lambda s: s and s["lines"][1]["derivation"]["events"] == n,
        timeout_s=120,
    )
    closed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/2026-09/close", headers=system.token()
    )
    assert closed.status_code == 202, closed.text
    await final_statement(system, "2026-09")
    await served_in_full(system)


async def served_in_full(system: System) -> list[dict]:
    """The ledger's journal, once the statements service serves every entry of it."""
    entries = await journal(system)
    await eventually(
        lambda: get(system, f"/v1/contracts/{CONTRACT}/balance", "auditor"),
        lambda b: b and b["entries"] == len(entries),
    )
    return entries


async def verify(system: System) -> dict:
    response = await system.statements.get(VERIFY, headers=system.token("auditor", [CONTRACT]))
    assert response.status_code == 200, response.text
    return response.json()


async def samples(system: System, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples `name` of the statements service's `/metrics`."""
    text = (await system.statements.get("/metrics")).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def verifications(system: System) -> dict[str, float]:
    """Verifications so far, by outcome (computed, cached, refused)."""
    found = await samples(system, "slapay_verifications_total")
    return {labels["outcome"]: value for labels, value in found}


async def running(system: System) -> float:
    return sum(value for _, value in await samples(system, "slapay_verifications_running"))


async def test_statement_reads_are_answered_while_a_verification_runs(system: System) -> None:
    n = 20_000
    await closed_september(system, n)
    verifying = asyncio.create_task(verify(system))
    await eventually(lambda: running(system), lambda r: r == 1)
    statement = await system.statements.get(STATEMENT, headers=system.token("customer", [CONTRACT]))
    health = await system.statements.get("/healthz")
    assert statement.status_code == 200 and statement.json()["status"] == "final"
    assert health.status_code == 200
    assert not verifying.done()  # both were answered before the verification ended
    report = await verifying
    assert report["verified"] is True, report["differences"]
    assert report["events_on_bus"] == n


async def test_a_verified_chain_is_answered_from_the_cache_until_its_head_moves(
    system: System,
) -> None:
    await closed_september(system, 1000)
    first, again = await verify(system), await verify(system)
    assert first == again and first["verified"] is True
    assert await verifications(system) == {"computed": 1, "cached": 1}
    # A late failed probe: the ledger corrects September, a new entry moves the head.
    late = availability(5, 0, prefix="late")
    posted = await system.ingest.post(
        "/v1/measurements", json=late, headers=system.token("agent", [CONTRACT])
    )
    assert posted.status_code == 202
    await eventually(lambda: journal(system), lambda es: any(e["kind"] == "adjustment" for e in es))
    entries = await served_in_full(system)
    moved = await verify(system)
    assert moved["verified"] is True, moved["differences"]
    assert (moved["entries_checked"], moved["events_on_bus"]) == (len(entries), 1005)
    assert await verifications(system) == {"computed": 2, "cached": 1}
