"""A late measurement into a closed period of N, beside an on-time one into an open period;
and a late review into that closed period.

The history (`bench.history`) is one contract's month of N measurements, folded and closed.
Each step then publishes `LATE_EVENTS` measurements that change no money (availability 1 in
a month already above its target) and folds them one transaction each, as a trickle of late
events arrives: into the closed month, or, as the baseline, into the next, open month. The
ratio is near 1 when a late event costs what an on-time one does, whatever N is; the ledger
process's CPU per event is printed beside it. The late reviews (one reviewer's, so the
month stays below `min_reviews` and no money changes) are a row of their own, also one
transaction each. Beside them, the longest the event loop went unanswered while any of these
late events was folded: a `/healthz` served on that loop waits at most that long.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bench import data
from bench.core import (
    DISTRIBUTED,
    EMBEDDED,
    BenchError,
    Config,
    Rates,
    Scenario,
    loop_stalls,
    progress,
    run_steps,
)
from bench.history import CONTRACT, PERIOD, Ledger, build, ledger, measurement_messages
from services.ledger import journal_store
from services.ledger.fold.apply import apply_delivered
from shared.consuming import decode
from shared.events import TOPIC_MEASUREMENTS, TOPIC_REVIEWS, ReviewSubmitted, make_event
from shared.measured import Incoming, decode_measurements
from shared.publishing import to_message

LATE_EVENTS = 20
LATE = f"late event into the closed {PERIOD} (no money change)"
ON_TIME = "on-time event into the open next month"
LATE_REVIEW = f"late review into the closed {PERIOD} (no money change)"
STALL = f"ms: the event loop's longest stall, late events into the closed {PERIOD} (not a rate)"
Stalls = dict[str, float]
"""The event loop's longest stall while each month's events were folded, in seconds."""


async def trickle(env: Ledger, month: str, entries_before: int, stalls: Stalls) -> float:
    """Events per second: `LATE_EVENTS` measurements of `month`, one transaction each."""
    tag = uuid.uuid4().hex[:8]
    items = [
        {
            "measurement_id": f"{tag}-{i}",
            "contract_id": CONTRACT,
            "kpi": "availability",
            "value": 1.0,
            "observed_at": f"{month}-15T12:00:{i:02d}Z",
        }
        for i in range(LATE_EVENTS)
    ]
    await env.bus.publish(TOPIC_MEASUREMENTS, data.messages(items))
    records = (await env.bus.read_all(TOPIC_MEASUREMENTS, CONTRACT))[-LATE_EVENTS:]
    delivered = decode_measurements(records).delivered
    return await _apply_one_at_a_time(env, delivered, month, entries_before, stalls)


async def review_trickle(env: Ledger, month: str, entries_before: int, stalls: Stalls) -> float:
    """Reviews per second: `LATE_EVENTS` ratings of `month` by one reviewer, one transaction
    each."""
    tag = uuid.uuid4().hex[:8]
    events = [
        make_event(
            ReviewSubmitted(review_id=f"{tag}-{i}", reviewer_pseudonym="bench-reviewer", rating=4),
            contract_id=CONTRACT,
            source="reviews:bench",
            occurred_at=datetime.fromisoformat(f"{month}-15T12:00:{i:02d}").replace(tzinfo=UTC),
            producer_id=f"review-{tag}-{i}",
        )
        for i in range(LATE_EVENTS)
    ]
    await env.bus.publish(TOPIC_REVIEWS, [to_message(event, {}) for event in events])
    records = (await env.bus.read_all(TOPIC_REVIEWS, CONTRACT))[-LATE_EVENTS:]
    delivered = decode(records).delivered
    return await _apply_one_at_a_time(env, delivered, f"{month} (reviews)", entries_before, stalls)


async def _apply_one_at_a_time(
    env: Ledger, delivered: list[Incoming], month: str, entries_before: int, stalls: Stalls
) -> float:
    wall, cpu = time.perf_counter(), time.process_time()
    async with loop_stalls() as seen:
        for one in delivered:
            await apply_delivered(env.engine, [one], keyring=None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stalls[month] = max(seen, default=0.0)
    if len(delivered) != LATE_EVENTS:
        raise BenchError(f"{month}: {len(delivered)} of {LATE_EVENTS} events were read")
    if len(await journal_store.entries(env.engine, CONTRACT)) != entries_before:
        raise BenchError(f"events of {month} that change no money posted entries")
    progress(
        f"  {month}: {cpu / LATE_EVENTS * 1000:.1f} ms of this process's CPU per event, the"
        f" event loop's longest stall {stalls[month] * 1000:.1f} ms"
    )
    return LATE_EVENTS / wall


def run_for(mode: str) -> Callable[[Config, int], Awaitable[Rates]]:
    async def run_once(config: Config, turn: int) -> Rates:
        async with ledger(mode) as env:
            built = await build(
                env.settings, env.bus, env.engine, measurement_messages(config.records(mode))
            )
            stalls: Stalls = {}
            rates = await run_steps(
                [
                    (LATE, lambda: trickle(env, PERIOD, built.entries, stalls)),
                    (ON_TIME, lambda: trickle(env, "2026-11", built.entries, stalls)),
                    (LATE_REVIEW, lambda: review_trickle(env, PERIOD, built.entries, stalls)),
                ],
                turn,
            )
        late = [stall for month, stall in stalls.items() if month.startswith(PERIOD)]
        return {**rates, STALL: max(late) * 1000}

    return run_once


SCENARIOS = (
    Scenario("ledger-late", DISTRIBUTED, LATE, (ON_TIME,), run_for(DISTRIBUTED)),
    Scenario("ledger-late", EMBEDDED, LATE, (ON_TIME,), run_for(EMBEDDED)),
)
