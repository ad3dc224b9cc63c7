"""A period's measurements per KPI, each counted or kept aside by the party it came from
(docs/architecture.md, "The payment formula", step 1: a KPI's `sources`).

The ledger folds into `PeriodStates` and `compute_statement` builds one from raw events, so
both keep aside the very same measurements, and the derivation shows them as not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from shared.core.agents import UNSIGNED, counts
from shared.core.aggregates import KpiFigures, KpiState
from shared.core.terms import Terms


class PeriodStates:
    """Per KPI of the terms: the measurements that count, those that do not (their sources
    are not the KPI's), and how many of the latter each party sent."""

    __slots__ = ("_sources", "counted", "not_counted", "parties")

    def __init__(self, terms: Terms) -> None:
        self.counted = {kpi.name: KpiState() for kpi in terms.kpis}
        self.not_counted = {kpi.name: KpiState() for kpi in terms.kpis if kpi.sources}
        self.parties: dict[str, Counter[str]] = {name: Counter() for name in self.not_counted}
        self._sources = {kpi.name: kpi.sources for kpi in terms.kpis}

    def add(self, kpi: str, event_id: str, value: Decimal, party: str | None) -> None:
        """Fold one measurement in (one of a KPI the terms do not name is ignored)."""
        counted = self.counted.get(kpi)
        if counted is None:
            return
        if counts(self._sources[kpi], party):
            counted.add(event_id, value)
        elif self.not_counted[kpi].add(event_id, value):
            self.parties[kpi][party or UNSIGNED] += 1


@dataclass(frozen=True)
class PeriodFigures:
    """What a statement reads of `PeriodStates`, as figures a ledger computed without holding
    the measurements (`services/ledger/figures.py`)."""

    counted: Mapping[str, KpiFigures]
    not_counted: Mapping[str, KpiFigures]
    parties: Mapping[str, Mapping[str, int]]
