"""The demo contract a newcomer sees on a fresh `make run`: last month of synthetic data,
posted through the public API like any agent would, and that month closed, so its final,
signed statement is there to read and verify at once."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

DEMO_CONTRACT = "demo-hosting"
BATCH = 5000


def previous_month(now: datetime) -> tuple[str, datetime, datetime]:
    first_this = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    first_prev = (first_this - timedelta(days=1)).replace(day=1)
    return first_prev.strftime("%Y-%m"), first_prev, first_this


def demo_terms(period: str) -> dict[str, Any]:
    return {
        "contract_id": DEMO_CONTRACT,
        "provider": "Hosting Co",
        "customer": "Acme GmbH",
        "currency": "EUR",
        "base_fee": "10000.00",
        "effective_from": period,
        "kpis": [
            {
                "name": "availability",
                "aggregation": "mean",
                "objective": ">=",
                "target": 0.999,
                "credits": [
                    {"breach": 0.999, "percent": 10},
                    {"breach": 0.99, "percent": 25},
                    {"breach": 0.95, "percent": 50},
                ],
            },
            {
                "name": "latency_ms",
                "aggregation": "p95",
                "objective": "<=",
                "target": 300,
                "credits": [{"breach": 300, "percent": 5}, {"breach": 1000, "percent": 15}],
            },
            {
                "name": "resolution_hours",
                "aggregation": "share_within",
                "threshold": 24,
                "objective": ">=",
                "target": 0.9,
                "credits": [{"breach": 0.9, "percent": 5}, {"breach": 0.75, "percent": 10}],
            },
        ],
        "reviews": {
            "min_reviews": 3,
            "neutral": 3.0,
            "max_bonus_percent": 5,
            "max_penalty_percent": 5,
            "trim_percent": 0,
            "bonus_requires_sla_met": True,
        },
        "max_credit_percent": 50,
        "grace_days": 3,
    }


def demo_measurements(start: datetime, end: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """Five-minute probes with one bad night, latencies with a slow tail, ~40 tickets."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    steps = int((end - start).total_seconds() // 300)
    outage = range(steps // 2, steps // 2 + 20)
    for i in range(steps):
        at = (start + timedelta(seconds=300 * i)).isoformat().replace("+00:00", "Z")
        up = 0 if i in outage else 1
        latency = round(120 + 60 * math.sin(i / 50) + rng.expovariate(1 / 40), 1)
        items.append(_item(f"demo-av-{i}", "availability", up, at, "probe-eu-1"))
        items.append(_item(f"demo-lat-{i}", "latency_ms", latency, at, "apm"))
    for t in range(40):
        at = (start + timedelta(hours=17 * t + 3)).isoformat().replace("+00:00", "Z")
        hours = round(rng.choice([2, 4, 8, 12, 20, 30]) * rng.uniform(0.5, 1.2), 1)
        items.append(_item(f"demo-ticket-{t}", "resolution_hours", hours, at, "tickets"))
    return items


def _item(mid: str, kpi: str, value: float, at: str, probe: str) -> dict[str, Any]:
    return {
        "measurement_id": mid,
        "contract_id": DEMO_CONTRACT,
        "kpi": kpi,
        "value": value,
        "observed_at": at,
        "labels": {"probe": probe},
    }


def seed_demo(
    ledger_url: str,
    ingest_url: str,
    admin_token: str,
    now: datetime | None = None,
    statements_url: str | None = None,
    timeout_s: float = 120.0,
) -> str:
    """Create the demo contract and post its month of data; return the period.

    With `statements_url`, the month is then closed once the ledger has folded all of it
    (the provisional statement counts every measurement), and its final, signed statement
    awaited: a newcomer has a statement to verify at once."""
    period, start, end = previous_month(now or datetime.now(UTC))
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(timeout=60, headers=headers) as client:
        created = client.post(f"{ledger_url}/v1/contracts", json=demo_terms(period))
        if created.status_code not in (201, 409):
            raise RuntimeError(f"demo contract: {created.status_code} {created.text}")
        items = demo_measurements(start, end)
        for i in range(0, len(items), BATCH):
            posted = client.post(
                f"{ingest_url}/v1/measurements", json={"measurements": items[i : i + BATCH]}
            )
            if posted.status_code != 202:
                raise RuntimeError(f"demo measurements: {posted.status_code} {posted.text}")
        if statements_url is not None:
            statement = f"{statements_url}/v1/contracts/{DEMO_CONTRACT}/statements/{period}"
            deadline = time.monotonic() + timeout_s
            _await(client, statement, lambda s: _counted(s) == len(items), deadline)
            closed = client.post(
                f"{ledger_url}/v1/contracts/{DEMO_CONTRACT}/periods/{period}/close"
            )
            if closed.status_code not in (202, 409):
                raise RuntimeError(f"demo close: {closed.status_code} {closed.text}")
            _await(client, statement, lambda s: s["status"] == "final", deadline)
    return period


def _counted(statement: dict[str, Any]) -> int:
    """How many measurements the statement's KPI lines counted."""
    return sum(
        int(line["derivation"].get("events") or 0)
        for line in statement["lines"]
        if line["kind"] == "sla_credit"
    )


def _await(
    client: httpx.Client, url: str, ready: Callable[[dict[str, Any]], bool], deadline: float
) -> None:
    """Poll the statement at `url` until `ready` holds for it."""
    while True:
        response = client.get(url)
        if response.status_code == 200 and ready(response.json()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo statement not ready: {response.status_code} {response.text}")
        time.sleep(0.25)
