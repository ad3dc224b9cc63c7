"""Terms and events used across the unit tests of the payment computation."""

from datetime import UTC, datetime
from typing import Any

from services.demo import demo_terms
from shared.core.payment import Observation, Rating
from shared.core.terms import Terms

MID_OCTOBER = datetime(2026, 10, 15, 12, tzinfo=UTC)


def design_terms() -> dict[str, Any]:
    """A fresh copy of the documented terms JSON (the demo's terms, for October 2026), free
    to change."""
    return {**demo_terms("2026-10"), "contract_id": "acme-2026"}


def terms_with(**changes: Any) -> Terms:
    """the documented terms with some top-level fields replaced."""
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
    """Measurements under which no KPI of the documented terms earns a credit."""
    return [
        *observations("availability", 1.0),
        *observations("latency_ms", 100.0),
        *observations("resolution_hours", 1.0),
    ]
