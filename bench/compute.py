"""The pure computation: `compute_statement` over a period of 1M measurements, and the
incremental `KpiState` fold the ledger keeps, beside the least work exact percentiles need
(sorting the values) measured in the same run."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from bench.core import Config, Rates, Scenario, run_steps
from services.demo import demo_terms
from shared.core.aggregates import KpiState
from shared.core.payment import Observation, compute_statement
from shared.core.terms import Terms

PURE = "pure"
COMPUTE = "compute_statement"
FOLD = "KpiState fold"
SORT = "sorted() of the values"


def observations(n: int, seed: int = 5) -> list[Observation]:
    rng, start = random.Random(seed), datetime(2026, 9, 1, tzinfo=UTC)
    kpis = ("availability", "latency_ms")
    return [
        Observation(
            f"e{i}",
            kpis[i % 2],
            float(rng.random() < 0.999) if i % 2 == 0 else rng.expovariate(1 / 150),
            start + timedelta(seconds=i * 2.5),
        )
        for i in range(n)
    ]


async def run_once(config: Config, turn: int) -> Rates:
    n = config.records(PURE)
    events = observations(n)
    terms = Terms.model_validate(demo_terms("2026-09"))

    async def compute() -> float:
        start = time.perf_counter()
        statement = compute_statement(terms, "2026-09", events, [])
        assert sum(line.derivation.events for line in statement.lines) == n
        return n / (time.perf_counter() - start)

    async def fold() -> float:
        start = time.perf_counter()
        states = {"availability": KpiState(), "latency_ms": KpiState()}
        for e in events:
            states[e.kpi].add(e.event_id, e.value)
        states["latency_ms"].value("p95")
        return n / (time.perf_counter() - start)

    async def raw_sort() -> float:
        start = time.perf_counter()
        values = sorted(e.value for e in events)
        assert len(values) == n
        return n / (time.perf_counter() - start)

    return await run_steps([(COMPUTE, compute), (FOLD, fold), (SORT, raw_sort)], turn)


SCENARIOS = (Scenario("compute-statement", PURE, COMPUTE, (FOLD, SORT), run_once),)
