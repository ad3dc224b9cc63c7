"""Hostile input on every service: each request gets a 4xx problem+json and publishes nothing.

Oversized and chunked bodies, too many items, NaN/Infinity/huge numbers, naive and far-future
timestamps, unknown fields, wrong content types, deep nesting and invalid UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.events import TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, TOPIC_REVIEWS, TOPIC_TOKENS
from tests.integration.seeded import agree, measurements, period_back, terms
from tests.system import System, make_settings, running_system

pytestmark = pytest.mark.integration
CONTRACT = "hostile-co"
LIMIT, BULK_LIMIT = 64 * 1024, 4 * 1024 * 1024
NOW = datetime.now(UTC)
GOOD = measurements(CONTRACT, 1, "hostile")["measurements"][0]
JSON = {"Content-Type": "application/json"}


def items(**changes: Any) -> bytes:
    return json.dumps({"measurements": [{**GOOD, **changes}]}).encode()


def value(text: str) -> bytes:
    """A batch whose one item's value is written as `text` (what `json.dumps` will not write)."""
    return items(value="<value>").replace(b'"<value>"', text.encode())


def nested(depth: int) -> bytes:
    return b'{"measurements": ' + b"[" * depth + b"]" * depth + b"}"


def terms_with(**changes: Any) -> bytes:
    return json.dumps({**terms("hostile-two", period_back(0)), **changes}).encode()


async def chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 8192 + 1):
        yield b" " * 8192


REVIEW = {
    "contract_id": CONTRACT,
    "reviewer": "mallory",
    "rating": 3,
    "dimensions": {"communication": 3, "usefulness": 3, "reliability": 3},
}
M = ("ingest", "POST", "/v1/measurements")
# fmt: off
CASES: dict[str, tuple[tuple[str, str, str], int, dict[str, Any]]] = {
    "body over the bulk limit": (M, 413, {"content": b" " * (BULK_LIMIT + 1)}),
    "chunked body over the limit": (M, 413, {"content": chunks(BULK_LIMIT + 1)}),
    "too many items": (M, 413, {"content": json.dumps({"measurements": [GOOD] * 10_001})}),
    "no items": (M, 422, {"content": b'{"measurements": []}'}),
    "NaN": (M, 400, {"content": value("NaN")}),  # no JSON number
    "Infinity": (M, 400, {"content": value("-Infinity")}),
    "a number past float": (M, 422, {"content": value("1e999")}),
    "a huge integer": (M, 422, {"content": value("1" + "0" * 400)}),
    "a naive timestamp": (M, 422, {"content": items(observed_at="2026-10-05T12:00:00")}),
    "a far-future timestamp": (
        M, 422, {"content": items(observed_at=(NOW + timedelta(hours=1)).isoformat())}
    ),
    "an unknown field": (M, 422, {"content": items(colour="red")}),
    "an unknown top-level field": (M, 422, {"content": json.dumps({"measurements": [GOOD],
                                                                    "x": 1})}),
    "text/plain": (M, 415, {"content": items(), "headers": {"Content-Type": "text/plain"}}),
    "a form": (M, 415, {"content": b"a=1", "headers": {
        "Content-Type": "application/x-www-form-urlencoded"}}),
    "no content type": (M, 415, {"content": items(), "headers": {"Content-Type": ""}}),
    "latin-1 JSON": (M, 415, {"content": items(), "headers": {
        "Content-Type": "application/json; charset=latin-1"}}),
    "deep nesting": (M, 400, {"content": nested(100_000)}),
    "invalid UTF-8": (M, 400, {"content": items(kpi="<kpi>").replace(b"<kpi>", b"\xff\xfe")}),
    "not JSON": (M, 400, {"content": b"{"}),
    "prometheus garbage": (("ingest", "POST", "/v1/prometheus/write"), 400, {
        "content": b"\x00garbage", "headers": {"Content-Type": "application/x-protobuf",
                                               "Content-Encoding": "snappy"}}),
    "OTLP in XML": (("ingest", "POST", "/otlp/v1/metrics"), 415, {
        "content": b"<metrics/>", "headers": {"Content-Type": "application/xml"}}),
    "terms over the limit": (("ledger", "POST", "/v1/contracts"), 413,
                             {"content": b" " * (LIMIT + 1)}),
    "terms with NaN": (("ledger", "POST", "/v1/contracts"), 422,
                       {"content": terms_with(max_credit_percent=float("nan"))}),
    "a huge base fee": (("ledger", "POST", "/v1/contracts"), 422,
                        {"content": terms_with(base_fee="1e999999")}),
    "terms with an unknown field": (("ledger", "POST", "/v1/contracts"), 422,
                                    {"content": terms_with(backdoor=True)}),
    "terms nested deep": (("ledger", "POST", "/v1/contracts"), 400,
                          {"content": b"[" * 20_000 + b"]" * 20_000}),
    "terms in invalid UTF-8": (("ledger", "POST", "/v1/contracts"), 400,
                               {"content": terms_with(provider="<p>").replace(b"<p>", b"\xff")}),
    "terms as text": (("ledger", "POST", "/v1/contracts"), 415,
                      {"content": terms_with(), "headers": {"Content-Type": "text/plain"}}),
    "a token for ever": (("ledger", "POST", "/v1/tokens"), 422,
                         {"content": b'{"role": "admin", "ttl_days": 1e308}'}),
    "a token for root": (("ledger", "POST", "/v1/tokens"), 422, {"content": b'{"role": "root"}'}),
    "a review from the future": (("reviews", "POST", "/v1/reviews"), 422, {"content": json.dumps(
        {**REVIEW, "occurred_at": (NOW + timedelta(days=1)).isoformat()})}),
    "a naive review": (("reviews", "POST", "/v1/reviews"), 422, {"content": json.dumps(
        {**REVIEW, "occurred_at": "2026-10-05T12:00:00"})}),
    "a rating of 1e400": (("reviews", "POST", "/v1/reviews"), 422,
                          {"content": json.dumps(REVIEW).replace(": 3,", ": 1e400,", 1)}),
    "a review with extras": (("reviews", "POST", "/v1/reviews"), 422,
                             {"content": json.dumps({**REVIEW, "ip": "1.2.3.4"})}),
    "a CSV as JSON": (("reviews", "POST", f"/v1/contracts/{CONTRACT}/reviews:import"), 415,
                      {"content": b"reviewer,rating\n", "headers": JSON}),
    "a CSV in invalid UTF-8": (("reviews", "POST", f"/v1/contracts/{CONTRACT}/reviews:import"),
                               400, {"content": b"reviewer,rating\n\xff,5\n",
                                     "headers": {"Content-Type": "text/csv"}}),
    "a naive as_of": (("statements", "GET", f"/v1/contracts/{CONTRACT}/balance"), 422,
                      {"params": {"as_of": "2026-10-05T12:00:00"}}),
    "month 13": (("statements", "GET", f"/v1/contracts/{CONTRACT}/statements/2026-13"), 422, {}),
}
# fmt: on


def role_for(service: str, path: str) -> str:
    return {"ingest": "agent", "reviews": "customer"}.get(service, "admin")


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    settings = make_settings(
        data_dir=tmp_path, max_body_bytes=LIMIT, max_bulk_body_bytes=BULK_LIMIT
    )
    async with running_system(settings) as running:
        await agree(running, CONTRACT, period_back(1))
        yield running


async def test_hostile_requests_get_4xx_problems_and_publish_nothing(system: System) -> None:
    bus = system.apps["ingest"].state.runtime.bus
    before = {t: len(await bus.read_all(t)) for t in (TOPIC_CONTRACTS, TOPIC_TOKENS)}
    got, expected = {}, {}
    for name, ((service, method, path), status, request) in CASES.items():
        headers = {**JSON, **system.token(role_for(service, path), [CONTRACT])}
        headers.update(request.pop("headers", {}))
        response = await system.clients[service].request(method, path, headers=headers, **request)
        problem = response.headers.get("content-type") == "application/problem+json"
        got[name] = (response.status_code, problem and response.json()["status"])
        expected[name] = (status, status)
    assert got == expected
    assert await bus.read_all(TOPIC_MEASUREMENTS) == []
    assert await bus.read_all(TOPIC_REVIEWS) == []
    assert {t: len(await bus.read_all(t)) for t in before} == before


async def test_a_clock_a_little_ahead_is_tolerated(system: System) -> None:
    ahead = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    batch = {"measurements": [{**GOOD, "observed_at": ahead}]}
    agent = system.token("agent", [CONTRACT])
    response = await system.ingest.post("/v1/measurements", json=batch, headers=agent)
    assert response.status_code == 202, response.text
