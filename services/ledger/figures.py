"""A period's figures read from the ledger's tables, for the statements of a close, a late
correction or a late review: one pass over the period's measurements in event-id order, a
chunk at a time, keeping per KPI a tally, a running digest, the values' nearest doubles
(percentile KPIs only) and the ids spooled to a temporary file; a second pass over one KPI
finds a percentile's exact value. What stays in memory does not grow with the period
beyond eight bytes a value (docs/architecture.md, "Closing, corrections, disputes").

The doubles decide the order because a correctly rounded conversion keeps it: of two
decimals the smaller never gets the larger double, so the value of rank r is among the
few whose double equals the r-th smallest double, and those are compared exactly.
"""

from __future__ import annotations

import bisect
import hashlib
import tempfile
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger import store
from shared.core.agents import UNSIGNED, counts
from shared.core.aggregates import nearest_rank, percentile_of
from shared.core.sources import PeriodFigures
from shared.core.tally import KpiSummary, Tally
from shared.core.terms import Kpi, Terms

CHUNK = 10_000
"""Rows fetched at a time."""
SPOOL_IN_MEMORY = 1 << 20
"""Bytes of ids a KPI keeps in memory before its spool moves to a temporary file."""


@dataclass(frozen=True)
class Figures:
    """The period's figures, and the tallies its late events are checked against."""

    period: PeriodFigures
    tallies: dict[str, Tally]


@asynccontextmanager
async def read(
    conn: AsyncConnection,
    terms: Terms,
    contract_id: str,
    period: str,
    skip: Collection[str] = frozenset(),
) -> AsyncIterator[Figures]:
    """The figures of the contract's measurements in `period`, less the event ids in `skip`
    (late events a correction has not reached yet). The spooled ids are gone on leaving."""
    with ExitStack() as files:
        runs: dict[tuple[str, bool], _Run] = {}
        for kpi in terms.kpis:
            runs[kpi.name, True] = _Run(kpi, counted=True, spool=files.enter_context(_spool()))
            if kpi.sources:
                runs[kpi.name, False] = _Run(kpi, counted=False, spool=None)
        async for rows in _rows(conn, contract_id, period):
            for name, event_id, value, party in rows:
                if event_id in skip:
                    continue
                counted = runs.get((name, True))
                if counted is None:
                    continue  # a KPI the terms do not name
                if counts(counted.kpi.sources, party):
                    counted.add(event_id, Decimal(value))
                else:
                    runs[name, False].add(event_id, Decimal(value), party or UNSIGNED)
        summaries = {
            key: await run.summary(conn, contract_id, period, skip) for key, run in runs.items()
        }
        yield Figures(
            PeriodFigures(
                counted={name: s for (name, counted), s in summaries.items() if counted},
                not_counted={name: s for (name, counted), s in summaries.items() if not counted},
                parties={name: run.parties for (name, counted), run in runs.items() if not counted},
            ),
            tallies={name: s.tally for (name, counted), s in summaries.items() if counted},
        )


class _Run:
    """One KPI's counted (or not counted) measurements, folded in event-id order."""

    def __init__(self, kpi: Kpi, *, counted: bool, spool: IO[bytes] | None) -> None:
        self.kpi = kpi
        self.tally = Tally.of(kpi, ()) if counted else Tally()
        self.parties: Counter[str] = Counter()
        self._hasher = hashlib.sha256()
        self._percent = percentile_of(kpi.aggregation) if counted else None
        self._doubles = array("d")
        self._spool = spool

    def add(self, event_id: str, value: Decimal, party: str | None = None) -> None:
        text = event_id.encode()
        self._hasher.update(b"\n" + text if self.tally.count else text)
        self.tally.add(value)
        if self._percent is not None:
            self._doubles.append(float(value))
        if self._spool is not None:
            self._spool.write(text + b"\n")
        if party is not None:
            self.parties[party] += 1

    async def summary(
        self, conn: AsyncConnection, contract_id: str, period: str, skip: Collection[str]
    ) -> KpiSummary:
        percentile = None
        if self._percent is not None and self.tally.count:
            rank = nearest_rank(self._percent, self.tally.count)
            ordered = sorted(self._doubles)
            double = ordered[rank - 1]
            below, ties = bisect.bisect_left(ordered, double), bisect.bisect_right(ordered, double)
            del ordered
            equal = await self._values_with_double(conn, contract_id, period, skip, double)
            if len(equal) != ties - below:
                raise RuntimeError(f"{self.kpi.name}: the period changed while it was read")
            percentile = sorted(equal)[rank - 1 - below]
        self._doubles = array("d")
        return KpiSummary(
            self.kpi, self.tally, percentile, "sha256:" + self._hasher.hexdigest(), self._ids
        )

    async def _values_with_double(
        self,
        conn: AsyncConnection,
        contract_id: str,
        period: str,
        skip: Collection[str],
        double: float,
    ) -> list[Decimal]:
        """The counted values of the KPI whose nearest double is `double`, exactly."""
        found = []
        m = store.measurements.c
        query = select(m.event_id, m.value, m.party).where(
            and_(m.contract_id == contract_id, m.period == period, m.kpi == self.kpi.name)
        )
        result = await conn.stream(query)
        async for rows in result.partitions(CHUNK):
            for event_id, text, party in rows:
                if event_id in skip or not counts(self.kpi.sources, party):
                    continue
                value = Decimal(text)
                if float(value) == double:
                    found.append(value)
        return found

    def _ids(self) -> Iterator[str]:
        spool = self._spool
        assert spool is not None, "only counted measurements keep their ids"
        spool.seek(0)
        for line in spool:
            yield line[:-1].decode()


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)


async def _rows(
    conn: AsyncConnection, contract_id: str, period: str
) -> AsyncIterator[list[tuple[str, str, str, str | None]]]:
    """The period's (kpi, event_id, value, party) rows in event-id order, by code point as
    Python orders strings (Postgres collates as "C" for it), a chunk at a time."""
    m = store.measurements.c
    order = m.event_id.collate("C") if conn.dialect.name == "postgresql" else m.event_id
    result = await conn.stream(
        select(m.kpi, m.event_id, m.value, m.party)
        .where(and_(m.contract_id == contract_id, m.period == period))
        .order_by(order)
    )
    async for chunk in result.partitions(CHUNK):
        yield [(kpi, event_id, value, party) for kpi, event_id, value, party in chunk]
