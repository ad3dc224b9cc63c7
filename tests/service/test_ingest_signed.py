"""Signed measurements at the door: a request signed by a key the terms list is accepted and
published as it came, before its measurements; anything else on a contract that requires
signatures is refused with 401, and nothing is published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from shared.auth import issue_token
from shared.events import TOPIC_MEASUREMENTS, BatchSigned, Envelope, MeasurementRecorded
from shared.signed_requests import body_digest
from tests.doc_snippets import DOCS, defined_by
from tests.fakes import InMemoryBus
from tests.service.test_ingest import agree, ingest
from tests.signing_agent import SigningAgent
from tests.system import SECRET
from tests.unit import test_prometheus_endpoint as remote_write

PATH = "/v1/measurements"
TOKEN = {"Authorization": f"Bearer {issue_token(SECRET, 'agent', ['acme-2026', 'other-co'])}"}
PROBE = SigningAgent("probe-eu-1", "customer")
NOW = datetime.now(UTC)


def measurements(*values: int, contract_id: str = "acme-2026", ids: bool = True) -> dict[str, Any]:
    return {
        "measurements": [
            {
                **({"measurement_id": f"m-{i}"} if ids else {}),
                "contract_id": contract_id,
                "kpi": "availability",
                "value": value,
                "observed_at": (NOW - timedelta(minutes=5, seconds=i)).isoformat(),
            }
            for i, value in enumerate(values)
        ]
    }


async def post(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    sent = {"Content-Type": "application/json", **TOKEN, **(headers or {})}
    return await client.post(PATH, content=body, headers=sent)


def events(bus: InMemoryBus) -> list[Envelope]:
    return [Envelope.from_json(r.value) for r in bus.topics[TOPIC_MEASUREMENTS]]


async def signed_contract(bus: InMemoryBus, *agents: SigningAgent, **changes: Any) -> None:
    await agree(
        bus,
        "acme-2026",
        agents=[a.listed for a in agents or (PROBE,)],
        require_signed=True,
        **changes,
    )


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


async def test_a_signed_batch_is_published_whole_before_its_measurements(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    await signed_contract(bus)
    body, headers = PROBE.signed(measurements(1, 0))
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        response = await post(client, body, headers)
    assert response.status_code == 202, response.text
    first, *rest = events(bus)
    batch = first.payload()
    assert isinstance(batch, BatchSigned)
    assert batch.body.encode() == body
    assert (batch.digest, batch.key_id, batch.party) == (
        body_digest(body),
        "probe-eu-1",
        "customer",
    )
    assert batch.signature == headers["Signature"]
    assert batch.signature_input == headers["Signature-Input"]
    assert [e.source for e in rest] == ["agent:probe-eu-1"] * 2
    for index, event in enumerate(rest):
        measured = event.payload()
        assert isinstance(measured, MeasurementRecorded)
        assert (measured.batch, measured.batch_index, measured.party) == (
            batch.digest,
            index,
            "customer",
        )


async def test_a_key_the_terms_do_not_list_is_refused(tmp_path: Path, bus: InMemoryBus) -> None:
    await signed_contract(bus)
    stranger = SigningAgent("probe-eu-1", "customer")  # the listed id, another key
    body, headers = stranger.signed(measurements(1))
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        response = await post(client, body, headers)
        unlisted = await post(client, *SigningAgent("probe-x", "customer").signed(measurements(1)))
    for refused in (response, unlisted):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "nothing was published" in refused.json()["detail"]
    assert "accept-signature" in unlisted.headers
    assert TOPIC_MEASUREMENTS not in bus.topics or not bus.topics[TOPIC_MEASUREMENTS]


async def test_a_signature_replayed_on_another_body_is_refused(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    await signed_contract(bus)
    _, headers = PROBE.signed(measurements(1))
    forged = measurements(0)  # the provider would rather it said 0
    body = httpx.Request("POST", "http://x", json=forged).content
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        kept_digest = await post(client, body, headers)
        fresh_digest = await post(
            client, body, {**headers, "Content-Digest": PROBE.sign(body)["Content-Digest"]}
        )
    assert kept_digest.status_code == 401
    assert "Content-Digest" in kept_digest.json()["detail"]
    assert fresh_digest.status_code == 401
    assert not bus.topics.get(TOPIC_MEASUREMENTS)


async def test_an_unsigned_request_is_refused_where_the_terms_require_signatures(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    await signed_contract(bus)
    body = httpx.Request("POST", "http://x", json=measurements(1)).content
    mixed = httpx.Request(
        "POST",
        "http://x",
        json={
            "measurements": [
                *measurements(1, contract_id="other-co")["measurements"],
                *measurements(1)["measurements"],
            ]
        },
    ).content
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        unsigned = await post(client, body)
        in_a_mixed_batch = await post(client, mixed)
        elsewhere = await post(
            client,
            httpx.Request("POST", "http://x", json=measurements(1, contract_id="other-co")).content,
        )
    assert unsigned.status_code == 401
    assert "acme-2026" in unsigned.json()["detail"]
    assert in_a_mixed_batch.status_code == 401
    assert elsewhere.status_code == 202  # a contract that does not require signatures
    assert [e.contract_id for e in events(bus)] == ["other-co"]


async def test_every_contract_of_a_batch_must_list_the_key(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    await signed_contract(bus)
    both = {
        "measurements": [
            *measurements(1)["measurements"],
            *measurements(1, contract_id="other-co")["measurements"],
        ]
    }
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        response = await post(client, *PROBE.signed(both))
    assert response.status_code == 401
    assert not bus.topics.get(TOPIC_MEASUREMENTS)


async def test_a_signature_is_checked_where_the_terms_do_not_require_one(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    await agree(bus, "acme-2026", agents=[PROBE.listed])
    body, headers = PROBE.signed(measurements(1))
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        tampered = await post(client, body.replace(b":1,", b":0,"), headers)
        good = await post(client, body, headers)
    assert tampered.status_code == 401
    assert good.status_code == 202
    assert [e.type for e in events(bus)] == [BatchSigned.TYPE, MeasurementRecorded.TYPE]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"created": timedelta(minutes=-10)}, "age"),
        ({"created": timedelta(minutes=10)}, "future"),
        ({"covered": ("@method", "@authority", "@path", "content-digest")}, "covers @authority"),
        ({"path": "/v1/other"}, "does not verify"),
    ],
    ids=["created-too-early", "created-in-the-future", "covers-authority", "other-path"],
)
async def test_a_signature_outside_the_rules_is_refused(
    tmp_path: Path, bus: InMemoryBus, options: dict[str, Any], said: str
) -> None:
    await signed_contract(bus)
    if "created" in options:  # from the clock as the test runs, not as the module loaded
        options = {"created": datetime.now(UTC) + options["created"]}
    body, headers = PROBE.signed(measurements(1), **options)
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        response = await post(client, body, headers)
    assert response.status_code == 401, response.text
    assert said in response.json()["detail"]
    assert not bus.topics.get(TOPIC_MEASUREMENTS)


async def test_a_revision_without_the_key_revokes_it(tmp_path: Path, bus: InMemoryBus) -> None:
    other = SigningAgent("probe-us-1", "third_party")
    await signed_contract(bus, PROBE, other)
    await agree(bus, "acme-2026", version=2, agents=[other.listed], require_signed=True)
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        revoked = await post(client, *PROBE.signed(measurements(1)))
        kept = await post(client, *other.signed(measurements(1)))
    assert revoked.status_code == 401
    assert kept.status_code == 202
    batch = events(bus)[0].payload()
    assert isinstance(batch, BatchSigned)
    assert (batch.key_id, batch.party) == ("probe-us-1", "third_party")


async def test_a_replayed_request_counts_nothing_twice(tmp_path: Path, bus: InMemoryBus) -> None:
    await signed_contract(bus)
    body, headers = PROBE.signed(measurements(1, 1, ids=False))
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        first = await post(client, body, headers)
        again = await post(client, body, headers)
    assert first.json() == {"accepted": 2, "duplicates": 0}
    assert again.json() == {"accepted": 0, "duplicates": 2}
    assert len(events(bus)) == 3


async def test_remote_write_is_refused_where_the_terms_require_signatures(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    await signed_contract(bus)
    request = remote_write.body(remote_write.series("availability", [1, 1]))
    headers = {**TOKEN, **remote_write.PROTOBUF}
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        response = await client.post("/v1/prometheus/write", content=request, headers=headers)
    assert response.status_code == 401, response.text
    assert "POST /v1/measurements" in response.json()["detail"]
    assert not bus.topics.get(TOPIC_MEASUREMENTS)


async def test_the_agent_docs_agents_md_shows_is_accepted(
    tmp_path: Path, bus: InMemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = SigningAgent("customer-probe-eu", "customer")
    pem = agent.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp_path / "customer-probe-eu.pem").write_bytes(pem)
    monkeypatch.chdir(tmp_path)
    snippet = defined_by("signing-agent", DOCS / "agents.md")
    await signed_contract(bus, agent)
    request = snippet["signed"](
        "http://ingest/v1/measurements", TOKEN["Authorization"][7:], measurements(1)["measurements"]
    )
    async with ingest(tmp_path, bus, contracts=("other-co",)) as client:
        response = await client.send(request)
    assert response.status_code == 202, response.text
    assert events(bus)[0].source == "agent:customer-probe-eu"
