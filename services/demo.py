"""The demo contract a newcomer sees on a fresh `make run`: last month of synthetic data and
a few customer reviews, posted through the public API like any agent or customer would, and
that month closed, so its final, signed statement is there to read and verify at once."""

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
# (reviewer, day of the month, rating, communication, usefulness, reliability, comment):
# a mean of 2.75 against neutral 3, so the review line shows a penalty at work
DEMO_REVIEWS = (
    ("ops-lead@acme.example", 3, 4, 4, 4, 4, "Quick answers on the tickets we opened."),
    ("cto@acme.example", 16, 2, 2, 3, 1, "The night outage hit our checkout for two hours."),
    ("support@acme.example", 18, 3, 3, 3, 3, "Resolution times were fine, latency less so."),
    ("finance@acme.example", 24, 2, 3, 2, 2, "Credits are right, but we had to ask twice."),
)


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


def demo_reviews(start: datetime) -> list[dict[str, Any]]:
    """`POST /v1/reviews` bodies, dated in the month starting at `start`."""
    return [
        {
            "contract_id": DEMO_CONTRACT,
            "reviewer": reviewer,
            "rating": rating,
            "dimensions": {"communication": c, "usefulness": u, "reliability": r},
            "comment": comment,
            "occurred_at": (start + timedelta(days=day - 1, hours=10))
            .isoformat()
            .replace("+00:00", "Z"),
        }
        for reviewer, day, rating, c, u, r, comment in DEMO_REVIEWS
    ]


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
    reviews_url: str | None = None,
) -> str:
    """Create the demo contract and post its month of data; return the period.

    With `reviews_url`, a customer also reviews the month. With `statements_url`, the month
    is then closed once the ledger has folded all of it (the provisional statement counts
    every measurement and review), and its final, signed statement awaited: a newcomer has
    a statement to verify at once."""
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
        deadline = time.monotonic() + timeout_s
        reviews = 0
        if reviews_url is not None:
            reviews = _post_reviews(client, ledger_url, reviews_url, start, deadline)
        if statements_url is not None:
            statement = f"{statements_url}/v1/contracts/{DEMO_CONTRACT}/statements/{period}"

            def folded(s: dict[str, Any]) -> bool:
                return _counted(s) == len(items) and _reviewers(s) == reviews

            _await(client, statement, folded, deadline)
            closed = client.post(
                f"{ledger_url}/v1/contracts/{DEMO_CONTRACT}/periods/{period}/close"
            )
            if closed.status_code not in (202, 409):
                raise RuntimeError(f"demo close: {closed.status_code} {closed.text}")
            _await(client, statement, lambda s: s["status"] == "final", deadline)
    return period


def _post_reviews(
    client: httpx.Client, ledger_url: str, reviews_url: str, start: datetime, deadline: float
) -> int:
    """Post the demo reviews with a customer's token (reviews come from the customer side);
    the reviews service may not have heard of the new contract yet (404): ask again."""
    minted = client.post(
        f"{ledger_url}/v1/tokens",
        json={"role": "customer", "contracts": [DEMO_CONTRACT], "ttl_days": 1},
    )
    if minted.status_code != 201:
        raise RuntimeError(f"demo customer token: {minted.status_code} {minted.text}")
    customer = {"Authorization": f"Bearer {minted.json()['token']}"}
    for review in demo_reviews(start):
        while True:
            sent = client.post(f"{reviews_url}/v1/reviews", json=review, headers=customer)
            if sent.status_code == 202:
                break
            if sent.status_code != 404 or time.monotonic() > deadline:
                raise RuntimeError(f"demo review: {sent.status_code} {sent.text}")
            time.sleep(0.25)
    return len(DEMO_REVIEWS)


def _reviewers(statement: dict[str, Any]) -> int:
    """How many reviewers the statement's review line counted."""
    return sum(
        int(line["derivation"].get("reviews") or 0)
        for line in statement["lines"]
        if line["kind"] == "review_adjustment"
    )


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
