"""`GET …/verify` on the real statements service (`slapay serve statements`, its own process,
a fresh one each repeat, so no result is cached from the repeat before):

- `verify-small`: a contract of 100 measurements, closed, on a bus that also holds N
  measurements of 1,000 other contracts, beside the raw read of that contract's own records
  (`bus.read_all(topic, key)` of the four topics it is read from) in the bench process.
  Reported as verifications (and reads) per second, and in milliseconds as their own rows.
- `verify-beside-reads`: statement GETs (JSON) one after another while 3 verifications of a
  closed contract of N measurements run at once, beside the same GETs with none running;
  reported as 1/p99 (so the ratio is idle p99 over busy p99: 1.00 is no slowdown), with the
  p99s, the longest `/healthz` meanwhile and the service's RSS before and after as rows.

N is a million at the default sizes, else four times `--records` (`bench.audit.size`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from bench import data
from bench.audit import size
from bench.core import (
    DISTRIBUTED,
    EMBEDDED,
    BenchError,
    Config,
    Rates,
    Scenario,
    chunks,
    progress,
    run_steps,
)
from bench.history import CONTRACT, PERIOD, TOPICS, Ledger, build, measurement_messages
from bench.statements_service import (
    latencies_while,
    latency,
    p99,
    prepare,
    release,
    rss_mb,
    statements,
    verified,
)
from shared.events import TOPIC_MEASUREMENTS

SMALL = "bench-small"
SMALL_EVENTS = 100
OTHER_CONTRACTS = 1_000
AT_ONCE = 3
IDLE_GETS = 200
VERIFY_SMALL = f"GET …/verify of {SMALL_EVENTS} events beside N others (/s)"
RAW_SMALL = "bus.read_all of that contract's records by key, 4 topics (/s)"
BUSY = f"statement GET while {AT_ONCE} verifications run (1/p99 s)"
IDLE = "statement GET, no verification running (1/p99 s)"


async def raw_read(env: Ledger, contract: str) -> float:
    start = time.perf_counter()
    found = sum([len(await env.bus.read_all(topic, contract)) for topic in TOPICS])
    seconds = time.perf_counter() - start
    if found < SMALL_EVENTS:
        raise BenchError(f"read {found} records of {contract}")
    return seconds


async def _fill_small(env: Ledger, others: int) -> None:
    """N measurements of `OTHER_CONTRACTS` contracts, then the small contract, closed. So
    many that each partition holds its share of them, as on a bus of many tenants (the eight
    bench contracts would fill a few partitions and leave the others empty)."""
    items = data.items(others)
    for i, item in enumerate(items):
        item["contract_id"] = f"bench-other-{i % OTHER_CONTRACTS:04d}"
    for chunk in chunks(items, 10_000):
        await env.bus.publish(TOPIC_MEASUREMENTS, data.messages(chunk))
    messages = measurement_messages(SMALL_EVENTS, SMALL)
    await build(env.settings, env.bus, env.engine, messages, SMALL, beside_others=True)


def small_for(mode: str) -> Callable[[Config, int], Awaitable[Rates]]:
    async def run_once(config: Config, turn: int) -> Rates:
        n = size(config, mode)
        try:
            prepared = await prepare("small", mode, n, lambda env: _fill_small(env, n))
            times: dict[str, float] = {}

            async def timed(label: str, work: Awaitable[float]) -> float:
                times[label] = await work
                return 1 / times[label]

            async with statements(prepared, [SMALL]) as client:
                rates = await run_steps(
                    [
                        (
                            VERIFY_SMALL,
                            lambda: timed("verify", verified(client, SMALL, SMALL_EVENTS)),
                        ),
                        (RAW_SMALL, lambda: timed("raw", raw_read(prepared.env, SMALL))),
                    ],
                    turn,
                )
                cached = await verified(client, SMALL, SMALL_EVENTS)
        except BaseException:
            await release("small", mode)
            raise
        if turn >= config.repeat - 1:
            await release("small", mode)
        progress(f"  verify {times['verify'] * 1000:.0f} ms, cached {cached * 1000:.0f} ms")
        return {
            **rates,
            f"ms: GET …/verify, {SMALL_EVENTS} events beside {n:,} (not a rate)": times["verify"]
            * 1000,
            "ms: the same GET again, cached (not a rate)": cached * 1000,
            "ms: raw read by key (not a rate)": times["raw"] * 1000,
        }

    return run_once


def beside_reads_for(mode: str) -> Callable[[Config, int], Awaitable[Rates]]:
    async def run_once(config: Config, turn: int) -> Rates:
        n = size(config, mode)
        path = f"/v1/contracts/{CONTRACT}/statements/{PERIOD}"

        async def fill(env: Ledger) -> None:
            await build(env.settings, env.bus, env.engine, measurement_messages(n))

        try:
            prepared = await prepare("reads", mode, n, fill)
            async with statements(prepared, [CONTRACT]) as client:
                idle = [await latency(client, path) for _ in range(IDLE_GETS)]
                before = await rss_mb(client)
                verifying = [
                    asyncio.create_task(verified(client, CONTRACT, n)) for _ in range(AT_ONCE)
                ]
                busy, health = await asyncio.gather(
                    latencies_while(client, path, verifying),
                    latencies_while(client, "/healthz", verifying, pause_s=0.05),
                )
                durations = await asyncio.gather(*verifying)
                after = await rss_mb(client)
        except BaseException:
            await release("reads", mode)
            raise
        if turn >= config.repeat - 1:
            await release("reads", mode)
        progress(
            f"  GET p99 {p99(busy) * 1000:.1f} ms while verifying ({len(busy)} GETs, p50"
            f" {statistics.median(busy) * 1000:.1f} ms), {p99(idle) * 1000:.1f} ms idle (p50"
            f" {statistics.median(idle) * 1000:.1f} ms); /healthz max {max(health) * 1000:.0f} ms;"
            f" verifications {', '.join(f'{d:.1f}' for d in durations)} s;"
            f" RSS {before:.0f} -> {after:.0f} MB"
        )
        return {
            BUSY: 1 / p99(busy),
            IDLE: 1 / p99(idle),
            f"ms: GET p99 while {AT_ONCE} verify (not a rate)": p99(busy) * 1000,
            "ms: GET p99, none running (not a rate)": p99(idle) * 1000,
            "ms: longest /healthz while verifying (not a rate)": max(health) * 1000,
            f"ms: slowest of the {AT_ONCE} verifications of {n:,} (not a rate)": max(durations)
            * 1000,
            "MB: statements RSS before the verifications (not a rate)": before,
            "MB: statements RSS after them (not a rate)": after,
        }

    return run_once


SCENARIOS = (
    Scenario("verify-small", EMBEDDED, VERIFY_SMALL, (RAW_SMALL,), small_for(EMBEDDED)),
    Scenario("verify-small", DISTRIBUTED, VERIFY_SMALL, (RAW_SMALL,), small_for(DISTRIBUTED)),
    Scenario("verify-beside-reads", EMBEDDED, BUSY, (IDLE,), beside_reads_for(EMBEDDED)),
    Scenario("verify-beside-reads", DISTRIBUTED, BUSY, (IDLE,), beside_reads_for(DISTRIBUTED)),
)
