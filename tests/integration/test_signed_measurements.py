"""Measurements both parties can trust, end to end: a customer-side and a provider-side probe
feed one contract through the HTTP API, each signing its requests; the KPI counts only the
customer's probe and shows the provider's as not counted; an auditor checks every counted
measurement against its signed request from the bus alone, and names one forged onto it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.bus import Message
from shared.events import TOPIC_MEASUREMENTS, MeasurementRecorded, make_event
from shared.publishing import to_message
from tests.integration.test_audit import audit_cli
from tests.integration.test_ledger import (
    CONTRACT,
    availability,
    final_statement,
    get,
    journal,
    terms,
)
from tests.signing_agent import SigningAgent
from tests.system import System, eventually

pytestmark = pytest.mark.integration
CUSTOMER_PROBE = SigningAgent("customer-probe", "customer")
PROVIDER_PROBE = SigningAgent("provider-probe", "provider")
PATH = f"/v1/contracts/{CONTRACT}/statements/2026-09"


def signed_terms() -> dict[str, Any]:
    document = terms(agents=[CUSTOMER_PROBE.listed, PROVIDER_PROBE.listed], require_signed=True)
    document["kpis"][0]["sources"] = ["customer"]
    return document


async def post_signed(system: System, agent: SigningAgent, document: dict[str, Any]) -> Any:
    body, headers = agent.signed(document)
    return await system.ingest.post(
        "/v1/measurements",
        content=body,
        headers={**headers, **system.token("agent", [CONTRACT])},
    )


def availability_line(statement: dict[str, Any]) -> dict[str, Any]:
    return next(line for line in statement["lines"] if line["kpi"] == "availability")


async def test_two_parties_probes_feed_one_contract_and_an_auditor_checks_them(
    system: System,
) -> None:
    created = await system.ledger.post("/v1/contracts", json=signed_terms(), headers=system.token())
    assert created.status_code == 201, created.text
    customer = await post_signed(system, CUSTOMER_PROBE, availability(100, 100, prefix="c"))
    provider = await post_signed(system, PROVIDER_PROBE, availability(100, 0, prefix="p"))
    unsigned = await system.ingest.post(
        "/v1/measurements",
        json=availability(100, 0, prefix="u"),
        headers=system.token("agent", [CONTRACT]),
    )
    assert (customer.status_code, provider.status_code) == (202, 202), provider.text
    assert unsigned.status_code == 401
    assert unsigned.headers["content-type"] == "application/problem+json"

    statement = await eventually(
        lambda: get(system, PATH),
        lambda s: s and availability_line(s)["derivation"].get("not_counted", {}).get("events"),
    )
    derivation = availability_line(statement)["derivation"]
    assert derivation["events"] == 100 and derivation["value"] == 1  # the provider's zeros aside
    assert derivation["sources"] == ["customer"]
    assert derivation["not_counted"]["parties"] == {"provider": 100}
    assert availability_line(statement)["amount"] == "0.00"

    closed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/2026-09/close", headers=system.token()
    )
    assert closed.status_code == 202, closed.text
    final = await final_statement(system, "2026-09")
    assert availability_line(final)["derivation"]["not_counted"]["events"] == 100
    audit = await audit_cli(system)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # Late events: the provider's zeros change nothing; the customer's cross a tier.
    late_provider = await post_signed(system, PROVIDER_PROBE, availability(100, 0, prefix="lp"))
    late_customer = await post_signed(system, CUSTOMER_PROBE, availability(10, 0, prefix="lc"))
    assert (late_provider.status_code, late_customer.status_code) == (202, 202)
    entries = await eventually(
        lambda: journal(system), lambda es: sum(e["kind"] == "adjustment" for e in es) == 3
    )
    # the customer's zeros cross the tiers one by one: 10%, 25%, then 50% at 100 of 106 up
    adjustments = [e["amount"] for e in entries if e["kind"] == "adjustment"]
    assert adjustments == ["-1000.00", "-1500.00", "-2500.00"]
    audit = await audit_cli(system)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # Someone with write access to the bus forges a customer measurement, and an unsigned one.
    forged = [
        make_event(
            MeasurementRecorded(
                kpi="availability", value=0, batch=batch, batch_index=0, party="customer"
            ),
            contract_id=CONTRACT,
            source="agent:customer-probe",
            occurred_at=datetime(2026, 9, 15, 12, tzinfo=UTC),
            producer_id=producer,
        )
        for batch, producer in (("sha256:" + "0" * 64, "forged"), (None, "unsigned"))
    ]
    forged[1] = forged[1].model_copy(
        update={"data": {k: v for k, v in forged[1].data.items() if k != "party"}}
    )
    bus = system.apps["ingest"].state.runtime.bus
    messages: list[Message] = [to_message(event, {}) for event in forged]
    await bus.publish(TOPIC_MEASUREMENTS, messages)
    audit = await eventually(
        lambda: audit_cli(system),
        lambda done: done.returncode == 1 and "signed_measurement" in done.stdout,
    )
    for event in forged:
        assert str(event.event_id) in audit.stdout
    assert "not on the bus" in audit.stdout
    assert "unsigned measurement" in audit.stdout
