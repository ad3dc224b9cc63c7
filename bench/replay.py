"""`slapay replay`: `services.ledger.replay.replay(bus, fresh_engine)` over one contract's
history (terms, N measurements, a close and the journal it posted), beside the raw read of
the same four topics (`bus.read_all`) and the live fold that made the history, in the same
run. Events per second count every record on the topics replay reads.

Each repeat builds the history anew (`bench.history`) on a fresh broker and database;
each replay rebuilds into a fresh, empty database of the same kind, created before the
clock starts, and must reach the live chain head, or the scenario fails.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from bench.core import DISTRIBUTED, EMBEDDED, BenchError, Config, Rates, Scenario, run_steps
from bench.history import (
    CONTRACT,
    RAW_READ,
    Built,
    Ledger,
    build,
    ledger,
    measurement_messages,
    read_rate,
)
from services.ledger.replay import replay

SLAPAY = "slapay replay"
LIVE_FOLD = "live fold of the same events (read_all + decode + apply_delivered)"


async def replay_rate(env: Ledger, built: Built) -> float:
    """Bus records per second through `replay` into a fresh database; checks the head."""
    async with env.fresh_engine() as target:
        start = time.perf_counter()
        outcomes = await replay(env.bus, target)
        seconds = time.perf_counter() - start
    if [(o.contract_id, o.matches, o.entries) for o in outcomes] != [
        (CONTRACT, True, built.entries)
    ] or outcomes[0].replayed_head != built.head:
        raise BenchError(f"replay did not reach the live head {built.head}: {outcomes}")
    return built.bus_records / seconds


def run_for(mode: str) -> Callable[[Config, int], Awaitable[Rates]]:
    async def run_once(config: Config, turn: int) -> Rates:
        messages = measurement_messages(config.records(mode))
        async with ledger(mode) as env:
            built = await build(env.settings, env.bus, env.engine, messages)
            rates = await run_steps(
                [
                    (SLAPAY, lambda: replay_rate(env, built)),
                    (RAW_READ, lambda: read_rate(env, built)),
                ],
                turn,
            )
        return {**rates, LIVE_FOLD: built.measurements / built.fold_s}

    return run_once


SCENARIOS = (
    Scenario("ledger-replay", DISTRIBUTED, SLAPAY, (RAW_READ, LIVE_FOLD), run_for(DISTRIBUTED)),
    Scenario("ledger-replay", EMBEDDED, SLAPAY, (RAW_READ, LIVE_FOLD), run_for(EMBEDDED)),
)
