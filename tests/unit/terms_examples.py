"""Terms and events used across the unit tests of the payment computation."""

import copy
from datetime import UTC, datetime
from typing import Any

from shared.payment import Observation, Rating
from shared.terms import Terms

DESIGN_TERMS: dict[str, Any] = {
    "contract_id": "acme-2026",
    "provider": "Hosting Co",
    "customer": "Acme GmbH",
    "currency": "EUR",
    "base_fee": "10000.00",
    "effective_from": "2026-10",
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

MID_OCTOBER = datetime(2026, 10, 15, 12, tzinfo=UTC)


def design_terms() -> dict[str, Any]:
    """A fresh copy of DESIGN.md's terms JSON, free to change."""
    return copy.deepcopy(DESIGN_TERMS)


def terms_with(**changes: Any) -> Terms:
    """DESIGN.md's terms with some top-level fields replaced."""
    return Terms.model_validate({**design_terms(), **changes})


def observations(
    kpi: str, *values: float, at: datetime = MID_OCTOBER, prefix: str = ""
) -> list[Observation]:
    """One measurement per value, with ids `{prefix}{kpi}-{i}`."""
    return [Observation(f"{prefix}{kpi}-{i}", kpi, v, at) for i, v in enumerate(values)]


def ratings(*scores: int, at: datetime = MID_OCTOBER) -> list[Rating]:
    """One rating per score, each by its own reviewer `r{i}`, in bus order."""
    return [Rating(f"review-{i}", f"r{i}", s, at, i) for i, s in enumerate(scores)]


def compliant() -> list[Observation]:
    """Measurements under which no KPI of DESIGN.md's terms earns a credit."""
    return [
        *observations("availability", 1.0),
        *observations("latency_ms", 100.0),
        *observations("resolution_hours", 1.0),
    ]
