"""Webhooks end to end, on both buses: a real HTTP receiver that fails the first attempts and
verifies every signature gets every event of its contract, in bus order, across a restart of
the statements service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from services.statements import webhooks
from shared.events import TOPIC_CONTRACTS, TOPIC_JOURNAL, Envelope
from tests.integration.seeded import agree, measurements, period_back
from tests.system import System, eventually
from tests.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.integration
CONTRACT, OTHER = "hooked-co", "unhooked-co"
FAILURES = 2
"""Attempts of each message the receiver answers 500 before it accepts one."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(lambda message_id, tries: 500 if tries < FAILURES else 204) as found:
        yield found


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before `system` reads its settings: loopback allowed, retries in tens of ms."""
    monkeypatch.setenv("SLAPAY_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("SLAPAY_WEBHOOK_RETRY_BASE_S", "0.05")
    monkeypatch.setenv("SLAPAY_WEBHOOK_RETRY_MAX_S", "0.2")
    monkeypatch.setenv("SLAPAY_WEBHOOK_POLL_INTERVAL_S", "0.05")
    monkeypatch.setenv("SLAPAY_WEBHOOK_TIMEOUT_S", "5")


async def _on_the_bus(system: System) -> list[Envelope]:
    """The events of CONTRACT a webhook may receive, in each topic's order."""
    bus = system.apps["ledger"].state.runtime.bus
    found = []
    for topic in (TOPIC_CONTRACTS, TOPIC_JOURNAL):
        for record in await bus.read_all(topic, key=CONTRACT):
            event = Envelope.from_json(record.value)
            if event.type in webhooks.TYPES:
                found.append(event)
    return found


async def test_every_event_arrives_signed_in_order_across_a_restart(
    system: System, receiver: Receiver
) -> None:
    customer = system.token("customer", [CONTRACT])
    registered = await system.statements.post(
        "/v1/webhooks",
        json={"url": receiver.url, "types": sorted(webhooks.TYPES), "contracts": [CONTRACT]},
        headers=customer,
    )
    assert registered.status_code == 201, registered.text
    assert registered.headers["cache-control"] == "no-store"
    hook = registered.json()
    assert hook["secret"].startswith("whsec_")
    receiver.secret = hook["secret"]

    closing = period_back(1)
    await agree(system, CONTRACT, period_back(2))
    await agree(system, OTHER, period_back(2))
    agent = system.token("agent", [CONTRACT, OTHER])
    for contract in (CONTRACT, OTHER):
        moment = datetime.fromisoformat(f"{closing}-10T12:00:00+00:00")
        posted = await system.ingest.post(
            "/v1/measurements", json=measurements(contract, 5, contract, moment), headers=agent
        )
        assert posted.status_code == 202, posted.text
    await eventually(lambda: _provisional(system), bool)

    await system.stop("statements")
    admin = system.token()
    closed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/{closing}/close", headers=admin
    )
    assert closed.status_code == 202, closed.text
    await eventually(lambda: _finalized_on_the_bus(system), bool)
    await system.start("statements")

    expected = await _on_the_bus(system)
    assert {e.type for e in expected} == webhooks.TYPES - {"dispute.opened", "dispute.resolved"}
    await eventually(
        lambda: _accepted_ids(receiver),
        lambda ids: set(ids) >= {str(e.event_id) for e in expected},
        timeout_s=60,
    )
    assert receiver.refused == []
    got = receiver.accepted
    assert {e["subject"] for e in got} == {CONTRACT}
    for topic in (TOPIC_CONTRACTS, TOPIC_JOURNAL):
        in_topic = [str(e.event_id) for e in expected if e.topic == topic]
        assert [e["id"] for e in got if e["id"] in in_topic] == in_topic
    for event in got:
        envelope = Envelope.model_validate(event["data"])
        assert str(envelope.event_id) == event["id"] and envelope.type == event["type"]
    _assert_one_at_a_time(receiver.requests)

    log = await system.statements.get(
        f"/v1/webhooks/{hook['webhook_id']}/deliveries", headers=customer
    )
    assert log.status_code == 200, log.text
    deliveries = log.json()["deliveries"]
    assert {d["event_id"] for d in deliveries} >= {e["id"] for e in got}
    for delivery in deliveries:
        assert delivery["status"] == "delivered", delivery
        codes = [a["status_code"] for a in delivery["log"]]
        assert codes[-1] == 204 and codes.count(500) >= FAILURES - 1, delivery


def _assert_one_at_a_time(requests: list[tuple[str, int]]) -> None:
    """One lane (one endpoint, one contract): no message is tried before every message tried
    earlier was accepted. A message accepted again later is a redelivery, which is allowed."""
    accepted: set[str] = set()
    tried: list[str] = []
    for message_id, status in requests:
        pending = [m for m in tried if m not in accepted and m != message_id]
        assert pending == [], f"{message_id} was sent while {pending} waited"
        if message_id not in tried:
            tried.append(message_id)
        if status == 204:
            accepted.add(message_id)


async def _accepted_ids(receiver: Receiver) -> list[str]:
    return receiver.accepted_ids()


async def _provisional(system: System) -> bool:
    return any(e.type == "statement.provisional" for e in await _on_the_bus(system))


async def _finalized_on_the_bus(system: System) -> bool:
    return any(e.type == "statement.finalized" for e in await _on_the_bus(system))
