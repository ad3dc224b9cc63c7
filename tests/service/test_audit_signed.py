"""The auditor checks signed measurements from the bus alone: what ingest published checks
out; a measurement edited after signing, one claiming another party, or a batch signed by a
key the terms do not list is a named difference."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.audit import history
from shared.audit.provenance import provenance_differences
from shared.core.periods import period_of
from shared.events import TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, BatchSigned
from tests.fakes import InMemoryBus
from tests.service.test_ingest import agree, ingest
from tests.service.test_ingest_signed import PROBE, measurements, post, signed_contract
from tests.signing_agent import SigningAgent

CONTRACT = "acme-2026"
PERIOD = period_of(datetime.now(UTC), "UTC")


@pytest.fixture
async def bus(tmp_path: Path) -> InMemoryBus:
    """A bus on which ingest accepted one signed batch of three measurements."""
    bus = InMemoryBus()
    await signed_contract(bus)
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        response = await post(client, *PROBE.signed(measurements(1, 1, 0)))
    assert response.status_code == 202, response.text
    return bus


def audit(bus: InMemoryBus) -> list[dict[str, Any]]:
    h = history(CONTRACT, bus.topics[TOPIC_CONTRACTS], bus.topics[TOPIC_MEASUREMENTS], [])
    return provenance_differences(h, PERIOD)


def rewrite(bus: InMemoryBus, offset: int, change: Any) -> None:
    """Edit the record at `offset` of the measurements topic in place."""
    records = bus.topics[TOPIC_MEASUREMENTS]
    document = orjson.loads(records[offset].value)
    change(document)
    records[offset] = records[offset]._replace(value=orjson.dumps(document))


def problems(bus: InMemoryBus) -> list[str]:
    return [d["problem"] for d in audit(bus)]


async def test_what_ingest_published_checks_out(bus: InMemoryBus) -> None:
    assert bus.topics[TOPIC_MEASUREMENTS][0].headers["type"] == BatchSigned.TYPE
    assert audit(bus) == []


async def test_a_key_revoked_later_still_vouches_for_what_it_signed(bus: InMemoryBus) -> None:
    other = SigningAgent("probe-us-1", "customer")
    await agree(bus, CONTRACT, version=2, agents=[other.listed], require_signed=True)
    assert audit(bus) == []


async def test_a_value_edited_after_signing_is_named(bus: InMemoryBus) -> None:
    rewrite(bus, 3, lambda d: d["data"].update(value=1))  # the third measurement said 0
    assert problems(bus) == ["differs from what the signed batch says at its place"]


async def test_a_measurement_claiming_another_party_is_named(bus: InMemoryBus) -> None:
    rewrite(bus, 1, lambda d: d["data"].update(party="provider"))
    assert len(problems(bus)) == 1
    assert "not as it claims" in problems(bus)[0]


async def test_a_batch_signed_by_an_unlisted_key_is_named(bus: InMemoryBus) -> None:
    stranger = SigningAgent("probe-eu-1", "customer")  # the listed id, not the listed key
    batch = orjson.loads(bus.topics[TOPIC_MEASUREMENTS][0].value)
    headers = stranger.sign(batch["data"]["body"].encode())
    rewrite(
        bus,
        0,
        lambda d: d["data"].update(
            signature=headers["Signature"], signature_input=headers["Signature-Input"]
        ),
    )
    found = problems(bus)
    assert len(found) == 3
    assert all("signature does not check out" in p for p in found)


async def test_an_unsigned_measurement_is_named_where_signatures_are_required(
    bus: InMemoryBus,
) -> None:
    def unsign(document: dict[str, Any]) -> None:
        for field in ("batch", "batch_index", "party"):
            del document["data"][field]

    rewrite(bus, 2, unsign)
    assert problems(bus) == [
        "an unsigned measurement, where the terms then in force require signatures"
    ]
