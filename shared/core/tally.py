"""What decides a KPI's credit tier, kept in a size that does not grow with the period.

A closed period's late measurements change its money only when a tier changes
(docs/architecture.md, "Closing, corrections, disputes"). Telling whether one did needs no
values, only a few counts: the exact sum and count (mean, sum, count), the extremes (min,
max), and how many values lie below, or at most at, each bound the terms name (a tier's
breach, a `share_within` threshold). The nearest-rank percentile `v` of rank `r` is below a
bound `b` exactly when at least `r` values are, and above it exactly when fewer than `r`
are at most `b`. `tests/unit/test_tally.py` holds this to `kpi_credit` on random data.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from shared.core import decimals
from shared.core.aggregates import nearest_rank, percentile_of
from shared.core.payment import applying_tier, no_data_tier
from shared.core.statement import exact
from shared.core.terms import CreditTier, Kpi


def bounds(kpi: Kpi) -> tuple[Decimal, ...]:
    """The values a KPI's tier depends on: its breaches, and a `share_within` threshold."""
    found = {tier.breach for tier in kpi.credits}
    if kpi.threshold is not None:
        found.add(kpi.threshold)
    return tuple(sorted(found))


@dataclass
class Tally:
    """Counts that decide one KPI's tier in one period; `add` folds one more measurement."""

    count: int = 0
    total: Decimal = Decimal(0)
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    below: dict[Decimal, int] = field(default_factory=dict)
    """For each bound `b`: how many values are < b."""
    at_most: dict[Decimal, int] = field(default_factory=dict)
    """For each bound `b`: how many values are <= b."""

    @classmethod
    def of(cls, kpi: Kpi, values: Iterable[Decimal]) -> Tally:
        """The tally of these values (one sort; each bound is then a binary search)."""
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            total=decimals.exact_sum(ordered),
            minimum=ordered[0] if ordered else None,
            maximum=ordered[-1] if ordered else None,
            below={b: bisect.bisect_left(ordered, b) for b in bounds(kpi)},
            at_most={b: bisect.bisect_right(ordered, b) for b in bounds(kpi)},
        )

    def add_all(self, values: Iterable[Decimal]) -> None:
        """`add` each of these values (one sort of them, not a loop over the bounds each)."""
        ordered = sorted(values)
        if not ordered:
            return
        self.count += len(ordered)
        self.total = decimals.exact_sum(ordered, self.total)
        low, high = ordered[0], ordered[-1]
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)
        for bound in self.below:
            self.below[bound] += bisect.bisect_left(ordered, bound)
            self.at_most[bound] += bisect.bisect_right(ordered, bound)

    def add(self, value: Decimal) -> None:
        self.count += 1
        self.total = decimals.add(self.total, value)
        self.minimum = value if self.minimum is None else min(self.minimum, value)
        self.maximum = value if self.maximum is None else max(self.maximum, value)
        for bound in self.below:
            if value < bound:
                self.below[bound] += 1
            if value <= bound:
                self.at_most[bound] += 1

    def tier(self, kpi: Kpi) -> CreditTier | None:
        """The tier `kpi_credit` gives a state holding the same values."""
        if self.count < (kpi.min_count or 1):
            return no_data_tier(kpi)
        percent = percentile_of(kpi.aggregation)
        if percent is None:
            return applying_tier(kpi, self.value(kpi))
        rank = nearest_rank(percent, self.count)
        wrong_side = [
            tier
            for tier in kpi.credits
            if (
                self.below[tier.breach] >= rank
                if kpi.objective == ">="
                else self.at_most[tier.breach] < rank
            )
        ]
        return max(wrong_side, key=lambda tier: tier.percent, default=None)

    def percent(self, kpi: Kpi) -> Fraction:
        tier = self.tier(kpi)
        return Fraction(0) if tier is None else exact(tier.percent)

    def value(self, kpi: Kpi) -> Fraction:
        """The KPI's value, for any aggregation but a percentile; the tally holds a value."""
        assert self.minimum is not None and self.maximum is not None  # count >= 1
        match kpi.aggregation:
            case "mean":
                return Fraction(self.total) / self.count
            case "sum":
                return Fraction(self.total)
            case "count":
                return Fraction(self.count)
            case "min":
                return Fraction(self.minimum)
            case "max":
                return Fraction(self.maximum)
            case "share_within":
                assert kpi.threshold is not None
                return Fraction(self.at_most[kpi.threshold], self.count)
        raise ValueError(f"unknown aggregation {kpi.aggregation!r}")

    def document(self) -> dict[str, Any]:
        """The tally as JSON, decimals as the text they spell (for storage)."""
        return {
            "count": self.count,
            "total": str(self.total),
            "minimum": None if self.minimum is None else str(self.minimum),
            "maximum": None if self.maximum is None else str(self.maximum),
            "bounds": [[str(b), self.below[b], self.at_most[b]] for b in self.below],
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Tally:
        rows = [(Decimal(b), below, at_most) for b, below, at_most in document["bounds"]]
        return cls(
            count=int(document["count"]),
            total=Decimal(document["total"]),
            minimum=None if document["minimum"] is None else Decimal(document["minimum"]),
            maximum=None if document["maximum"] is None else Decimal(document["maximum"]),
            below={b: below for b, below, _ in rows},
            at_most={b: at_most for b, _, at_most in rows},
        )


@dataclass(frozen=True)
class KpiSummary:
    """One KPI's figures in a period (`aggregates.KpiFigures`) without its measurements: the
    tally, the nearest-rank value of a percentile KPI, the digest of the ids, and a way to
    read the ids again in order. A ledger builds it by reading the period once."""

    kpi: Kpi
    tally: Tally
    percentile: Decimal | None
    events_digest: str
    ids: Callable[[], Iterable[str]]

    @property
    def count(self) -> int:
        return self.tally.count

    def value(self, aggregation: str, threshold: Decimal | None = None) -> Fraction | None:
        if (aggregation, threshold) != (self.kpi.aggregation, self.kpi.threshold):
            raise ValueError(f"a summary of {self.kpi.name} knows only its own aggregation")
        if self.tally.count == 0:
            return None
        if self.percentile is not None:
            return Fraction(self.percentile)
        return self.tally.value(self.kpi)

    def digest(self) -> str:
        return self.events_digest

    def sorted_ids(self) -> Iterable[str]:
        return self.ids()
