"""`slapay audit verify` of a period with N measurements: `shared.audit.read_history(bus,
contract)` then `shared.audit.verify(history, period)`, beside the raw read of the same four
topics (`bus.read_all`) in the same run. Reported as events per second (every record on the
topics read) and, as its own row, the milliseconds the whole check took; the goal is under 15 s
for a million measurements.

N is a million at the default sizes (and above), else four times `--records` (`--quick`'s
5k gives 20k); the "records" column of the per-repeat table shows the configured size, the
milliseconds row names the real N. The history — terms, N measurements folded by the ledger's
own `apply_delivered`, the close and its journal (`bench.history`) — takes minutes to make
at a million, so it is made once per run and mode and every repeat verifies it again
(`verify` only reads), each on a fresh read of the bus; it is torn down after the last
repeat, or as soon as one fails.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.core import (
    DISTRIBUTED,
    EMBEDDED,
    BenchError,
    Config,
    Rates,
    Scenario,
    progress,
    run_steps,
)
from bench.history import (
    CONTRACT,
    PERIOD,
    RAW_READ,
    Built,
    Ledger,
    build,
    ledger,
    measurement_messages,
    read_rate,
)
from shared import heap
from shared.audit import read_history, verify

FULL = 1_000_000
SMALL_FACTOR = 4
SLAPAY = "slapay audit verify (read_history + verify)"
VERIFY_ALONE = "verify() alone, history already read"


def size(config: Config, mode: str) -> int:
    configured = config.records(mode)
    return FULL if configured >= Config().records(mode) else SMALL_FACTOR * configured


def time_label(n: int) -> str:
    return f"milliseconds for the whole check of {n:,} measurements (not a rate)"


@dataclass
class _Prepared:
    n: int
    stack: contextlib.AsyncExitStack
    env: Ledger
    built: Built


_PREPARED: dict[str, _Prepared] = {}


async def _prepare(mode: str, n: int) -> _Prepared:
    found = _PREPARED.get(mode)
    if found is not None and found.n == n:
        return found
    await _release(mode)
    stack = contextlib.AsyncExitStack()
    try:
        env = await stack.enter_async_context(ledger(mode))
        started = time.perf_counter()
        built = await build(env.settings, env.bus, env.engine, measurement_messages(n))
        progress(f"  history of {n:,} measurements made in {time.perf_counter() - started:.0f}s")
    except BaseException:
        await stack.aclose()
        raise
    _PREPARED[mode] = _Prepared(n, stack, env, built)
    return _PREPARED[mode]


async def _release(mode: str) -> None:
    found = _PREPARED.pop(mode, None)
    if found is not None:
        await found.stack.aclose()


def run_for(mode: str) -> Callable[[Config, int], Awaitable[Rates]]:
    async def run_once(config: Config, turn: int) -> Rates:
        n = size(config, mode)
        try:
            prepared = await _prepare(mode, n)
            env, built = prepared.env, prepared.built
            split: dict[str, float] = {}

            async def audit_verify() -> float:
                start = time.perf_counter()
                with heap.paused_collector(kept_till_exit=True):  # as `slapay audit verify`
                    history = await read_history(env.bus, CONTRACT)
                read = time.perf_counter()
                differences = verify(history, PERIOD)
                end = time.perf_counter()
                if differences or len(history.measurements) != n:
                    raise BenchError(
                        f"audit verify of {len(history.measurements):,}/{n:,} measurements"
                        f" found differences: {differences[:3]}"
                    )
                split.update(seconds=end - start, verify=end - read)
                progress(
                    f"  audit verify: {end - start:.1f}s (read_history {read - start:.1f}s,"
                    f" verify {end - read:.1f}s)"
                )
                return built.bus_records / (end - start)

            rates = await run_steps(
                [(SLAPAY, audit_verify), (RAW_READ, lambda: read_rate(env, built))], turn
            )
        except BaseException:
            await _release(mode)
            raise
        if turn >= config.repeat - 1:
            await _release(mode)
        return {
            **rates,
            VERIFY_ALONE: built.bus_records / split["verify"],
            time_label(n): split["seconds"] * 1000,
        }

    return run_once


SCENARIOS = (
    Scenario("audit-verify", EMBEDDED, SLAPAY, (RAW_READ,), run_for(EMBEDDED)),
    Scenario("audit-verify", DISTRIBUTED, SLAPAY, (RAW_READ,), run_for(DISTRIBUTED)),
)
