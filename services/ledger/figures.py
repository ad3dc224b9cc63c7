"""A period's figures read from the ledger's tables, for the statements of a close and of a
late measurement's correction: one pass over each KPI's measurements in event-id order, a
chunk at a time, keeping a tally, a running digest, the values' nearest doubles (percentile
KPIs only) and the ids spooled to a temporary file; a second pass over a percentile KPI
finds its exact value. What stays in memory does not grow with the period beyond eight
bytes a value (docs/architecture.md, "Closing, corrections, disputes").

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
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, cast

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger import store
from shared.core.agents import UNSIGNED, counts
from shared.core.aggregates import nearest_rank, percentile_of
from shared.core.sources import PeriodFigures
from shared.core.tally import KpiSummary, Tally
from shared.core.terms import Kpi, Terms

CHUNK = 2_000
"""Rows fetched at a time. Each chunk is folded on the event loop between two fetches, so its
size bounds how long the close holds the loop (docs/benchmarks.md)."""
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
        counted: dict[str, KpiSummary] = {}
        aside: dict[str, KpiSummary] = {}
        parties: dict[str, Counter[str]] = {}
        for kpi in terms.kpis:
            run = _Run(kpi, files.enter_context(_spool()))
            kept = _Run(kpi, None) if kpi.sources else None
            async for rows in _rows(conn, contract_id, period, kpi.name):
                if skip:
                    rows = [row for row in rows if row[0] not in skip]
                if kept is None:
                    run.add_all(rows)
                    continue
                run.add_all([row for row in rows if counts(kpi.sources, row[2])])
                kept.add_all([row for row in rows if not counts(kpi.sources, row[2])])
            counted[kpi.name] = await run.summary(conn, contract_id, period, skip)
            if kept is not None:
                aside[kpi.name] = await kept.summary(conn, contract_id, period, skip)
                parties[kpi.name] = kept.parties
        yield Figures(
            PeriodFigures(counted=counted, not_counted=aside, parties=parties),
            tallies={name: summary.tally for name, summary in counted.items()},
        )


Row = tuple[str, str, str | None]
"""A measurement's (event_id, value, party)."""


class _Run:
    """One KPI's counted measurements (with a spool for their ids), or those it keeps aside
    (without), folded a chunk at a time in event-id order."""

    def __init__(self, kpi: Kpi, spool: IO[bytes] | None) -> None:
        self.kpi = kpi
        self.tally = Tally.of(kpi, ()) if spool is not None else Tally()
        self.parties: Counter[str] = Counter()
        self._hasher = hashlib.sha256()
        self._percent = percentile_of(kpi.aggregation) if spool is not None else None
        self._doubles = array("d")
        self._spool = spool

    def add_all(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        ids, texts, senders = zip(*rows, strict=True)
        joined = "\n".join(ids).encode()
        self._hasher.update(b"\n" + joined if self.tally.count else joined)
        values = list(map(Decimal, texts))
        self.tally.add_all(values)
        if self._percent is not None:
            self._doubles.extend(map(float, values))
        if self._spool is not None:
            self._spool.write(joined + b"\n")
        else:
            self.parties.update(party or UNSIGNED for party in senders)

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
                raise RuntimeError(f"{self.kpi.name}: the period read differently twice")
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
        async for rows in _rows(conn, contract_id, period, self.kpi.name, ordered=False):
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
    conn: AsyncConnection, contract_id: str, period: str, kpi: str, ordered: bool = True
) -> AsyncIterator[list[Row]]:
    """The KPI's measurements in the period, a chunk at a time; `ordered`: in event-id order,
    by code point as Python orders strings (Postgres collates as "C" for it)."""
    m = store.measurements.c
    query = select(m.event_id, m.value, m.party).where(
        and_(m.contract_id == contract_id, m.period == period, m.kpi == kpi)
    )
    if ordered:
        query = query.order_by(
            m.event_id.collate("C") if conn.dialect.name == "postgresql" else m.event_id
        )
    result = await conn.stream(query)
    async for chunk in result.partitions(CHUNK):
        yield cast("list[Row]", chunk)  # a Row unpacks as a tuple does
