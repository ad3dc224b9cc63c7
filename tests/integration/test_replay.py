"""Replay rebuilds the ledger from the bus and reaches the very same chain heads."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ledger import store
from services.ledger.replay import replay
from shared import db
from tests.integration.test_ledger import CONTRACT, availability, journal, setup_closed_september
from tests.integration.test_ledger_reviews import review
from tests.system import System, eventually

pytestmark = pytest.mark.integration


async def test_replay_reaches_the_live_chain_heads(system: System, tmp_path: Path) -> None:
    final = await setup_closed_september(system, up=1000)
    agent, admin = system.token("agent", [CONTRACT]), system.token()
    await system.ingest.post(
        "/v1/measurements", json=availability(5, 0, prefix="late"), headers=agent
    )
    for reviewer, rating in (("p1", 5), ("p2", 4), ("p3", 5)):
        await review(system, reviewer, rating)  # late, and no bonus: an SLA credit now applies
    opened = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes",
        headers=system.token("customer", [CONTRACT]),
        json={"period": "2026-09", "line_id": final["lines"][0]["line_id"], "reason": "x"},
    )
    await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes/{opened.json()['dispute_id']}/resolve",
        headers=admin,
        json={"decision": "accepted", "amount": "-12.34"},
    )
    entries = await eventually(
        lambda: journal(system),
        lambda es: any(e.get("dispute_id") for e in es),
    )
    runtime = system.apps["ledger"].state.runtime
    await eventually(lambda: published(runtime.bus), lambda n: n >= len(entries))
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}")
    try:
        await db.create_schema(engine, store.metadata)
        outcomes = await replay(runtime.bus, engine)
    finally:
        await engine.dispose()
    assert [(o.contract_id, o.entries) for o in outcomes] == [(CONTRACT, len(entries))]
    assert outcomes[0].matches, outcomes
    assert outcomes[0].replayed_head == entries[-1]["hash"]


async def published(bus: object) -> int:
    from shared.events import TOPIC_JOURNAL

    records = await bus.read_all(TOPIC_JOURNAL)  # type: ignore[attr-defined]
    return sum(1 for r in records if r.headers.get("type") == "journal.entry.posted")
