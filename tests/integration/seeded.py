"""What the security and failure tests share (this module holds no tests): periods relative
to today, contract terms, measurement batches, and a contract agreed and known everywhere."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import cramjam

from services.demo import demo_terms
from services.ingest.prometheus_remote_pb2 import Label, Sample, TimeSeries, WriteRequest
from shared.auth import issue_token, verify_token
from tests.system import SECRET, System, eventually


def period_back(months: int, now: datetime | None = None) -> str:
    """The calendar month `months` before the current one, as "YYYY-MM"."""
    moment = now or datetime.now(UTC)
    index = moment.year * 12 + moment.month - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def terms(contract_id: str, effective_from: str) -> dict[str, Any]:
    document = copy.deepcopy(demo_terms(effective_from))
    document["contract_id"] = contract_id
    return document


def measurements(
    contract_id: str, n: int, prefix: str, observed_at: datetime | None = None, value: float = 1
) -> dict[str, Any]:
    moment = observed_at or datetime.now(UTC) - timedelta(minutes=1)
    return {
        "measurements": [
            {
                "measurement_id": f"{prefix}-{i}",
                "contract_id": contract_id,
                "kpi": "availability",
                "value": value,
                "observed_at": (moment - timedelta(seconds=i)).isoformat(),
            }
            for i in range(n)
        ]
    }


def remote_write(contract_id: str) -> dict[str, Any]:
    """A Prometheus remote-write request with one sample for `contract_id` (httpx kwargs)."""
    labels = {"__name__": "up", "slapay_contract": contract_id, "slapay_kpi": "availability"}
    series = TimeSeries(
        labels=[Label(name=k, value=v) for k, v in sorted(labels.items())],
        samples=[Sample(value=1, timestamp=int(datetime.now(UTC).timestamp() * 1000) - 5000)],
    )
    raw = cramjam.snappy.compress_raw(WriteRequest(timeseries=[series]).SerializeToString())
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
    return {"content": bytes(raw), "headers": headers}


def otlp_json(contract_id: str) -> dict[str, Any]:
    """An OTLP/HTTP JSON export with one gauge point for `contract_id` (httpx kwargs)."""
    point = {
        "asDouble": 1,
        "timeUnixNano": str(int((datetime.now(UTC) - timedelta(seconds=5)).timestamp() * 1e9)),
        "attributes": [
            {"key": "slapay.contract", "value": {"stringValue": contract_id}},
            {"key": "slapay.kpi", "value": {"stringValue": "availability"}},
        ],
    }
    metric = {"name": "up", "gauge": {"dataPoints": [point]}}
    return {"json": {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]}}


def bearer(role: str, contracts: list[str] | None = None, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(secret, role, contracts or [])}"}


async def agree(system: System, contract_id: str, effective_from: str) -> None:
    """Agree the contract and wait until the ledger and reviews know it."""
    created = await system.ledger.post(
        "/v1/contracts", json=terms(contract_id, effective_from), headers=system.token()
    )
    assert created.status_code == 201, created.text
    admin = system.token()
    await eventually(
        lambda: system.ledger.get(f"/v1/contracts/{contract_id}", headers=admin),
        lambda r: r.status_code == 200,
    )
    period = period_back(0)
    await eventually(
        lambda: system.clients["reviews"].get(
            f"/v1/contracts/{contract_id}/reviews?period={period}", headers=admin
        ),
        lambda r: r.status_code == 200,
    )


async def statement_events(system: System, contract_id: str, period: str) -> int:
    """How many availability events the statement of `period` counts (-1: no statement)."""
    response = await system.statements.get(
        f"/v1/contracts/{contract_id}/statements/{period}", headers=system.token()
    )
    if response.status_code != 200:
        return -1
    line = next(x for x in response.json()["lines"] if x.get("kpi") == "availability")
    return int(line["derivation"].get("events", 0))


PROBES = {  # a guarded request per service: 401 unless the token is valid (then a 4xx)
    "ingest": ("POST", "/v1/measurements"),
    "reviews": ("GET", "/v1/contracts/no-such/reviews?period=2026-01"),
    "ledger": ("GET", "/v1/contracts/no-such"),
    "statements": ("GET", "/v1/contracts/no-such/statements"),
}


async def statuses(system: System, headers: dict[str, str]) -> dict[str, int]:
    """What each service answers the token in `headers` on its probe."""
    found = {}
    for service, (method, path) in PROBES.items():
        body = {"json": {}} if method == "POST" else {}
        response = await system.clients[service].request(method, path, headers=headers, **body)
        found[service] = response.status_code
    return found


async def revoke(system: System, headers: dict[str, str]) -> None:
    """Revoke the token in `headers` on the ledger (as an admin)."""
    jti = verify_token(SECRET, headers["Authorization"].removeprefix("Bearer ")).token_id
    revoked = await system.ledger.delete(f"/v1/tokens/{jti}", headers=system.token())
    assert revoked.status_code == 204, revoked.text
